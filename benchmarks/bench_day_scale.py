"""A day of fleet traffic at scale: `servelab simulate-day` on the 20-million-request example.

Runs the command as a user would (a subprocess, records streamed to a run folder) and
records, per run: wall time, CPU time of the command and its workers (user + system,
``RUSAGE_CHILDREN``), the peak RSS of the largest process and of each shard, records
written (rows of ``records.parquet``) and its size on disk, simulated requests per wall
second and per CPU second, and the 1-minute load average sampled every 5 s during the run
(the host is shared: a load above the core count means the run did not have its cores).

    python benchmarks/bench_day_scale.py                       # 24 h, 20 M requests, --jobs 2, chat-8b in 2 groups
    python benchmarks/bench_day_scale.py --hours 6 --jobs 1 2  # the same 6 h on 1 and on 2 workers

Rows are appended to ``benchmarks/results/day_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "day_scale.json"
FLEET = ROOT / "examples" / "fleet-day" / "three-models-20m.yaml"
PLAN = ROOT / "examples" / "fleet-day" / "report-20m.json"


def _servelab() -> list[str]:
    exe = Path(sys.executable).with_name("servelab")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "servelab.cli"]


def _run(args: argparse.Namespace, jobs: int) -> dict:
    import pyarrow.parquet as pq

    folder = Path(args.out) / f"jobs{jobs}"
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [*(["nice", "-n", str(args.nice)] if args.nice else []), *_servelab(), "simulate-day", str(args.fleet),
           "--plan", str(args.plan), "--hours", f"{args.hours:g}", "--groups", str(args.groups),
           "--jobs", str(jobs), "--out", str(folder)]
    loads: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while True:
            loads.append(os.getloadavg()[0])
            if stop.wait(5.0):
                return

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = json.loads((folder / "summary.json").read_text())
    rows = pq.ParquetFile(folder / "records.parquet").metadata.num_rows
    size = (folder / "records.parquet").stat().st_size
    row = {
        "what": "simulate-day", "command": " ".join(cmd), "hours": args.hours, "groups": args.groups, "jobs": jobs,
        "wall_s": wall, "cpu_s": cpu, "peak_rss_bytes": after.ru_maxrss * 1024,
        "shard_peak_rss_bytes": [s.get("peak_rss_bytes") for s in summary["shards"]],
        "shard_cpu_s": [s["cpu_s"] for s in summary["shards"]],
        "records_written": rows, "records_parquet_bytes": size, "offered": summary["offered"],
        "requests_per_wall_s": rows / wall, "requests_per_cpu_s": rows / cpu if cpu > 0 else None,
        "load_avg_1m": {"min": min(loads), "mean": sum(loads) / len(loads), "max": max(loads), "samples": len(loads)},
        "cpus": os.cpu_count(),
        "pools": {k: {"offered": v["offered"], "delivery": v["delivery"], "ttft_p95_s": v["ttft_s"]["p95"],
                      "tpot_p95_s": v["tpot_s"]["p95"], "slo_met": v["slo_met"]}
                  for k, v in summary["pools"].items()},
    }
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fleet", default=str(FLEET))
    ap.add_argument("--plan", default=str(PLAN))
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--groups", default="chat-8b=2", help="replica groups: K for every pool or POOL=K[,POOL=K]")
    ap.add_argument("--jobs", type=int, nargs="+", default=[2])
    ap.add_argument("--nice", type=int, default=5)
    ap.add_argument("--out", default="/tmp/servelab-bench-day")
    ap.add_argument("--keep", action="store_true", help="keep the run folders")
    args = ap.parse_args()
    from servelab import __version__

    results = []
    for jobs in args.jobs:
        row = _run(args, jobs)
        row.update(version=__version__, python=platform.python_version(), host=platform.node(),
                   timestamp=datetime.now(timezone.utc).isoformat())
        results.append(row)
        la = row["load_avg_1m"]
        print(f"jobs {jobs}: {row['records_written']:,} records in {row['wall_s']:.1f} s wall, {row['cpu_s']:.1f} s CPU "
              f"({row['requests_per_cpu_s']:,.0f} req/CPU-s), peak RSS {row['peak_rss_bytes'] / 2**30:.2f} GiB, "
              f"records.parquet {row['records_parquet_bytes'] / 2**20:.0f} MiB, load avg {la['min']:.1f}–{la['max']:.1f}")
    if len(results) == 2 and results[0]["jobs"] == 1:
        print(f"speed-up 1 -> {results[1]['jobs']} workers: {results[0]['wall_s'] / results[1]['wall_s']:.2f}x wall")
    old = json.loads(OUT.read_text()) if OUT.exists() else []
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(old + results, indent=2) + "\n")
    print(f"appended {len(results)} rows to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
