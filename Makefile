# Two entry points: `make run` (main job on built-in defaults) and `make test` (whole suite).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint install kernel-deps test-deps bench mutate clean

$(BIN)/servelab: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(BIN)/servelab

install: $(BIN)/servelab

# Kernel lab on CPU (Triton interpreter): the CPU build of torch + triton. `torch==2.13.0`
# is the CPU build where pip finds it locally (see docs/kernels.md); elsewhere pip
# fetches that release from PyPI.
kernel-deps: install
	$(BIN)/python -m pip install -q 'torch==2.13.0' triton

# Everything the suite needs: the real llama.cpp server (xllamacpp) for the load-client
# integration tests and torch/triton for the kernel interpreter checks. An install that
# fails stops `make test` here, loudly: nothing turns into a silent skip.
$(VENV)/.test-deps: $(BIN)/servelab
	$(BIN)/python -m pip install -q -e '.[dev,test-server]'
	$(BIN)/python -m pip install -q 'torch==2.13.0' triton
	touch $(VENV)/.test-deps

test-deps: $(VENV)/.test-deps

# The design brief's import rules (.importlinter); also a test (tests/test_architecture.py).
lint: install
	$(BIN)/lint-imports --no-cache

# Every skip is listed at the end of the run; with CI=true a non-GPU skip fails it.
test: install $(VENV)/.test-deps lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/run_all.py

# Mutation testing of the modules where a wrong number changes a decision (see
# docs/testing.md); `make mutate MUTATE_PATHS=src/servelab/sim/router.py` for one part.
MUTATE_PATHS ?=
mutate: install
	$(BIN)/python benchmarks/mutation.py $(MUTATE_PATHS)

clean:
	rm -rf $(VENV) build *.egg-info mutants
