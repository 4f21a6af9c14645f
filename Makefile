# Tratativa — `make run` starts the product on embedded defaults, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON311 ?= python3.11
VENV := .venv
RASA_VENV := .venv-rasa
PY := $(VENV)/bin/python
TRATATIVA := $(VENV)/bin/tratativa
PG_TEST_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
REDIS_TEST_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

.PHONY: help install run test test-pg test-sqlite test-sqlite-e2e test-unit lint services clean bench

include mk/rasa.mk

help:
	@echo "make run    install what is missing, migrate, load demo data, serve on :8000"
	@echo "make test   run the whole suite on PostgreSQL+Redis and on SQLite"
	@echo "make lint   ruff and mypy"

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON311) >/dev/null || { echo "Python 3.11 is required ($(PYTHON311) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON311) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(RASA_VENV)/.installed: requirements-rasa.txt
	@py310=$$(scripts/find-python310.sh) && { test -x $(RASA_VENV)/bin/python || $$py310 -m venv $(RASA_VENV); }
	$(RASA_VENV)/bin/python -m pip install -q --upgrade 'pip<24.1'
	$(RASA_VENV)/bin/python -m pip install -q -r requirements-rasa.txt
	touch $@

install: $(VENV)/.installed $(RASA_VENV)/.installed

run: install
	scripts/run.sh

services:
	scripts/ensure-services.sh
	scripts/ensure-chromium.sh

test: install services train
	scripts/test-passes.sh

# PG_MARKERS selects a part of the suite by marker (scripts/test-passes.sh splits the PostgreSQL
# pass in two); empty runs it all.
test-pg:
	TEST_DATABASE_URL=$(PG_TEST_URL) TEST_REDIS_URL=$(REDIS_TEST_URL) $(PY) -m pytest -q -p no:cacheprovider $(if $(PG_MARKERS),-m "$(PG_MARKERS)") $(PYTEST_ARGS)

# The SQLite pass runs the integration group (everything that touches the database) but the
# tests marked slow (CLI subprocesses, API fuzzing, property runs: their code does not depend on
# the dialect); the unit group uses no database and already ran in the PostgreSQL pass; the e2e (real Rasa) and browser
# (Chromium) groups drive the same service code end to end and run on PostgreSQL + Redis;
# `make test-sqlite-e2e` runs them on SQLite. (Both passes with every group took over 30
# minutes on 2 cores, the CI's budget.)
test-sqlite:
	TEST_REDIS_URL=$(REDIS_TEST_URL) $(PY) -m pytest -q -p no:cacheprovider -m "not unit and not e2e and not browser and not slow" $(PYTEST_ARGS)

test-sqlite-e2e:
	TEST_REDIS_URL=$(REDIS_TEST_URL) $(PY) -m pytest -q -p no:cacheprovider -m "e2e or browser" $(PYTEST_ARGS)

test-unit: $(VENV)/.installed
	$(PY) -m pytest -q -m unit $(PYTEST_ARGS)

bench: install services train
	scripts/bench.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check api actions bot tests scripts
	$(VENV)/bin/ruff format --check api actions tests
	$(VENV)/bin/mypy api actions

clean:
	rm -rf $(VENV) $(RASA_VENV) var results
