"""Bootstrap confidence intervals for any metric, resampling requests.

Method: the nonparametric percentile bootstrap (Efron & Tibshirani, *An
Introduction to the Bootstrap*, 1993, ch. 13). A resample draws n requests with
replacement from the n records; it is represented as a row of multiplicities
(how often each request was drawn), so every resample is evaluated by the same
weighted statistics as the point estimate (``_stats``) without copying records.
The interval is the (1 − c)/2 and (1 + c)/2 quantiles of the resampled metric.
Throughput-type metrics keep the run's duration fixed (the window is a design
choice, not a random quantity).

Per-request latency metrics are resampled in sample space: each request maps to
the rank of its value among the sorted samples, so one ``bincount`` of the drawn
ranks gives each resample's weights over the sorted values directly.

Pooled ITL of a large run (more than ``_ITL_EXACT_PER_REQUEST`` gaps per request on
average) is resampled through ≈ 440 quantile bins (``_ITL_LEVELS``) of the pooled gaps
(denser in the upper tail): per-request bin counts H (n × B), a resample's bin
counts = W @ H, each bin represented by the mean of its gaps. Mean and std stay
exact (per-request sums), min/max exact (per-request extremes); percentiles are
exact up to the width of one bin.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..records import RequestRecord
from ._columns import Columns, columns
from ._eval import Evaluator, parse_name, parse_thresholds
from ._stats import row_percentiles

__all__ = ["bootstrap_ci", "bootstrap_distribution"]

_CELLS_PER_CHUNK = 2_000_000      # resample-matrix cells per chunk (16 MB of int64)
_ITL_EXACT_PER_REQUEST = 16       # above this mean gaps/request, bin the pooled ITL
# Quantile levels of the ITL bin edges: uniform, then denser above p90, p99, p99.9.
_ITL_LEVELS = np.unique(np.r_[np.linspace(0, 1, 257), np.linspace(0.9, 1, 129),
                              np.linspace(0.99, 1, 65), np.linspace(0.999, 1, 33)])


class _Draws:
    """r resamples as drawn indices (r, n), standing in for the weight matrix in
    ``Evaluator.scalar``: ``W @ x`` = Σ x[drawn] per row, ``W.sum(1)`` = n."""

    def __init__(self, idx: np.ndarray) -> None:
        self.idx = idx
        self.shape = idx.shape

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        return x[self.idx].sum(axis=1)

    def sum(self, axis: int) -> np.ndarray:
        return np.full(self.shape[0], float(self.shape[1]))


def _request_weights(rng: np.random.Generator, n: int, r: int) -> np.ndarray:
    """(r, n) multiplicities of r resamples of n requests."""
    idx = rng.integers(0, n, size=(r, n))
    idx += np.arange(r)[:, None] * n
    return np.bincount(idx.ravel(), minlength=r * n).reshape(r, n)


def _ranked_latency(ev: Evaluator, base: str, stat: str, q: float | None,
                    rng: np.random.Generator, n_resamples: int) -> np.ndarray:
    v, _, req = ev.samples(base)
    m, n = v.size, ev.cols.n
    rank = np.full(n, m, dtype=np.int64)            # m = "no sample" sentinel
    rank[req] = np.arange(m)
    out = np.empty(n_resamples)
    chunk = max(1, _CELLS_PER_CHUNK // n)
    for lo in range(0, n_resamples, chunk):
        r = min(chunk, n_resamples - lo)
        ranks = rank[rng.integers(0, n, size=(r, n))]
        ranks += np.arange(r)[:, None] * (m + 1)
        W = np.bincount(ranks.ravel(), minlength=r * (m + 1)).reshape(r, m + 1)[:, :m]
        key = f"p{q:g}" if q is not None else stat
        res = ev.latency(base, [] if q is not None else [stat], [] if q is None else [q], W,
                         sample_space=True)
        out[lo:lo + r] = res[key]
    return out


def _binned_itl(ev: Evaluator, stat: str, q: float | None,
                rng: np.random.Generator, n_resamples: int) -> np.ndarray:
    v, w, req = ev.samples("itl")
    n = ev.cols.n
    edges = np.unique(np.quantile(v, _ITL_LEVELS))
    B = max(edges.size - 1, 1)
    b = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, B - 1)
    if q is not None:   # float32 BLAS: integer counts stay exact below 2**24 per bin
        H = np.bincount(req * B + b, weights=w, minlength=n * B).reshape(n, B).astype(np.float32)
    sw = np.bincount(b, weights=w, minlength=B)
    rep = np.bincount(b, weights=w * v, minlength=B) / np.where(sw > 0, sw, 1)   # bin means
    S0 = np.bincount(req, weights=w, minlength=n)
    S1 = np.bincount(req, weights=w * v, minlength=n)
    shift = float(rep @ sw / sw.sum())
    S2 = np.bincount(req, weights=w * (v - shift) ** 2, minlength=n)
    S1c = S1 - shift * S0
    if stat in ("min", "max"):                        # exact per-request extremes
        ext = np.full(n, np.inf if stat == "min" else -np.inf)
        (np.minimum if stat == "min" else np.maximum).at(ext, req, v)
    out = np.empty(n_resamples)
    chunk = max(1, _CELLS_PER_CHUNK // max(n, B))
    for lo in range(0, n_resamples, chunk):
        r = min(chunk, n_resamples - lo)
        W = _request_weights(rng, n, r).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            N = W @ S0
            mc = (W @ S1c) / N
            if stat in ("min", "max"):
                val = np.where(W > 0, ext, np.inf if stat == "min" else -np.inf)
                val = val.min(axis=1) if stat == "min" else val.max(axis=1)
                val[N <= 0] = np.nan
            elif stat in ("mean", "count", "std"):
                val = {"count": N, "mean": mc + shift,
                       "std": np.sqrt(np.maximum((W @ S2) / N - mc * mc, 0.0))}[stat]
            else:
                T = (W.astype(np.float32) @ H).astype(np.float64)
                val = row_percentiles(rep, T, [q])[:, 0]
        out[lo:lo + r] = val
    return out


def bootstrap_distribution(
    records: Iterable[RequestRecord] | Columns,
    name: str,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    duration_s: float | None = None,
    slo: Any = None,
    goodput: Any = None,
) -> np.ndarray:
    """The metric on each of ``n_resamples`` request resamples (NaN where undefined)."""
    base, stat, q = parse_name(name)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be ≥ 1, got {n_resamples}")
    cols = columns(records)
    ev = Evaluator(cols, duration_s=duration_s, thresholds=parse_thresholds(slo, goodput))
    n = cols.n
    rng = np.random.default_rng(seed)
    if n == 0:
        return np.full(n_resamples, np.nan)
    if stat and base == "itl":
        if ev.samples("itl")[0].size > _ITL_EXACT_PER_REQUEST * n:
            return _binned_itl(ev, stat, q, rng, n_resamples)
    elif stat:
        return _ranked_latency(ev, base, stat, q, rng, n_resamples)
    out = np.empty(n_resamples)
    if not stat:                                   # scalar: sums over drawn requests
        chunk = max(1, _CELLS_PER_CHUNK // n)
        for lo in range(0, n_resamples, chunk):
            r = min(chunk, n_resamples - lo)
            out[lo:lo + r] = ev.scalar(base, _Draws(rng.integers(0, n, size=(r, n))))  # type: ignore[arg-type]
        return out
    chunk = max(1, _CELLS_PER_CHUNK // max(n, ev.samples(base)[0].size))
    for lo in range(0, n_resamples, chunk):        # pooled ITL of a small run: exact weights
        r = min(chunk, n_resamples - lo)
        out[lo:lo + r] = ev.value(name, _request_weights(rng, n, r).astype(np.float64))
    return out


def bootstrap_ci(
    records: Iterable[RequestRecord] | Columns,
    name: str,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
    duration_s: float | None = None,
    slo: Any = None,
    goodput: Any = None,
) -> tuple[float, float]:
    """Percentile-bootstrap interval ``(lo, hi)`` of metric ``name`` at ``confidence``;
    ``(nan, nan)`` when the metric is undefined on every resample."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    dist = bootstrap_distribution(records, name, n_resamples=n_resamples, seed=seed,
                                  duration_s=duration_s, slo=slo, goodput=goodput)
    dist = dist[np.isfinite(dist)]
    if dist.size == 0:
        return (float("nan"), float("nan"))
    a = (1.0 - confidence) / 2.0
    lo, hi = np.percentile(dist, [100.0 * a, 100.0 * (1.0 - a)])
    return (float(lo), float(hi))
