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

# Mutation testing (`make mutate`, pyproject [tool.mutmut] passes --hypothesis-profile=mutation):
# one failing example kills a mutant, so no shrinking; no example database (mutants would
# fill it) and derandomized, so every mutant meets the same examples.
from hypothesis import Phase, settings as _hyp_settings  # noqa: E402

_hyp_settings.register_profile("mutation", phases=(Phase.explicit, Phase.reuse, Phase.generate),
                               database=None, derandomize=True)


_MUTMUT_DURATIONS: dict[str, float] | None = None


def _mutmut_durations() -> dict[str, float]:
    """Per-test durations of mutmut's stats run (cwd mutants/), {} when there are none."""
    global _MUTMUT_DURATIONS
    if _MUTMUT_DURATIONS is None:
        import json

        try:
            _MUTMUT_DURATIONS = dict(json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"])
        except (OSError, ValueError, KeyError):
            _MUTMUT_DURATIONS = {}
    return _MUTMUT_DURATIONS


def pytest_collection_modifyitems(config, items):
    """Under mutmut (a mutant's run, cwd mutants/): fastest tests first, by the durations
    of mutmut's stats run, so a killed mutant stops (-x) after the cheapest failing test."""
    if os.environ.get("MUTANT_UNDER_TEST", "") in ("", "stats", "fail", "list_all_tests", "mutant_generation"):
        return
    durations = _mutmut_durations()
    if durations:
        items.sort(key=lambda it: durations.get(it.nodeid, 0.0))


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """mutmut's stats run (which records every call) and its clean run test the unmutated
    code, so they detect no hang: under a loaded machine they get 60 s per test instead of
    the mutation runs' ``--timeout`` (pyproject ``[tool.mutmut]``). Runs after
    pytest-timeout's own ``pytest_configure``, which read that option."""
    if ("mutmut" in sys.modules and os.environ.get("MUTANT_UNDER_TEST") in ("stats", "")
            and getattr(config, "_env_timeout", None)):
        config._env_timeout = max(config._env_timeout, 60.0)


def pytest_sessionfinish(session):
    """mutmut's fork server collects the tests once, then forks one child per mutant.
    Freezing that heap (gc.freeze) keeps each child's garbage collector from walking it,
    and from copying every page it touches: a killed mutant's run costs 0.55 times the
    CPU without it (benchmarks/bench_mutant_overhead.py, benchmarks/results/mutant_overhead.json).
    Only there: a collect-only session with mutmut loaded and mutmut's stats written."""
    if "mutmut" in sys.modules and session.config.option.collectonly and Path("mutmut-stats.json").is_file():
        import gc

        _mutmut_durations()
        gc.freeze()


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


@pytest.fixture(scope="session")
def fam_fit():
    """``benchmarks/calibrate_families.py`` loaded as a module (the per-family fitter)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("servelab_bench_families", BENCH / "calibrate_families.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod          # dataclasses look their module up
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCH))
    return mod


# ----------------------------------------------------------------------------- skips, listed and policed
# Every skip is listed at the end of the run, one line each with its reason. With
# CI=true a skip of anything but a GPU-only test (marker ``gpu``) fails the run: CI
# installs everything the suite needs, so any other skip is missing coverage.
_SKIPS: list[tuple[str, str, bool]] = []          # (test id, reason, gpu-only)


def _skip_reason(report) -> str:
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2]).removeprefix("Skipped: ")
    return str(lr)


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPS.append((report.nodeid, _skip_reason(report), "gpu" in report.keywords))


def pytest_collectreport(report):
    if report.skipped:
        _SKIPS.append((report.nodeid, _skip_reason(report), False))


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _forbidden_skips() -> list[tuple[str, str, bool]]:
    return [s for s in _SKIPS if not s[2]] if _ci() else []


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    tr.write_sep("-", f"skips: {len(_SKIPS)}")
    for nodeid, reason, gpu in _SKIPS:
        tr.write_line(f"SKIP {nodeid}{' [gpu]' if gpu else ''}: {reason}")
    bad = _forbidden_skips()
    if bad:
        tr.write_line(f"CI=true: {len(bad)} skip(s) of non-GPU tests count as failures "
                      "(install what they need; see .ci/run)", red=True, bold=True)


def pytest_sessionfinish(session, exitstatus):
    if _forbidden_skips() and session.exitstatus == 0:
        session.exitstatus = 1
