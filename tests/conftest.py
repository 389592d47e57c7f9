"""Shared fixtures."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

# Commands run without an output path write to runs/<command>-<time>; during the tests
# that root is a temporary folder, not the working tree.
_RUNS = tempfile.mkdtemp(prefix="servelab-test-runs-")
os.environ["SERVELAB_RUNS_DIR"] = _RUNS
atexit.register(shutil.rmtree, _RUNS, ignore_errors=True)


@pytest.fixture(scope="session")
def val():
    """``benchmarks/validate.py`` loaded as a module (predictions of published results)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("servelab_bench_validate", BENCH / "validate.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCH))
    return mod
