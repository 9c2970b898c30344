# Two commands on a fresh machine: `make repro` and `make test`.
# PYTHON picks the interpreter that creates .venv (3.10 or newer).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: setup setup-dev repro test test-fast fuzz bench clean

# dvc runs each stage's `python -m ...` through PATH: the venv must come first.
export PATH := $(CURDIR)/$(BIN):$(PATH)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The install is re-run only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(STAMP)

setup-dev: $(DEV_STAMP)

repro: setup
	dvc repro

test: setup-dev
	$(BIN)/python -m pytest

test-fast: setup-dev
	$(BIN)/python -m pytest -m "not e2e and not gpu and not fuzz"

# Thousands of mutated DICOM/NIfTI files through ingest (FUZZ_CASES, FUZZ_SEED to vary).
FUZZ_CASES ?= 5000
FUZZ_SEED ?= 2024
fuzz: setup-dev
	FUZZ_CASES=$(FUZZ_CASES) FUZZ_SEED=$(FUZZ_SEED) $(BIN)/python -m pytest tests/fuzz -m fuzz -q

bench: setup-dev
	$(BIN)/python benchmarks/ingest_throughput.py
	$(BIN)/python benchmarks/train_throughput.py --quick

clean:
	rm -rf $(VENV) .pytest_cache
