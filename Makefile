# The two commands that do everything on a fresh machine:
#   make run   -> create/reuse .venv, install, serve the shipped default model on http://127.0.0.1:8000
#   make test  -> create/reuse .venv, install with test extras, run the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install web chromium postgres

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,mace]'
	$(PY) -m pip install --quiet --no-deps 'mace-torch==0.3.16'  # see the "mace" extra in pyproject.toml
	touch $(STAMP)

install: $(STAMP)

# Browser assets of the service web page: 3Dmol.js from the npm registry (package-lock.json pinned).
WEB := service/web
WEB_STAMP := $(WEB)/node_modules/.installed

$(WEB_STAMP): $(WEB)/package.json $(WEB)/package-lock.json
	command -v npm >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm)
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

web: $(WEB_STAMP)

# Debian's chromium for the headless web page test (driven by Playwright; no browser download).
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Debian's PostgreSQL server (binaries in /usr/lib/postgresql/<version>/bin) for the shared job queue test,
# which starts a throw-away server of its own (tests/service/test_service_postgres.py).
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql)

run: install web
	$(VENV)/bin/adjoint-sampling serve

test: install web chromium postgres
	$(PY) -m pytest -q tests
