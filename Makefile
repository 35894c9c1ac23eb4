# The two entry points: `make demo` (the main job on embedded defaults) and `make test`.
# Both start with `make setup`, which creates .venv once and is quick afterwards.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup chromium test lint format demo bench bench-flow docs clean

setup: $(STAMP) chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The explorer's browser test (tests/test_explorer.py) drives the OS's Chromium: Debian's
# package, installed here with apt-get when it is missing and setup runs as root. Where it
# cannot be installed, setup says so and the test skips with the reason (pytest -rs).
chromium:
	@if command -v chromium >/dev/null 2>&1 || [ -n "$$ACMMG_CHROMIUM" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "setup: installing Chromium for the browser test (apt-get install chromium)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	    >/dev/null; } || echo "setup: apt-get could not install chromium: the browser test will skip"; \
	else echo "setup: no chromium and no root apt-get: the browser test will skip"; fi

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

# The whole flow on Electronics-shaped samples, stage by stage (minutes per scale); results
# in data/bench/flow/results.json, the table in bench/README.md. SCALES="0.1 1" for the big ones.
SCALES ?= 0.001 0.01
bench-flow: setup
	$(BIN)/python bench/bench_flow.py --scales $(SCALES) --write-readme

clean:
	rm -rf data/work data/published .pytest_cache
