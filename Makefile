# Two commands on a fresh machine: `make demo` and `make test`.
# Both create (or reuse) the virtual environment in $(VENV) and install what is needed.

VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# CPU build of torch from local disk; GPU servers install without this constraint.
CONSTRAINTS := constraints/cpu.txt

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) "torch==2.13.0"
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[all]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/appliance demo

lint: $(STAMP)
	$(VENV)/bin/ruff check appliance hub agent tui tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy appliance hub agent tui bench

test: lint typecheck
	$(VENV)/bin/pytest -q

bench: $(STAMP)
	$(PY) bench/bench_inference.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
