# The two commands that do everything on a fresh machine:
#   make run   -> create/reuse .venv, install, serve the shipped default model on http://127.0.0.1:8000
#   make test  -> create/reuse .venv, install with test extras, run the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/adjoint-sampling serve

test: install
	$(PY) -m pytest -q tests
