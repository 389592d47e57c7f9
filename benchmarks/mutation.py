"""Mutation testing of the decision-critical modules: ``make mutate`` (mutmut).

mutmut changes one operator, constant or call at a time in the modules listed under
``[tool.mutmut] only_mutate`` in pyproject.toml (``sim/``, ``perf/``, ``metrics/``,
``evidence/verdict.py``, ``plan/sizing.py``, ``scenario/cost.py``) and runs the tests that
cover the changed function; a mutant that no test notices "survived". The score of a
part is killed / checked (timeouts count as killed: the mutant hung the code; mutants
no test covers count as survivors).

Usage::

    python benchmarks/mutation.py                       # everything in scope
    python benchmarks/mutation.py src/servelab/sim/router.py src/servelab/perf/step.py
    python benchmarks/mutation.py --collect src/servelab/sim/router.py   # record an interrupted run

With ``--collect`` nothing runs: the results mutmut kept in mutants/ are recorded (an
interrupted run leaves mutants "not checked"; they are counted apart, not as killed).

Arguments are files or folders under src/; each becomes a mutmut name pattern
(``servelab.sim.router.*``). Writes benchmarks/results/mutation.json (merged with the
parts measured before, each with its date and the command) and prints a table.
A full run over the whole scope takes hours on a 2-core machine; see docs/testing.md
for what has been measured.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "mutation.json"
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
UNCHECKED = {"not checked", "skipped"}


def pattern_of(path: str) -> str:
    p = Path(path)
    rel = p.resolve().relative_to(ROOT / "src") if p.is_absolute() or (ROOT / p).exists() else p
    mod = str(rel).removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    return mod.removeprefix("src.") + ".*"


def read_results(mutmut: str) -> dict[str, str]:
    out = subprocess.run([mutmut, "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    status = {}
    for line in out.splitlines():
        m = re.match(r"\s+(\S+): (.+)$", line)
        if m:
            status[m.group(1)] = m.group(2).strip()
    return status


def module_of(mutant: str) -> str:
    """servelab.sim.router.x_pick__mutmut_3 or servelab.sim.router.xǁRouterǁpick__mutmut_1
    → servelab.sim.router."""
    head = re.split(r"\.x[_ǁ]", mutant, maxsplit=1)[0]
    return head


def main(argv: list[str]) -> int:
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    collect = bool(argv) and argv[0] == "--collect"
    if collect:
        argv = argv[1:]
    patterns = [pattern_of(a) for a in argv]
    t0 = time.monotonic()
    rc = 0 if collect else subprocess.call([mutmut, "run", *patterns], cwd=ROOT)
    wall_s = time.monotonic() - t0
    if rc != 0:
        print(f"mutmut run exited {rc}", file=sys.stderr)
        return rc
    status = read_results(mutmut)
    wanted = [p.removesuffix("*") for p in patterns]
    by_module: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    survivors: dict[str, list[str]] = defaultdict(list)
    for name, st in status.items():
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        mod = module_of(name)
        by_module[mod][st] += 1
        if st not in KILLED and st not in UNCHECKED:
            survivors[mod].append(name)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"modules": {}}
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cmd = "python benchmarks/mutation.py " + ("--collect " if collect else "") + " ".join(argv)
    print(f"{'module':34s} {'mutants':>8s} {'killed':>7s} {'survived':>9s} {'score':>7s}")
    for mod in sorted(by_module):
        c = by_module[mod]
        checked = sum(v for k, v in c.items() if k not in UNCHECKED)
        killed = sum(v for k, v in c.items() if k in KILLED)
        score = killed / checked if checked else None
        old["modules"][mod] = {"statuses": dict(c), "checked": checked, "killed": killed,
                               "not_checked": sum(v for k, v in c.items() if k in UNCHECKED),
                               "score": score, "survivors": sorted(survivors[mod]),
                               "measured": now, "command": cmd}
        print(f"{mod:34s} {checked:8d} {killed:7d} {checked - killed:9d} "
              f"{'-' if score is None else f'{100 * score:6.1f}%'}")
    packages: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for mod, d in old["modules"].items():
        pkg = ".".join(mod.split(".")[:2])
        packages[pkg][0] += d["killed"]
        packages[pkg][1] += d["checked"]
    old["packages_measured_so_far"] = {
        p: {"killed": k, "checked": n, "score": k / n if n else None,
            "modules": sorted(m for m in old["modules"] if m.startswith(p + "."))}
        for p, (k, n) in sorted(packages.items())}
    old["note"] = ("Scores cover only the modules listed; a package's figure is over the modules "
                   "measured so far, not the whole package unless every module is listed.")
    if not collect:
        old.setdefault("runs", []).append({"command": cmd, "at": now, "wall_s": round(wall_s, 1)})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(old, indent=2, ensure_ascii=False) + "\n")
    print(f"wall {wall_s:.0f} s; wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
