# otel-monitor: `make demo` and `make test` set everything up themselves on a fresh Debian machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
export OTEL_MONITOR_CACHE ?= $(HOME)/.cache/otel-monitor
# The collector and Jaeger are built once per input and cached outside the checkout.
BINARIES = OTEL_MONITOR_COLLECTOR_BIN="$$(scripts/build-collector.sh)" OTEL_MONITOR_JAEGER_BIN="$$(scripts/build-jaeger.sh)"
# The other Python versions the library claims (requires-python): its unit tests run on each of them too.
OTHER_PYTHONS := 3.12 3.13
# The library's unit tests (tests/unit/ mirrors the package): the in-backend half and the testing module.
LIBRARY_UNIT_TESTS := tests/unit/instrument tests/unit/logs tests/unit/test_testing_module.py

.PHONY: help setup system-packages python binaries lint test test-python-versions $(OTHER_PYTHONS:%=test-py%) \
	demo bench constraints clean dashboards

help:
	@echo "make demo         - start the whole stack and the demo backend, drive traffic, print a failing trace"
	@echo "make test         - the gates (make lint), then the test suite on real servers; the library's unit"
	@echo "                    tests also on Python $(OTHER_PYTHONS)"
	@echo "make lint         - ruff (lint and format), mypy, import contracts"
	@echo "make bench        - run the benchmarks of bench/ (results: docs/BENCHMARKS.md)"
	@echo "make dashboards   - write the dashboards' thresholds from config/thresholds.yaml"
	@echo "make constraints  - re-resolve pyproject.toml's ranges and pin the result in constraints.txt"

setup: system-packages python binaries

system-packages:
	@scripts/install-system-packages.sh

python: $(VENV)/.installed

# constraints.txt pins the exact set of packages installed here (so by `make test`, `make demo` and CI);
# pyproject.toml keeps ranges, for the backends that install the library.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[monitor,celery,demo,test]' -c constraints.txt
	touch $@

# Refreshing the pins (to take new releases, or after changing a range in pyproject.toml): `make constraints`
# installs every extra into a scratch venv with no pins, the newest releases the ranges allow, and writes what it
# got to constraints.txt; then run `make test` and commit both files.
CONSTRAINTS_VENV := $(OTEL_MONITOR_CACHE)/constraints-venv
constraints:
	rm -rf $(CONSTRAINTS_VENV)
	$(PYTHON) -m venv $(CONSTRAINTS_VENV)
	$(CONSTRAINTS_VENV)/bin/python -m pip install -q --upgrade pip
	$(CONSTRAINTS_VENV)/bin/python -m pip install -q '.[monitor,celery,demo,test]'
	{ echo "# Every package \`make test\`, \`make demo\` and CI install, at the versions they are tested with" \
		"(Python $$($(CONSTRAINTS_VENV)/bin/python -c 'import sys; print(*sys.version_info[:2], sep=".")'))."; \
	  echo "# Written by \`make constraints\` (see the Makefile); not edited by hand."; \
	  $(CONSTRAINTS_VENV)/bin/python -m pip freeze --exclude otel-monitor; } > constraints.txt
	rm -rf $(CONSTRAINTS_VENV)

binaries:
	@scripts/build-collector.sh >/dev/null
	@scripts/build-jaeger.sh >/dev/null

# The gates: style, types and the import contracts (pyproject.toml configures each and says what each covers).
lint: python
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Each version's venv is cached by the dependencies and constraints.txt (scripts/python-venv.sh); the checkout's
# code is tested through PYTHONPATH.
$(OTHER_PYTHONS:%=test-py%): test-py%: system-packages
	PYTHONPATH=$(CURDIR) "$$(scripts/python-venv.sh $*)" -m pytest -q -p no:cacheprovider $(LIBRARY_UNIT_TESTS)

test-python-versions: $(OTHER_PYTHONS:%=test-py%)

# The gates and the other Pythons come first, and independent of each other: `make -j3 -O test` runs them side by side.
test: setup lint test-python-versions
	$(BINARIES) $(PY) -m pytest $(PYTEST_ARGS)

# The dashboards' threshold steps come from config/thresholds.yaml (the rules read it at load); a test fails while
# the committed JSON is stale.
dashboards: python
	$(PY) -m tools.dashboards

demo: setup
	$(BINARIES) $(PY) -m examples.run_demo $(DEMO_ARGS)

bench: setup
	$(BINARIES) $(PY) -m bench.run_all

clean:
	rm -rf $(VENV) logs .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
