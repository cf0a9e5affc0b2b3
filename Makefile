# The quick-start commands: `make demo` (the whole pipeline offline), `make serve` (browse it) and `make test`.
# Each creates .venv and installs what it needs on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo serve test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test]"
	# the optional semantic scorer: the CPU torch this machine kind ships, then the extra; without them
	# feedsvc ranks lexically and the semantic tests are skipped (and say so)
	-$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0 && \
	  $(BIN)/pip install --quiet --disable-pip-version-check -e ".[test,semantic]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/feedsvc demo

serve: $(BIN)/.installed
	$(BIN)/feedsvc demo --serve

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(BIN)/.installed
	$(BIN)/python bench/bench_pipeline.py

clean:
	rm -rf $(VENV) data/demo .pytest_cache .ruff_cache
