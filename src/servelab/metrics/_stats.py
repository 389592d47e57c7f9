"""Weighted order statistics over rows of resample weights.

A bootstrap resample of n requests is a row of multiplicities (how often each
request was drawn), so every statistic here takes sorted sample values ``v`` (m,)
and a weight matrix ``W`` (R, m) and returns one value per row.

Percentiles use numpy's default "linear" method (the one ``vllm bench serve`` gets
from ``np.percentile``) applied to the virtual array in which value ``v[j]``
appears ``W[r, j]`` times: with N = Σ_j W[r, j], position h = q/100 · (N − 1),
result = x(⌊h⌋) + (h − ⌊h⌋)·(x(⌊h⌋ + 1) − x(⌊h⌋)), where x(k) is the k-th element
(0-based) of the virtual array. For integer weights this equals ``np.percentile``
of the repeated values exactly; for fractional weights it is the natural extension.
Mean and std are the weighted population moments (``np.std``'s ddof = 0).
Rows with no weight give NaN.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["row_percentiles", "row_moments", "pct_key"]


def pct_key(q: float) -> str:
    """Key of a percentile in summaries: 95 → ``p95``, 99.9 → ``p99.9``."""
    return f"p{q:g}"


def _virtual_index(cum: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Column of the k-th virtual element per row: first j with cum[r, j] > k[r]."""
    return np.fromiter((np.searchsorted(cum[r], k[r], side="right") for r in range(cum.shape[0])),
                       dtype=np.int64, count=cum.shape[0])


def row_percentiles(v: np.ndarray, W: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """(R, len(qs)) weighted percentiles; ``v`` ascending, ``W`` (R, m) ≥ 0."""
    R, m = W.shape
    out = np.full((R, len(qs)), np.nan)
    if m == 0:
        return out
    cum = np.cumsum(W, axis=1)
    N = cum[:, -1]
    has = N > 0
    for c, q in enumerate(qs):
        if not 0 <= q <= 100:
            raise ValueError(f"percentile {q!r} outside [0, 100]")
        h = q / 100.0 * np.maximum(N - 1.0, 0.0)
        lo = np.floor(h)
        frac = h - lo
        i_lo = np.minimum(_virtual_index(cum, lo), m - 1)
        i_hi = np.minimum(_virtual_index(cum, lo + 1.0), m - 1)
        x_lo, x_hi = v[i_lo], v[i_hi]
        # Same form as numpy's lerp, so equal inputs give bit-identical results.
        val = np.where(frac > 0, x_lo + frac * (x_hi - x_lo), x_lo)
        out[:, c] = np.where(has, val, np.nan)
    return out


def row_moments(v: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, mean, std) per row; mean/std NaN where the row has no weight."""
    N = W.sum(axis=1)
    shift = float(v.mean()) if v.size else 0.0   # centre first: no cancellation in E[x²] − E[x]²
    c = v - shift
    with np.errstate(invalid="ignore", divide="ignore"):
        mc = (W @ c) / N
        var = (W @ (c * c)) / N - mc * mc
        mean = mc + shift
    std = np.sqrt(np.maximum(var, 0.0))
    return N, mean, std
