"""Speed of the metrics module: summarize and bootstrap CIs on synthetic runs.

Run: ``.venv/bin/python benchmarks/bench_metrics.py`` — prints one line per case
and writes ``benchmarks/results/metrics.json``. Target (docs/metrics.md): a
bootstrap CI of a per-request percentile metric over 10,000 records with 1,000
resamples in < 0.5 s on one core.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from servelab.metrics import bootstrap_ci, columns, summarize
from servelab.records import RequestRecord

# `make bench` writes to $SERVELAB_BENCH_OUT (outside tracked files); `make bench-record`
# copies those results here, into the committed benchmarks/results/.
_RESULTS = Path(__import__("os").environ.get("SERVELAB_BENCH_OUT") or Path(__file__).resolve().parent / "results")


def synthetic(n: int, *, gaps_per_request: int, seed: int = 0) -> list[RequestRecord]:
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        a = i * 0.01
        ok = rng.random() > 0.05
        t0 = a + float(rng.lognormal(-1.0, 0.6))
        times = (t0 + np.r_[0.0, np.cumsum(rng.gamma(4.0, 0.005, gaps_per_request))]).tolist()
        recs.append(RequestRecord(id=str(i), arrival_s=a, input_tokens=int(rng.integers(50, 2000)),
                                  output_tokens=gaps_per_request + 1, status="ok" if ok else "rejected",
                                  start_s=a + 0.01, first_token_s=t0 if ok else None,
                                  finish_s=times[-1] if ok else a, token_times_s=times if ok else None))
    return recs


def best_of(fn, repeat: int = 3) -> float:
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main() -> None:
    rows = []
    recs = synthetic(10_000, gaps_per_request=100)
    cols = columns(recs)
    cases = {
        "columns(10k records, 100 tokens each)": lambda: columns(recs),
        "summarize(10k records)": lambda: summarize(cols, slo={"ttft_p95": 1.0, "tpot": 0.05}),
    }
    for name in ("ttft_p95", "e2e_p99", "tpot_p50", "delivery", "goodput_rps", "itl_p99", "itl_mean"):
        cases[f"bootstrap_ci({name}, 10k records, 1000 resamples)"] = (
            lambda name=name: bootstrap_ci(cols, name, n_resamples=1000, slo={"ttft": 1.0}))
    for label, fn in cases.items():
        s = best_of(fn)
        rows.append({"what": label, "seconds_best_of_3": round(s, 4)})
        print(f"{label:60s} {s * 1e3:8.1f} ms")
    out = _RESULTS / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"host": platform.node(), "python": platform.python_version(),
                               "numpy": np.__version__, "cases": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
