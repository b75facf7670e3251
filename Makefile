# Two commands: `make run` and `make test`. Both create .venv from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCALE ?= 200000

.PHONY: run test lint typecheck bench bench-scaling clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/timeline serve --demo

test: $(STAMP)
	$(BIN)/ruff check events projections services tests bench tools
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check events projections services tests bench tools

typecheck: $(STAMP)
	$(BIN)/mypy

# The benchmark of issue 5 (docs/performance.md): `make bench SCALE=1000000`.
bench: $(STAMP)
	$(BIN)/python -m bench.run --scale $(SCALE)

# Issue 7's figures on the local 6-node cluster (docs/scaling.md): about 5 minutes
# on 2 cores at the default; `make bench-scaling SCALE=100000` for more.
bench-scaling: SCALE = 20000
bench-scaling: $(STAMP)
	$(BIN)/python -m bench.scaling --scale $(SCALE)

clean:
	rm -rf $(VENV) .timeline .pytest_cache .mypy_cache
