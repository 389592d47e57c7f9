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
- ``ttft_p50_s``, ``ttft_p95_s``, ``ttft_p99_s``, ``tpot_p50_s``, ``tpot_p95_s``,
  ``e2e_p50_s``, ``e2e_p95_s``: percentiles (numpy's linear interpolation, as in
  ``summarize``) of the ok requests arriving in the bucket; None where it has none.

The run's time-series file
--------------------------
``run_timeseries`` builds the one format every source writes to a run folder's
``timeseries.json`` (``format: "servelab.timeseries/1"``), whatever produced the run
(simulator, load client against a server or the emulator, an imported result):

- ``requests``: the per-bucket series above, from the records;
- ``server`` (when the source has one): ``{"source", "t_s", "series": {name: [...]}}``,
  gauges sampled at ``t_s`` (seconds from the run's start) — ``running``, ``waiting``
  (requests), ``kv_usage`` (fraction of KV blocks in use, 0–1), ``replicas`` — and
  counter rates per second over the interval ending at ``t_s`` (``*_per_s``, from
  the change between samples; None at the first sample and across a counter reset).

A source may add its raw data beside these keys (the load client keeps the scraped
``/metrics`` samples); readers use ``requests``/``server`` only.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from ..records import STATUSES, RequestRecord
from ._columns import Columns, columns
from .summary import json_number

__all__ = ["timeseries_from_records", "run_timeseries", "server_section", "default_bucket_s", "TIMESERIES_FORMAT"]

TIMESERIES_FORMAT = "servelab.timeseries/1"
_PCT_SERIES = (("ttft", 50), ("ttft", 95), ("ttft", 99), ("tpot", 50), ("tpot", 95), ("e2e", 50), ("e2e", 95))


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
    pct: dict[str, np.ndarray] = {}
    for base in sorted({b for b, _ in _PCT_SERIES}):
        qs = [q for b, q in _PCT_SERIES if b == base]
        arr = {q: np.full(nb, np.nan) for q in qs}
        vals_all = c.latency(base)
        has = np.isfinite(vals_all)
        for k in np.unique(bucket[has]):
            got = np.percentile(vals_all[has & (bucket == k)], qs)
            for q, v in zip(qs, got):
                arr[q][k] = v
        for q in qs:
            pct[f"{base}_p{q}_s"] = arr[q]

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
        **{f"{b}_p{q}_s": js(pct[f"{b}_p{q}_s"]) for b, q in _PCT_SERIES},
    }


def default_bucket_s(records: Iterable[RequestRecord], buckets: int = 60) -> float:
    """A bucket width giving about ``buckets`` buckets over the run's span, rounded
    to 1, 2 or 5 × 10^k seconds (at least 1 ms)."""
    c = columns(list(records))
    if c.n == 0:
        return 1.0
    end = np.where(np.isfinite(c.finish_s), c.finish_s, c.arrival_s)
    span = float(max(np.nanmax(end), np.nanmax(c.arrival_s), 1e-3))
    raw = max(span / buckets, 1e-3)
    e = math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * 10 ** e >= raw * 0.999:
            return float(m * 10 ** e)
    return float(10 ** (e + 1))   # pragma: no cover - the loop always returns


def server_section(source: str, t_s: Iterable[float], series: dict[str, Iterable[float | None]]) -> dict[str, Any]:
    """The ``server`` part of a run's time series; ``ValueError`` when a series'
    length differs from ``t_s``'s."""
    t = [json_number(float(x)) for x in t_s]
    out: dict[str, list[float | None]] = {}
    for name, vals in series.items():
        v = [None if x is None else json_number(float(x)) for x in vals]
        if len(v) != len(t):
            raise ValueError(f"server series {name!r} has {len(v)} values for {len(t)} sample times")
        out[name] = v
    return {"source": source, "t_s": t, "series": out}


def run_timeseries(records: Iterable[RequestRecord], *, server: dict[str, Any] | None = None,
                   bucket_s: float | None = None) -> dict[str, Any]:
    """A run folder's ``timeseries.json`` (module docstring): request series from
    ``records`` in ``bucket_s`` buckets (default ``default_bucket_s``), plus the
    ``server`` section when given (``server_section``)."""
    recs = list(records)
    doc: dict[str, Any] = {"format": TIMESERIES_FORMAT,
                           "requests": timeseries_from_records(recs, bucket_s or default_bucket_s(recs))}
    if server is not None:
        doc["server"] = server
    return doc
