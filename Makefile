# `make quickstart` and `make test` create .venv on first use, then run.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed
WORKDIR ?= workdirs/quickstart
MECHANISMS ?= workdirs/mechanisms
# The mechanism experiments at CPU size (docs/mechanisms.md): run name = config:argument.
MECHANISM_RUNS := \
  gap1=velocity_gap.py:panel=1 gap2=velocity_gap.py:panel=2 gap3=velocity_gap.py:panel=3 \
  gap4=velocity_gap.py:panel=4 gap5=velocity_gap.py:panel=5 \
  gap1_seed1=velocity_gap.py:panel=1,seed=1 gap5_seed1=velocity_gap.py:panel=5,seed=1 \
  mem_right=memorization.py:flip=false mem_both=memorization.py:flip=true \
  mem_right_seed1=memorization.py:flip=false,seed=1 mem_both_seed1=memorization.py:flip=true,seed=1 \
  hole_2_3=collision_hole.py:hole=square_2_3 \
  color_shape=attributes.py:pairing=color_shape size_shape=attributes.py:pairing=size_shape \
  velocity_shape=attributes.py:pairing=velocity_shape \
  velocity_size=attributes.py:pairing=velocity_size color_size=attributes.py:pairing=color_size \
  color_velocity=attributes.py:pairing=color_velocity color_ring=attributes.py:pairing=color_ring \
  temporal=composition.py:kind=temporal spatial=composition.py:kind=spatial \
  temporal_no_red=composition.py:kind=temporal_no_red ambiguity=ambiguity.py:size=cpu

.PHONY: quickstart test test-slow test-all lint bench mechanisms

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[all,dev]"
	touch $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/python -m experiments.main --config=experiments/configs/quickstart.py --workdir=$(WORKDIR)

# Trains and evaluates every run of MECHANISM_RUNS (about 8 minutes each on 2 cores; finished
# runs are kept), then draws each probe's runs side by side in $(MECHANISMS)/compare.
mechanisms: $(STAMP)
	for run in $(MECHANISM_RUNS); do \
	  name=$${run%%=*}; config=$${run#*=}; \
	  test -f $(MECHANISMS)/$$name/eval.json || $(VENV)/bin/python -m experiments.main \
	    --config=experiments/configs/mechanisms/$$config --workdir=$(MECHANISMS)/$$name || exit 1; \
	done
	$(VENV)/bin/python -m experiments.main --mode=compare --workdir=$(MECHANISMS)/compare \
	  --runs='$(MECHANISMS)/*'

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q --durations=15

test-slow: $(STAMP)
	RUN_SLOW=1 $(VENV)/bin/python -m pytest -q -m slow --durations=25

test-all: $(STAMP)
	RUN_SLOW=1 $(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks.sim_throughput
