"""Claim metrics on one run's evidence: point value, bootstrap draws, interval.

- Request metrics (``metrics.metric_names()``): ``metrics.metric_value`` for the point
  value, ``metrics.bootstrap_distribution`` (requests resampled with replacement) for
  the draws; the run's makespan is the throughput duration and the scenario's
  SLO defines goodput.
- Proportions of offered requests (``delivery``, ``slo_attainment``): the percentile
  bootstrap collapses to a point when every request (or none) succeeded — 133 of 133
  delivered gives [1, 1], although a true delivery of 0.99 yields 133 of 133 with
  probability 0.99¹³³ ≈ 0.26. Their interval is therefore widened to contain the
  Wilson score interval of k successes in n (Wilson, JASA 22:209, 1927):
  (p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n), z the normal quantile of the
  confidence level. All-ok runs then need n ≥ z²·t/(1−t) requests to support
  ``delivery >= t`` (380 for t = 0.99 at 95%).
- Rates of successes (``goodput_rps`` = slo_attainment × n / window,
  ``request_throughput_rps`` = delivery × n / window) collapse the same way, so their
  interval is widened to contain the Wilson interval of the proportion × n / window.
- ``cost_per_million_tokens`` (USD per 10⁶ output tokens) =
  fleet_usd_per_hour / 3600 / output_tokens_per_s × 10⁶, with
  fleet_usd_per_hour = the scenario's packed fleet cost (``scenario.build.fleet_usd_per_hour``:
  replicas of tp × pp GPUs packed into instance sizes, × the price per GPU-hour — the
  cost model plans use), and output_tokens_per_s = ``metrics`` ``throughput_tokens_per_s``
  (delivered output tokens over the run's makespan). The map is monotone, so each bootstrap draw of the
  throughput gives a draw of the cost. Undefined (NaN) when nothing was delivered.
- Kernel-lab metrics (e.g. ``pct_of_peak``, ``gb_per_s``): the results rows matching
  the claim's kernel/provider/dtype/shape filter and metric name. Value = median of
  the rows' p50; interval = [min, max] over the rows' p50/p95/p99 figures — not a
  bootstrap: the lab reports percentiles over many timed calls, and the interval
  requires the claim to hold across that spread. No draws (kernel claims are absolute).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..metrics.proportion import PROPORTION_METRICS, wilson_interval
from ..records import RequestRecord
from .verdict import Estimate, interval

__all__ = ["RunEvidence", "estimate", "kernel_estimate", "matching_kernel_rows", "wilson_interval",
           "MILLION", "PROPORTION_METRICS", "RATE_OF_PROPORTION"]

MILLION = 1e6
# rate metric -> the proportion of offered requests it is n / window times
RATE_OF_PROPORTION = {"goodput_rps": "slo_attainment", "request_throughput_rps": "delivery"}
_HOUR_S = 3600.0


@dataclass(frozen=True, kw_only=True, eq=False)
class RunEvidence:
    """One run's usable content, as loaded from the ledger."""
    run_id: str
    kind: str                          # simulate | bench | kernels
    scenario: str
    records: Sequence[RequestRecord] = ()
    rows: Sequence[dict[str, Any]] = ()
    duration_s: float | None = None
    slo: Any = None                    # catalog.SLO (or None) used for goodput
    fleet_usd_per_hour: float = 0.0

    @property
    def n(self) -> int:
        return len(self.rows) if self.kind == "kernels" else len(self.records)


def estimate(ev: RunEvidence, metric: str, *, confidence: float, n_resamples: int,
             seed: int) -> Estimate:
    """The claim metric on one run's records (see the module docstring)."""
    from .. import metrics

    name = "throughput_tokens_per_s" if metric == "cost_per_million_tokens" else metric
    cols = metrics.columns(ev.records)
    value = metrics.metric_value(cols, name, duration_s=ev.duration_s, slo=ev.slo)
    draws = metrics.bootstrap_distribution(cols, name, n_resamples=n_resamples, seed=seed,
                                           duration_s=ev.duration_s, slo=ev.slo)
    if metric == "cost_per_million_tokens":
        value, draws = _cost(value, ev.fleet_usd_per_hour), _cost(draws, ev.fleet_usd_per_hour)
    lo, hi = interval(draws, confidence)
    if metric in PROPORTION_METRICS and math.isfinite(value) and len(ev.records):
        wlo, whi = wilson_interval(value * len(ev.records), len(ev.records), confidence)
        lo, hi = (wlo, whi) if not math.isfinite(lo) else (min(lo, wlo), max(hi, whi))
    elif metric in RATE_OF_PROPORTION and math.isfinite(value) and len(ev.records):
        n = len(ev.records)
        p = metrics.metric_value(cols, RATE_OF_PROPORTION[metric], duration_s=ev.duration_s, slo=ev.slo)
        window_s = metrics.metric_value(cols, "duration_s", duration_s=ev.duration_s, slo=ev.slo)
        if math.isfinite(p) and math.isfinite(window_s) and window_s > 0:
            wlo, whi = wilson_interval(p * n, n, confidence)
            wlo, whi = wlo * n / window_s, whi * n / window_s
            lo, hi = (wlo, whi) if not math.isfinite(lo) else (min(lo, wlo), max(hi, whi))
    return Estimate(value=float(value), lo=lo, hi=hi, n=len(ev.records), run_ids=(ev.run_id,),
                    kind=ev.kind, draws=np.asarray(draws, dtype=np.float64), scenario=ev.scenario)


def _cost(tokens_per_s: Any, usd_per_hour: float) -> Any:
    t = np.asarray(tokens_per_s, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(t > 0, usd_per_hour / _HOUR_S / t * MILLION, np.nan)
    return float(c) if c.ndim == 0 else c


def matching_kernel_rows(rows: Sequence[dict[str, Any]], metric: str, *, kernel: str,
                         provider: str | None = None, dtype: str | None = None,
                         shape: str | None = None) -> list[dict[str, Any]]:
    """Rows of ``metric`` for the kernel filter (shape compared as text)."""
    out = []
    for r in rows:
        if r.get("metric") != metric or r.get("kernel") != kernel:
            continue
        if provider is not None and r.get("provider") != provider:
            continue
        if dtype is not None and r.get("dtype") != dtype:
            continue
        if shape is not None and _shape_text(r.get("shape")) != _shape_text(shape):
            continue
        out.append(r)
    return out


def _shape_text(shape: Any) -> str:
    if isinstance(shape, (list, tuple)):
        return "x".join(str(s) for s in shape)
    if isinstance(shape, dict):
        return ",".join(f"{k}={v}" for k, v in shape.items())
    return str(shape).replace(" ", "").replace("×", "x")


def kernel_estimate(run_id: str, scenario: str, rows: Sequence[dict[str, Any]]) -> Estimate:
    """Value and spread of matching kernel-lab rows (see the module docstring)."""
    p50 = [float(r["p50"]) for r in rows if r.get("p50") is not None]
    spread = [float(r[k]) for r in rows for k in ("p50", "p95", "p99") if r.get(k) is not None]
    if not p50:
        nan = float("nan")
        return Estimate(value=nan, lo=nan, hi=nan, n=0, run_ids=(run_id,), kind="kernels",
                        scenario=scenario)
    return Estimate(value=float(np.median(p50)), lo=min(spread), hi=max(spread), n=len(rows),
                    run_ids=(run_id,), kind="kernels", scenario=scenario)
