# The README's two commands: `make run` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUNS   ?= runs
# make jupyter / make ui listen here; set them in the environment (JUPYTER_IP=0.0.0.0 in a container).
JUPYTER_IP   ?= 127.0.0.1
JUPYTER_PORT ?= 8888
MLFLOW_HOST  ?= 127.0.0.1
MLFLOW_PORT  ?= 5000
# make test spreads the test files over this many pytest processes (pytest-xdist; 0: one
# process). A file stays in one process, so its module fixtures and numba compilations are
# paid once.
TEST_WORKERS ?= 2
# Jupyter refuses to start as root (containers, CI) unless told.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: help install run test lint jupyter ui bench clean browser

help:
	@echo "make run      install into .venv and run every numbered notebook (lab run all)"
	@echo "make test     install with dev extras and run the whole test suite (TEST_WORKERS=$(TEST_WORKERS) processes)"
	@echo "make jupyter  JupyterLab on notebooks/ (JUPYTER_IP, JUPYTER_PORT: $(JUPYTER_IP):$(JUPYTER_PORT))"
	@echo "make ui       MLflow UI on the local run store ($(RUNS)/mlflow.db; MLFLOW_HOST, MLFLOW_PORT: $(MLFLOW_HOST):$(MLFLOW_PORT))"
	@echo "make bench    the benchmarks in quick mode"
	@echo "make browser  Chromium and its driver (apt, as root) for the explain app's browser test"

# Re-install whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@echo "Installing the lab and its dependencies into $(VENV) (TensorFlow, MLflow, Jupyter: a few minutes the first time)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)
	@echo "Installed into $(VENV)"

install: $(STAMP)

run: $(STAMP)
	$(BIN)/lab run all --out $(RUNS)
	@echo "Reports are in $(RUNS)/<notebook>/<run>/report.html; list them with: $(BIN)/lab runs --out $(RUNS)"

lint: $(STAMP)
	$(BIN)/ruff check lab tests benchmarks

test: $(STAMP) lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

jupyter: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks --ip=$(JUPYTER_IP) --port=$(JUPYTER_PORT) $(ALLOW_ROOT)

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath $(RUNS))/mlflow.db --host $(MLFLOW_HOST) --port $(MLFLOW_PORT)

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache

# The explain app's browser test drives Debian's headless Chromium through selenium.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium and chromedriver are installed"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi
