PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 5000

.PHONY: run check test ui bench

# A fresh machine needs only Python 3.11: the venv and the pinned dependencies are made here.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed  ## the notebook's 8 cells as one sweep, recorded in outputs/mlflow.db
	$(PY) -m runner -m sweep=seed

check: $(VENV)/.installed  ## the fast tier: unit and in-process tests, a few CLI stories (< 90 s)
	HYPOTHESIS_PROFILE=check $(PY) -m pytest -q -m "not slow" tests

test: $(VENV)/.installed  ## everything: real servers, launchers, a browser, faults
	$(PY) -m pytest -q tests

bench: $(VENV)/.installed  ## the runner beside bare Keras (about 10 minutes)
	$(PY) benchmarks/run.py --repeats 3

ui: $(VENV)/.installed  ## the MLflow UI over the embedded store, on 127.0.0.1 only
	$(PY) -m runner.ui --port $(PORT)
