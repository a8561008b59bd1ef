# Two commands for a newcomer: `make demo` and `make test`.
# Each creates .venv (with the first python3 >= 3.10 on PATH) and installs what it needs
# from pyproject.toml. Set PYTHON=python3.12 to choose another interpreter.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "gaussmix needs Python >= 3.10"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per set of extras, remade whenever pyproject.toml changes.
$(VENV)/.stamp-cli: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[cli]"
	touch $@

$(VENV)/.stamp-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[cli,dask,test]"
	touch $@ $(VENV)/.stamp-cli

$(VENV)/.stamp-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $@

demo: $(VENV)/.stamp-cli
	$(BIN)/gaussmix demo -o demo-output

lint: $(VENV)/.stamp-test
	$(BIN)/ruff check src tests benchmarks

test: lint
	$(BIN)/python -m pytest

ROUNDS ?= 3
bench: $(VENV)/.stamp-bench
	$(BIN)/python benchmarks/bench_em.py --rounds $(ROUNDS)

bench-quick: $(VENV)/.stamp-bench
	$(BIN)/python benchmarks/bench_em.py --quick

clean:
	rm -rf $(VENV) demo-output build dist src/*.egg-info .pytest_cache .ruff_cache
