# finsent: `make demo` runs the whole pipeline offline on the examples; `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
# The demo needs the fine-tune extras (torch, ...) only where a CUDA GPU can use them.
DEMO_EXTRAS := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo '[finetune]')

.PHONY: install test demo clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-cpu: $(PY) pyproject.toml requirements.txt
	$(PY) -m pip install --quiet -e '.$(DEMO_EXTRAS)'
	touch $@

$(VENV)/.installed-all: $(PY) pyproject.toml requirements.txt requirements-test.txt requirements-finetune.txt
	$(PY) -m pip install --quiet -e '.[test,finetune]'
	touch $@ $(VENV)/.installed-cpu

install: $(VENV)/.installed-all

test: $(VENV)/.installed-all
	$(PY) -m pytest

demo: $(VENV)/.installed-cpu
	$(PY) -m finsent.demo

clean:
	rm -rf $(VENV) data outputs sentiments reports heatmaps news
