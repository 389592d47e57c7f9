"""The whole test suite, several times in a row, beside busy CPU processes.

    python benchmarks/suite_under_load.py [--runs 3] [--busy 2]

The suite must not depend on the machine's speed (docs/testing.md, "No timing in
make test"): this runs ``pytest`` ``--runs`` times in a row while ``--busy`` processes spin
on the CPUs (``while True: pass``), and records for each run its exit status, wall time,
load average and the test counts of its JUnit report in
benchmarks/results/suite_under_load.json. Exit status 1 when any run failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "suite_under_load.json"


def counts(junit: Path) -> dict[str, int]:
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    return {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}


def main(argv: list[str]) -> int:
    runs, busy = 3, 2
    for flag in ("--runs", "--busy"):
        if flag in argv:
            i = argv.index(flag)
            value = int(argv[i + 1])
            if value < (1 if flag == "--runs" else 0):
                print(f"{flag} must be >= {1 if flag == '--runs' else 0}, got {value}", file=sys.stderr)
                return 2
            runs, busy = (value, busy) if flag == "--runs" else (runs, value)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    rows = []
    try:
        for k in range(1, runs + 1):
            with tempfile.TemporaryDirectory() as tmp:
                junit = Path(tmp) / "junit.xml"
                t0 = time.monotonic()
                rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                      f"--junitxml={junit}"], cwd=ROOT, stdout=subprocess.DEVNULL)
                wall = time.monotonic() - t0
                row = {"run": k, "rc": rc, "wall_s": round(wall, 1),
                       "loadavg_1m_after": round(os.getloadavg()[0], 2)}
                if junit.is_file():
                    row.update(counts(junit))
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        for p in spinners:
            p.kill()
    OUT.write_text(json.dumps({
        "command": "python benchmarks/suite_under_load.py" + (f" --runs {runs}" if runs != 3 else "")
                   + (f" --busy {busy}" if busy != 2 else ""),
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
        "busy_processes": busy, "runs": rows,
        "all_passed": all(r["rc"] == 0 for r in rows)}, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
