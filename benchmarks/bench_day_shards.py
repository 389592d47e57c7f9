"""Sharded day simulation: error of replica-group sharding vs an unsharded run, and the
speed-up from 1 to 2 local workers.

Reference day (small enough to run whole): two pools on H100 SXM, diurnal curves with
peak 3× trough — Llama-3.1-8B ``chat`` (4 replicas, peak ``--chat-peak`` req/s at 20:00)
and Qwen3-30B-A3B ``code`` (3 replicas, peak ``--code-peak`` req/s at 15:00) — fixed
fleets, least-outstanding router.

1. Speed-up: the whole day sharded by pool (exact) on 1 worker and on 2 workers (wall time;
   on a shared host the sum of shard CPU seconds is printed too).
2. Error: the chat pool as 2 replica groups (2 × 2 replicas, each its own router) against
   the unsharded pool: p95 TTFT, p95 TPOT and delivery over the day.

    python benchmarks/bench_day_shards.py            # writes benchmarks/results/day_shards.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from servelab import __version__
from servelab.metrics import summarize
from servelab.plan.dayrun import simulate_day
from servelab.scenario import build, resolve

OUT = Path(__file__).resolve().parent / "results" / "day_shards.json"


def _pools(hours: float, chat_peak: float, code_peak: float) -> list[tuple[str, object]]:
    def sc(model: str, workload: str, replicas: int, peak: float, peak_hour: float, slo: str) -> object:
        return resolve({"model": model, "gpu": "h100-sxm", "workload": workload, "replicas": replicas,
                        "router": "least-outstanding", "duration_s": hours * 3600, "seed": 3, "slo": slo,
                        "rate_curve": {"kind": "diurnal", "peak_rps": peak, "peak_to_trough": 3,
                                       "peak_hour": peak_hour}})
    return [("chat-8b", sc("llama-3.1-8b", "chat", 4, chat_peak, 20, "ttft_p95=2s,tpot_p95=50ms")),
            ("code-moe", sc("qwen3-30b-a3b", "code", 3, code_peak, 15, "ttft_p95=500ms,e2e_p95=1s"))]


def _stats(records: list, slo: object) -> dict:
    s = summarize(records, slo=slo)
    return {"requests": s["offered"], "ttft_p95_s": s["ttft_s"]["p95"], "tpot_p95_s": s["tpot_s"]["p95"],
            "delivery": s["delivery"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--chat-peak", type=float, default=12.0)
    ap.add_argument("--code-peak", type=float, default=3.0)
    args = ap.parse_args()
    pools = _pools(args.hours, args.chat_peak, args.code_peak)
    rows: dict[str, dict] = {}
    for jobs in (1, 2):
        t0 = time.perf_counter()
        run = simulate_day(pools, jobs=jobs)
        wall = time.perf_counter() - t0
        cpu = sum(s.cpu_s for s in run.shards)
        rows[f"by_pool_{jobs}_workers"] = {"workers": jobs, "requests": len(run.records), "wall_s": wall,
                                           "shard_cpu_s": cpu, "requests_per_wall_s": len(run.records) / wall}
        print(f"by pool, {jobs} worker(s): {len(run.records):,} requests in {wall:.1f} s wall "
              f"({len(run.records) / wall:,.0f} req/s; shard CPU {cpu:.1f} s)")
    rows["speedup_1_to_2_workers"] = rows["by_pool_1_workers"]["wall_s"] / rows["by_pool_2_workers"]["wall_s"]
    print(f"speed-up 1 -> 2 workers: {rows['speedup_1_to_2_workers']:.2f}x")

    chat = [pools[0]]
    slo = build.slo(pools[0][1])
    whole = simulate_day(chat, groups=1, jobs=1)
    split = simulate_day(chat, groups=2, jobs=2)
    a, b = _stats(whole.records, slo), _stats(split.records, slo)
    err = {k: (b[k] - a[k]) / a[k] if a[k] else None for k in ("ttft_p95_s", "tpot_p95_s", "delivery")}
    rows["groups_error"] = {"pool": "chat-8b", "unsharded": a, "two_groups": b, "relative_error": err,
                            "unsharded_wall_s": whole.wall_s, "two_groups_wall_s": split.wall_s}
    print(f"chat pool, 2 replica groups vs unsharded: p95 TTFT {a['ttft_p95_s']:.4f} -> {b['ttft_p95_s']:.4f} s "
          f"({err['ttft_p95_s']:+.1%}), p95 TPOT {a['tpot_p95_s']:.5f} -> {b['tpot_p95_s']:.5f} s "
          f"({err['tpot_p95_s']:+.1%}), delivery {a['delivery']:.4f} -> {b['delivery']:.4f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "what": "sharded day simulation: speed-up and error", "hours": args.hours,
        "chat_peak_rps": args.chat_peak, "code_peak_rps": args.code_peak, "results": rows,
        "python": platform.python_version(), "servelab": __version__,
        "timestamp": datetime.now(timezone.utc).isoformat()}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
