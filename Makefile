# The README's two commands: `make run` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUNS   ?= runs

.PHONY: help install run test lint jupyter ui bench clean

help:
	@echo "make run      install into .venv and run every numbered notebook (lab run all)"
	@echo "make test     install with dev extras and run the whole test suite"
	@echo "make jupyter  JupyterLab on notebooks/"
	@echo "make ui       MLflow UI on the local run store ($(RUNS)/mlflow.db)"
	@echo "make bench    the benchmarks in quick mode"

# Re-install whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/lab run all --out $(RUNS)
	@echo "Reports are in $(RUNS)/<notebook>/<run>/report.html; list them with: $(BIN)/lab runs --out $(RUNS)"

lint: $(STAMP)
	$(BIN)/ruff check lab tests benchmarks

test: $(STAMP) lint
	$(BIN)/python -m pytest

jupyter: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath $(RUNS))/mlflow.db

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
