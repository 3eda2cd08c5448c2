PYTHON ?= python3.11
PYTHON312 ?= python3.12
PYTHON313 ?= python3.13
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 5000
FAST := HYPOTHESIS_PROFILE=check
# Test processes side by side (pytest-xdist), an idle one taking tests from a busy one: most
# tests wait on a subprocess or a server. Two fit a 2-core machine; WORKERS=auto takes every core.
WORKERS ?= 2
XDIST := -n $(WORKERS) --dist worksteal
# `make compat`: the fast tier in each; the lowest one holds constraints/lowest.txt (Python 3.11)
COMPAT := .venv-py3.12 .venv-py3.13 .venv-lowest

.PHONY: run check test bench-smoke compat ui bench

# A fresh machine needs only Python 3.11: the venv and the dependencies are made here.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Only what the fast tier needs (the check extra): the newest releases in range on 3.12 and
# 3.13, the lowest declared ones on 3.11
.venv-py3.12/.installed: INTERPRETER = $(PYTHON312)
.venv-py3.13/.installed: INTERPRETER = $(PYTHON313)
.venv-lowest/.installed: INTERPRETER = $(PYTHON)
.venv-lowest/.installed: CONSTRAINTS = -c constraints/lowest.txt
.venv-lowest/.installed: constraints/lowest.txt
$(COMPAT:%=%/.installed): %/.installed: pyproject.toml
	$(INTERPRETER) -m venv $*
	$*/bin/python -m pip install --quiet --upgrade pip
	$*/bin/python -m pip install --quiet $(CONSTRAINTS) -e '.[check]'
	touch $@

run: $(VENV)/.installed  ## the notebook's 8 cells as one sweep, recorded in outputs/mlflow.db
	$(PY) -m runner -m sweep=seed

check: $(VENV)/.installed  ## the fast tier: unit and in-process tests, a few CLI stories (about 70 s)
	$(FAST) $(PY) -m pytest -q $(XDIST) -m "not slow" tests

test: $(VENV)/.installed  ## everything but the benchmarks: real servers, launchers, a browser, faults
	$(PY) -m pytest -q $(XDIST) -m "not bench" tests

bench-smoke: $(VENV)/.installed  ## each benchmark once at tiny sizes, so none rots (about 3 minutes)
	$(PY) -m pytest -q $(XDIST) -m bench tests

compat: $(COMPAT:%=%/.installed)  ## the fast tier on Python 3.12, 3.13 and the lowest declared versions
	@failed=; for venv in $(COMPAT); do \
	  echo "== $$venv: $$($$venv/bin/python -c 'import importlib.metadata as m, platform; \
	    print(f"Python {platform.python_version()}", *(f"{p} {m.version(p)}" for p in \
	    ("tensorflow", "keras", "mlflow", "hydra-core", "numpy", "pandas")), sep=", ")')"; \
	  $(FAST) $$venv/bin/python -m pytest -q $(XDIST) -m "not slow" tests || failed="$$failed $$venv"; \
	done; \
	if [ -n "$$failed" ]; then echo "make compat: the fast tier failed in$$failed"; exit 1; fi

bench: $(VENV)/.installed  ## the runner beside bare Keras (about 15 minutes)
	$(PY) benchmarks/run.py --repeats 3

ui: $(VENV)/.installed  ## the MLflow UI over the embedded store, on 127.0.0.1 only
	$(PY) -m runner.ui --port $(PORT)
