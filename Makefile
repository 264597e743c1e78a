# Parking 24/7 — entry points. `make demo` and `make test` work on a fresh Debian 12 machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR ?= $(CURDIR)/data
export PARKING_DATA_DIR ?= $(DATA_DIR)

# Suites (lab, browser, edge) add themselves to TEST_TARGETS from mk/*.mk.
TEST_TARGETS :=
-include mk/*.mk

.PHONY: venv demo test-python test test-fast lint typecheck clean

# The virtualenv is (re)built when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || (apt-get update && apt-get install -y python3 python3-venv)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || (apt-get update && apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV))
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/parking-central demo

lint: venv
	$(VENV)/bin/ruff check app tests bench support tools
	$(VENV)/bin/ruff format --check app tests bench support tools

typecheck: venv
	$(VENV)/bin/mypy

# Everything: lint, types, unit + integration (real PostgreSQL) and the suites other
# makefiles in mk/ add to TEST_TARGETS (lab, browser).
test: venv lint typecheck test-python $(TEST_TARGETS)

# Quick local loop: Python tests only (SQLite + a throwaway PostgreSQL).
test-fast: venv test-python

# The integration tests start their own throwaway PostgreSQL clusters from Debian's binaries.
test-python: venv
	scripts/ensure-postgres.sh
	$(VENV)/bin/pytest -q --durations=10 tests/unit tests/integration

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

