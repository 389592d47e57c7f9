"""Run every servelab benchmark in one go: ``make bench`` (or ``python benchmarks/run_all.py``).

Each benchmark is its own script (printing its numbers and ratios against the peer
tools it names, and writing ``benchmarks/results/<name>.json``); this runner starts
them one after another, passes ``--quick``-style options where a script has them, and
prints a one-line status per benchmark at the end. ``--only sim,plan`` runs a subset.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (name, script, extra args) — in dependency order: model accuracy first, then speed.
BENCHMARKS: list[tuple[str, str, list[str]]] = [
    ("calibrate", "calibrate.py", []),
    ("validate_global", "validate.py", ["--global-defaults"]),
    ("calibrate_families", "calibrate_families.py", []),
    ("validate", "validate.py", []),
    ("perf_step_speed", "perf_step_speed.py", []),
    ("metrics", "bench_metrics.py", []),
    ("sim", "bench_sim.py", ["--repeat", "3"]),
    ("tier_policies", "bench_tier_policies.py", []),
    ("pd", "bench_pd.py", []),
    ("lora_slots", "bench_lora_slots.py", []),
    ("plan", "bench_plan.py", []),
    ("load", "bench_load.py", []),
    ("faults", "bench_faults.py", []),
    ("sweep", "bench_sweep.py", []),
    ("kernels", "bench_kernels.py", ["--quick"]),
    ("drill", "bench_drill.py", []),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated subset of: "
                    + ", ".join(b[0] for b in BENCHMARKS))
    args = ap.parse_args()
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    unknown = wanted - {b[0] for b in BENCHMARKS}
    if unknown:
        ap.error(f"unknown benchmark(s) {sorted(unknown)}; known: {', '.join(b[0] for b in BENCHMARKS)}")
    status: list[tuple[str, int, float]] = []
    for name, script, extra in BENCHMARKS:
        if wanted and name not in wanted:
            continue
        print(f"\n=== {name}: python benchmarks/{script} {' '.join(extra)}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / script), *extra])
        status.append((name, rc, time.perf_counter() - t0))
    print("\n=== summary")
    for name, rc, wall_s in status:
        print(f"{name:16s} {'ok' if rc == 0 else f'exit {rc}':8s} {wall_s:7.1f} s")
    import os
    print(f"results in {os.environ.get('SERVELAB_BENCH_OUT') or HERE / 'results'}")
    return 0 if all(rc == 0 for _, rc, _ in status) else 1


if __name__ == "__main__":
    sys.exit(main())
