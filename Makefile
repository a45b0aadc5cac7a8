# `make quickstart` and `make test` create .venv on first use, then run.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed
WORKDIR ?= workdirs/quickstart

.PHONY: quickstart test test-slow test-all lint bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/python -m experiments.main --config=experiments/configs/quickstart.py --workdir=$(WORKDIR)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

test-slow: $(STAMP)
	RUN_SLOW=1 $(VENV)/bin/python -m pytest -q -m slow

test-all: $(STAMP)
	RUN_SLOW=1 $(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks.sim_throughput
