# otel-monitor: `make demo` and `make test` set everything up themselves on a fresh Debian machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
export OTEL_MONITOR_CACHE ?= $(HOME)/.cache/otel-monitor
# The collector and Jaeger are built once per input and cached outside the checkout.
BINARIES = OTEL_MONITOR_COLLECTOR_BIN="$$(scripts/build-collector.sh)" OTEL_MONITOR_JAEGER_BIN="$$(scripts/build-jaeger.sh)"

.PHONY: help setup system-packages python binaries test demo bench clean

help:
	@echo "make demo   - start the whole stack and the demo backend, drive traffic, print a failing trace"
	@echo "make test   - set up and run the test suite on real servers"
	@echo "make bench  - run the benchmarks of bench/ (results: docs/BENCHMARKS.md)"

setup: system-packages python binaries

system-packages:
	@scripts/install-system-packages.sh

python: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[demo,test]'
	touch $@

binaries:
	@scripts/build-collector.sh >/dev/null
	@scripts/build-jaeger.sh >/dev/null

test: setup
	$(BINARIES) $(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(BINARIES) $(PY) -m examples.run_demo $(DEMO_ARGS)

bench: setup
	$(BINARIES) $(PY) -m bench.run_all

clean:
	rm -rf $(VENV) logs .pytest_cache
