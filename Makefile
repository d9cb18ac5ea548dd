# Two commands matter: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Everything the demo and `make airflow` create lives here (git-ignored).
export MLOPS_HOME ?= $(CURDIR)/.mlops
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck unit integration airflow clean

venv: $(STAMP)

# Re-installs only when the pins or the package metadata change: a second `make demo` is fast.
$(STAMP): requirements.txt setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@# The build leaves an egg-info in operators/, which the editable path makes a second
	@# installed copy: Airflow would load each plugin entry point twice and report it.
	@rm -rf operators/airflow_mlops.egg-info
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/airflow-mlops demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -m "not integration" -p no:cacheprovider

integration: $(STAMP)
	$(BIN)/pytest -q -m integration -p no:cacheprovider

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider -ra

airflow: $(STAMP)
	$(BIN)/airflow-mlops stack

clean:
	rm -rf $(MLOPS_HOME)
