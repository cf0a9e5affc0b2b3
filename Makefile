# The two quick-start commands: `make demo` (the whole pipeline offline) and `make test`.
# Each creates .venv and installs what it needs on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/feedsvc demo

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check feedsvc tests bench

bench: $(BIN)/.installed
	$(BIN)/python bench/bench_pipeline.py

clean:
	rm -rf $(VENV) data/demo .pytest_cache .ruff_cache
