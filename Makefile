# finsent: `make demo` runs the whole pipeline offline on the examples; `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
# The demo needs the fine-tune extras (torch, ...) only where a CUDA GPU can use them.
DEMO_EXTRAS := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo '[finetune]')
# make demo THREADS=N: llama.cpp's CPU threads (default: half the cores, for a busy machine).
THREADS ?=
# pip without --quiet: its lines (and the spinner of a wheel being built) show where it is.
PIP := $(PY) -m pip install --progress-bar on
BUILD_NOTE := @echo "finsent: installing with the fine-tune extras; a first install compiles llama-cpp-python" \
	"from source: about 10 min on 2 quiet cores, far longer on a busy machine (pip shows 'Building wheel')"

.PHONY: install test demo clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "finsent: $(VENV) created; installing the packages (pip's lines follow)"

$(VENV)/.installed-cpu: $(PY) pyproject.toml requirements.txt
	$(if $(DEMO_EXTRAS),$(BUILD_NOTE))
	$(PIP) -e '.$(DEMO_EXTRAS)'
	touch $@

$(VENV)/.installed-all: $(PY) pyproject.toml requirements.txt requirements-test.txt requirements-finetune.txt
	$(BUILD_NOTE)
	$(PIP) -e '.[test,finetune]'
	touch $@ $(VENV)/.installed-cpu

install: $(VENV)/.installed-all

test: $(VENV)/.installed-all
	$(PY) -m pytest

demo: $(VENV)/.installed-cpu
	$(PY) -m finsent.demo $(if $(THREADS),--threads $(THREADS))

clean:
	rm -rf $(VENV) data outputs sentiments reports heatmaps news
