# Two entry points: `make run` (main job on built-in defaults) and `make test` (whole suite).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-deps lint install kernel-deps bench bench-record docs-check mutate shell clean

# Where `make bench` writes (git-ignored); `make bench-record` copies it into the
# committed benchmarks/results/.
BENCH_OUT ?= runs/bench-results

$(BIN)/servelab: pyproject.toml
	@echo "==> creating the virtual environment $(VENV) (once)"
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "==> installing servelab and its dependencies into $(VENV) (about a minute the first time)"
	$(BIN)/python -m pip install -e '.[dev]' --progress-bar off
	touch $(BIN)/servelab
	@echo "==> installed; use it with: source $(VENV)/bin/activate   (or: make shell)"

install: $(BIN)/servelab

# Kernel lab on CPU (Triton interpreter): the CPU build of torch + triton. `torch==2.13.0`
# is the CPU build where pip finds it locally (see docs/testing.md); elsewhere pip
# fetches that release from PyPI. `make test` installs them too.
kernel-deps: install
	$(BIN)/python -m pip install -q 'torch==2.13.0' triton

run: install
	@mkdir -p runs
	@echo "==> servelab plan on built-in defaults (report: runs/plan-report.html)"
	$(BIN)/servelab plan --report runs/plan-report.html

# A shell with the virtual environment active (exit to leave).
shell: install
	@echo "==> servelab $$($(BIN)/servelab --version | cut -d' ' -f2) active; exit to leave"
	@VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(BIN):$$PATH $${SHELL:-bash} -i

# Everything the suite needs: the real llama.cpp server (xllamacpp) for the load-client
# integration tests, local Ray for the sharded day simulation, torch/triton for the
# kernel interpreter checks. An install that fails stops `make test` here, loudly:
# nothing turns into a silent skip.
$(VENV)/.test-deps: $(BIN)/servelab
	$(BIN)/python -m pip install -q -e '.[dev,test-server,dist]'
	$(BIN)/python -m pip install -q 'torch==2.13.0' triton
	touch $(VENV)/.test-deps

test-deps: $(VENV)/.test-deps

# The design brief's import rules (.importlinter); also a test (tests/test_architecture.py).
lint: install
	$(BIN)/lint-imports --no-cache

# Every skip is listed at the end of the run; with CI=true a non-GPU skip fails it.
test: install $(VENV)/.test-deps lint
	$(BIN)/python -m pytest

# Numbers in README.md and docs/ against the files and commands they come from
# (tests/test_docs.py; also part of `make test`).
docs-check: install
	$(BIN)/python -m pytest tests/test_docs.py

bench: install
	@mkdir -p $(BENCH_OUT)
	SERVELAB_BENCH_OUT=$(BENCH_OUT) $(BIN)/python benchmarks/run_all.py
	@echo "==> results in $(BENCH_OUT)/; to commit them: make bench-record"

bench-record:
	@test -d $(BENCH_OUT) || { echo "no $(BENCH_OUT)/: run make bench first"; exit 1; }
	cp $(BENCH_OUT)/*.json benchmarks/results/
	@if ls $(BENCH_OUT)/*.jsonl >/dev/null 2>&1; then cp $(BENCH_OUT)/*.jsonl benchmarks/results/; fi
	@echo "==> copied into benchmarks/results/; run make docs-check to see which documented numbers changed"

# Mutation testing of the modules where a wrong number changes a decision (see
# docs/testing.md): two children, fast reference tests only, incremental (mutants/ keeps
# the verdicts). `make mutate MUTATE_PATHS=src/servelab/sim/router.py` for one part;
# MUTATE_FLAGS=--survivors re-tests only the previous survivors (after adding tests).
MUTATE_PATHS ?=
MUTATE_FLAGS ?=
mutate: install
	nice -n 10 $(BIN)/python benchmarks/mutation.py --docs $(MUTATE_FLAGS) $(MUTATE_PATHS)

clean:
	rm -rf $(VENV) build *.egg-info mutants
