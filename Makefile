# finsent: `make demo` runs the whole pipeline offline on the examples; `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.finsent-installed

.PHONY: install test demo clean

$(STAMP): pyproject.toml requirements.txt requirements-test.txt requirements-finetune.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,finetune]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m utils.demo

clean:
	rm -rf $(VENV) data outputs sentiments reports heatmaps
