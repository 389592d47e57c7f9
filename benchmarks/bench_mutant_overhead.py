"""CPU cost of one mutant's test run, with and without the two changes that make
``make mutate`` cheaper: ``gc.freeze()`` of the fork server's heap (tests/conftest.py)
and ``-p no:unraisableexception`` (pyproject ``[tool.mutmut]``).

Run after ``make mutate`` (it needs ``mutants/`` with mutmut's stats)::

    python benchmarks/bench_mutant_overhead.py [--repeat 7] [MUTANT ...]

Like mutmut's fork server, it collects the selected tests once, then forks one child per
run that executes a mutant's covering tests (``-x``, fastest first); the child's CPU time
(user + system, from ``wait4``) is the cost. Default mutants: the first killed mutant of a
few modules, so each run stops at its first failing test, as most mutants do. Prints the
median per variant and the ratio to the plain variant; writes
benchmarks/results/mutant_overhead.json.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import statistics
import sys
import tomllib
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "mutant_overhead.json"
DEFAULT_FUNCS = ("servelab.sim.engine.xǁReplicaEngineǁbegin", "servelab.sim.scheduler.xǁSchedulerǁ_admit",
                 "servelab.perf.step.", "servelab.metrics._stats.")


def first_killed(prefix: str) -> str | None:
    for meta in sorted((ROOT / "mutants" / "src").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        for name, code in sorted(data["exit_code_by_key"].items()):
            if name.startswith(prefix) and code == 1:
                return name
    return None


def main(argv: list[str]) -> int:
    repeat = 7
    if "--repeat" in argv:
        i = argv.index("--repeat")
        repeat = int(argv[i + 1])
        del argv[i:i + 2]
    if not (ROOT / "mutants" / "mutmut-stats.json").is_file():
        print("no mutants/mutmut-stats.json: run make mutate first", file=sys.stderr)
        return 2
    names = argv or [n for n in (first_killed(p) for p in DEFAULT_FUNCS) if n]
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    os.chdir(ROOT / "mutants")
    sys.path.insert(0, str(ROOT / "mutants" / "src"))
    base_args = [a for a in cfg["pytest_add_cli_args"]]
    plain_args = []
    skip = False
    for a, b in zip(base_args, base_args[1:] + [""]):   # the same options without no:unraisableexception
        if skip:
            skip = False
            continue
        if a == "-p" and b == "no:unraisableexception":
            skip = True
            continue
        plain_args.append(a)
    sel = cfg["pytest_add_cli_args_test_selection"]
    os.environ["MUTANT_UNDER_TEST"] = "mutant_generation"
    import pytest
    from mutmut.mutation.trampoline import set_mutant_under_test
    from mutmut.utils.format_utils import mangled_name_from_mutant_name

    with contextlib.redirect_stdout(io.StringIO()):
        pytest.main(["--rootdir=.", "--collect-only", "-qqq", *sel, *base_args])
    gc.unfreeze()                        # the conftest hook froze the heap; start plain
    stats = json.loads(Path("mutmut-stats.json").read_text())

    def child_cpu(name: str, args: list[str]) -> tuple[float, int]:
        tests = sorted(stats["tests_by_mangled_function_name"][mangled_name_from_mutant_name(name)])
        pid = os.fork()
        if pid == 0:
            set_mutant_under_test(name)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                rc = pytest.main(["--rootdir=.", "--tb=native", "-x", "-q", *tests, *args])
            os._exit(int(rc))
        _, status, ru = os.wait4(pid, 0)
        return ru.ru_utime + ru.ru_stime, os.waitstatus_to_exitcode(status)

    variants = [("plain", plain_args, False), ("no:unraisableexception", base_args, False),
                ("gc.freeze", plain_args, True), ("both (make mutate)", base_args, True)]
    rows = []
    for vname, args, freeze in variants:
        if freeze:
            gc.freeze()
        per = {}
        for name in names:
            runs = [child_cpu(name, args) for _ in range(repeat)]
            assert all(code == 1 for _, code in runs), f"{name}: expected a killed mutant, got {runs}"
            per[name] = statistics.median(c for c, _ in runs)
        if freeze:
            gc.unfreeze()
        rows.append({"variant": vname, "median_cpu_s": per, "mean_of_medians_s": statistics.fmean(per.values())})
    ref = rows[0]["mean_of_medians_s"]
    print(f"{'variant':26s} {'CPU s per mutant (mean of medians)':>34s} {'ratio':>6s}")
    for r in rows:
        r["ratio_to_plain"] = r["mean_of_medians_s"] / ref
        print(f"{r['variant']:26s} {r['mean_of_medians_s']:34.3f} {r['ratio_to_plain']:6.2f}")
    OUT.write_text(json.dumps({
        "command": "python benchmarks/bench_mutant_overhead.py" + (f" --repeat {repeat}" if repeat != 7 else ""),
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "loadavg": os.getloadavg()[0],
        "mutants": names, "repeat": repeat, "rows": rows}, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
