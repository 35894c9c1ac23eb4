# The two entry points: `make demo` (the main job on embedded defaults) and `make test`.
# Both start with `make setup`, which creates .venv once and is quick afterwards.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test lint format demo bench docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: setup lint
	$(BIN)/pytest -q

demo: setup
	$(BIN)/acmmg demo --out data/published

docs: setup
	$(BIN)/acmmg stages --write-doc docs/architecture.md

bench: setup
	$(BIN)/python bench/bench_graph.py

clean:
	rm -rf data/work data/published .pytest_cache
