"""Time series from records: load, throughput, concurrency and delivery over time.

Buckets are [k·b, (k+1)·b) for bucket width b = ``bucket_s``, from 0 (the run's
start) to the last arrival/finish. Per bucket:

- ``offered_rps``: arrivals / b; ``completed_rps``: ok finishes / b;
  ``rejected_rps``: rejected arrivals / b; ``failed_rps``: timed_out + failed + cancelled / b
  (counted at their finish time, else their arrival).
- ``throughput_tokens_per_s``: output tokens emitted in the bucket / b. Tokens are
  placed at their ``token_times_s``; without them, the first at ``first_token_s``
  and the other out − 1 spread uniformly over (first_token_s, finish_s].
- ``running``: time-averaged number of requests in the system (arrival → finish,
  any status) — ∫ N(t) dt over the bucket / b, computed exactly from
  prefix sums: ∫₀ᵀ N = Σᵢ (T − aᵢ)⁺ − (T − fᵢ)⁺.
- ``delivery``: ok / offered among requests *arriving* in the bucket (None if none).
- ``ttft_p50_s``, ``ttft_p95_s``: of ok requests arriving in the bucket.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from ..records import STATUSES, RequestRecord
from ._columns import Columns, columns
from .summary import json_number

__all__ = ["timeseries_from_records"]


def _integral_in_system(a: np.ndarray, f: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """∫₀ᴱ N(t) dt at each edge E, N(t) = #{i: aᵢ ≤ t < fᵢ}."""
    def part(x: np.ndarray) -> np.ndarray:
        xs = np.sort(x)
        csum = np.r_[0.0, np.cumsum(xs)]
        k = np.searchsorted(xs, edges, side="left")
        return k * edges - csum[k]
    return part(a) - part(f)


def _cum_tokens(c: Columns, recs: list[RequestRecord], edges: np.ndarray) -> np.ndarray:
    """Output tokens emitted before each edge (ok requests)."""
    total = np.zeros(edges.size)
    timed = [r.token_times_s for i, r in enumerate(recs)
             if c.ok[i] and r.token_times_s]
    if timed:
        flat = np.sort(np.concatenate([np.asarray(t, dtype=np.float64) for t in timed]))
        total += np.searchsorted(flat, edges, side="left")
    untimed = np.array([i for i, r in enumerate(recs)
                        if c.ok[i] and not r.token_times_s and c.output_tokens[i] > 0
                        and math.isfinite(c.first_token_s[i] if math.isfinite(c.first_token_s[i])
                                          else c.finish_s[i])], dtype=np.int64)
    for lo in range(0, untimed.size, 2048):                 # bound the (chunk × edges) matrix
        i = untimed[lo:lo + 2048]
        ft = np.where(np.isfinite(c.first_token_s[i]), c.first_token_s[i], c.finish_s[i])
        fin = np.where(np.isfinite(c.finish_s[i]), c.finish_s[i], ft)
        rest = c.output_tokens[i] - 1
        E = edges[None, :]
        span = np.maximum(fin - ft, 1e-300)[:, None]
        frac = np.clip((E - ft[:, None]) / span, 0.0, 1.0)
        frac = np.where(E > fin[:, None], 1.0, frac)
        total += ((E > ft[:, None]) * (1.0 + rest[:, None] * frac)).sum(axis=0)
    return total


def timeseries_from_records(records: Iterable[RequestRecord], bucket_s: float) -> dict[str, Any]:
    """Per-bucket series (keys in the module docstring) plus ``t_s`` (bucket starts)
    and ``bucket_s``; plain JSON-able lists, None where undefined."""
    if not bucket_s > 0:
        raise ValueError(f"bucket_s must be > 0, got {bucket_s!r}")
    recs = list(records)
    c = columns(recs)
    if c.n == 0:
        return {"bucket_s": bucket_s, "t_s": []}
    a = c.arrival_s
    end_time = np.where(np.isfinite(c.finish_s), c.finish_s, a)
    t_end = float(max(end_time.max(), a.max()))
    nb = max(1, int(math.floor(t_end / bucket_s)) + 1)
    edges = np.arange(nb + 1) * bucket_s
    bucket = np.minimum(np.floor(np.maximum(a, 0.0) / bucket_s).astype(np.int64), nb - 1)

    def per_bucket(times: np.ndarray) -> np.ndarray:
        b = np.clip(np.floor(times / bucket_s).astype(np.int64), 0, nb - 1)
        return np.bincount(b, minlength=nb).astype(np.float64)

    offered = np.bincount(bucket, minlength=nb).astype(np.float64)
    ok_arr = np.bincount(bucket[c.ok], minlength=nb).astype(np.float64)
    rej = c.status == STATUSES.index("rejected")
    bad = ~c.ok & ~rej
    tokens = np.diff(_cum_tokens(c, recs, edges))
    running = np.diff(_integral_in_system(a, end_time, edges)) / bucket_s
    with np.errstate(invalid="ignore", divide="ignore"):
        delivery = np.where(offered > 0, ok_arr / np.maximum(offered, 1), np.nan)
    p50 = np.full(nb, np.nan)
    p95 = np.full(nb, np.nan)
    has = np.isfinite(c.ttft_s)
    for k in np.unique(bucket[has]):
        vals = c.ttft_s[has & (bucket == k)]
        p50[k], p95[k] = np.percentile(vals, [50, 95])

    def js(x: np.ndarray) -> list[float | None]:
        return [json_number(v) for v in x]

    return {
        "bucket_s": bucket_s,
        "t_s": js(edges[:-1]),
        "offered_rps": js(offered / bucket_s),
        "completed_rps": js(per_bucket(end_time[c.ok]) / bucket_s),
        "rejected_rps": js(per_bucket(a[rej]) / bucket_s),
        "failed_rps": js(per_bucket(end_time[bad]) / bucket_s),
        "throughput_tokens_per_s": js(tokens / bucket_s),
        "running": js(running),
        "delivery": js(delivery),
        "ttft_p50_s": js(p50),
        "ttft_p95_s": js(p95),
    }
