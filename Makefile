# Two entry points: `make run` (main job on built-in defaults) and `make test` (whole suite).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install kernel-deps bench clean

$(BIN)/servelab: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(BIN)/servelab

install: $(BIN)/servelab

# Kernel lab on CPU (Triton interpreter): torch CPU build + triton. Optional: the
# kernel tests skip without them. CI installs them (see .ci/run).
kernel-deps: install
	$(BIN)/python -m pip install -q 'torch==2.13.0' triton

run: install
	$(BIN)/servelab plan --report plan-report.html

# Test-only extras: the real llama.cpp server (xllamacpp) for the load-client
# integration tests; they skip with a reason when it cannot be installed.
$(VENV)/.test-deps: $(BIN)/servelab
	$(BIN)/python -m pip install -q -e '.[dev,test-server]' || echo "xllamacpp unavailable: llama.cpp tests will skip"
	touch $(VENV)/.test-deps

test: install $(VENV)/.test-deps
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
