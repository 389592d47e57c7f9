"""Step 1 of the plan: characterize the workload from its generated arrivals.

What it measures, over a request list generated from the workload preset:

* mean rate ``λ = N / T`` (requests per second over the arrival window ``T``);
* peak rate: the ``peak_percentile`` (default 99th) of the sliding-window rate
  ``count(t ≤ a < t + w) / w`` over window starts ``t`` spaced ``w / 10`` apart, with
  ``w = peak_window_s`` (default 10 s). A Poisson stream at 20 req/s over 10 s windows
  has counts ≈ N(200, 14²), so its 99th-percentile window rate is ≈ 23.3 req/s;
  bursty gamma arrivals (shape < 1) give larger peaks;
* burstiness: the gamma shape of the preset and the measured coefficient of
  variation of inter-arrival gaps (1 for Poisson, ``1/sqrt(shape)`` for gamma);
* input, output and context (input + output) length percentiles, in tokens;
* prefix sharing: the fraction of requests carrying a shared prefix, the fraction
  of all input tokens that are shared prefix tokens, and the cacheable fraction (shared
  prefixes plus the conversation history of multi-turn requests, which a prefix cache
  can reuse);
* the SLO targets, one entry per ``metric_pXX``.

Units: seconds, requests/s, tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["LengthStats", "WorkloadProfile", "sliding_window_rates", "peak_rate", "characterize"]

LENGTH_PERCENTILES: tuple[float, ...] = (50, 90, 95, 99)


@dataclass(frozen=True, kw_only=True)
class LengthStats:
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "LengthStats":
        a = np.asarray(values, dtype=float)
        if a.size == 0:
            return cls(mean=0.0, p50=0.0, p90=0.0, p95=0.0, p99=0.0, max=0.0)
        p50, p90, p95, p99 = (float(x) for x in np.percentile(a, LENGTH_PERCENTILES))
        return cls(mean=float(a.mean()), p50=p50, p90=p90, p95=p95, p99=p99, max=float(a.max()))


@dataclass(frozen=True, kw_only=True)
class WorkloadProfile:
    workload: str
    num_requests: int
    duration_s: float
    mean_rate_rps: float
    peak_rate_rps: float
    peak_window_s: float
    peak_percentile: float
    arrival_kind: str
    burstiness: float               # gamma shape of the preset (1 = Poisson)
    interarrival_cv: float          # measured coefficient of variation of gaps
    input_tokens: LengthStats
    output_tokens: LengthStats
    context_tokens: LengthStats     # input + output per request
    prefix_request_fraction: float  # requests that carry a shared prefix
    prefix_token_fraction: float    # shared-prefix tokens / all input tokens
    cacheable_token_fraction: float = 0.0   # (shared prefix + earlier turns' history) / input tokens
    slo: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["slo"] = [dict(t) for t in self.slo]
        return d


def sliding_window_rates(arrivals_s: Sequence[float], *, window_s: float,
                         horizon_s: float | None = None, steps_per_window: int = 10) -> np.ndarray:
    """Rates (req/s) in windows ``[t, t + window_s)`` for ``t = 0, w/k, 2w/k, …``
    up to ``horizon_s − window_s`` (``horizon_s`` defaults to the last arrival)."""
    if window_s <= 0:
        raise ValueError(f"window_s must be > 0, got {window_s}")
    a = np.sort(np.asarray(arrivals_s, dtype=float))
    if a.size == 0:
        return np.zeros(1)
    horizon = float(a[-1]) if horizon_s is None else float(horizon_s)
    if horizon <= window_s:
        return np.array([a.size / max(horizon, window_s)])
    step = window_s / steps_per_window
    starts = np.arange(0.0, horizon - window_s + 1e-9, step)
    counts = np.searchsorted(a, starts + window_s, side="left") - np.searchsorted(a, starts, side="left")
    return counts / window_s


def peak_rate(arrivals_s: Sequence[float], *, window_s: float = 10.0, percentile: float = 99.0,
              horizon_s: float | None = None) -> float:
    """The ``percentile`` of the sliding-window rate (req/s); see the module docstring."""
    rates = sliding_window_rates(arrivals_s, window_s=window_s, horizon_s=horizon_s)
    return float(np.percentile(rates, percentile))


def characterize(requests: Sequence[Any], *, workload_name: str, arrival_kind: str = "poisson",
                 burstiness: float = 1.0, slo_targets: Sequence[Any] = (),
                 duration_s: float | None = None, window_s: float = 10.0,
                 percentile: float = 99.0) -> WorkloadProfile:
    """Profile of a generated request list (objects with ``arrival_s``, ``input_tokens``,
    ``output_tokens``, ``prefix_tokens``, ``prefix_group``)."""
    if not requests:
        raise ValueError("cannot characterize an empty request list")
    arrivals = np.array([r.arrival_s for r in requests], dtype=float)
    inputs = np.array([r.input_tokens for r in requests], dtype=float)
    outputs = np.array([r.output_tokens for r in requests], dtype=float)
    horizon = float(duration_s) if duration_s else float(arrivals.max())
    gaps = np.diff(np.sort(arrivals))
    cv = float(gaps.std() / gaps.mean()) if gaps.size > 1 and gaps.mean() > 0 else 0.0
    shared = np.array([getattr(r, "prefix_tokens", 0) if getattr(r, "prefix_group", -1) >= 0 else 0
                       for r in requests], dtype=float)
    history = np.array([getattr(r, "history_tokens", 0) or 0 for r in requests], dtype=float)
    return WorkloadProfile(
        workload=workload_name,
        num_requests=len(requests),
        duration_s=horizon,
        mean_rate_rps=len(requests) / horizon if horizon > 0 else 0.0,
        peak_rate_rps=peak_rate(arrivals, window_s=window_s, percentile=percentile, horizon_s=horizon),
        peak_window_s=window_s,
        peak_percentile=percentile,
        arrival_kind=arrival_kind,
        burstiness=float(burstiness),
        interarrival_cv=cv,
        input_tokens=LengthStats.of(inputs),
        output_tokens=LengthStats.of(outputs),
        context_tokens=LengthStats.of(inputs + outputs),
        prefix_request_fraction=float(np.mean(shared > 0)),
        prefix_token_fraction=float(shared.sum() / inputs.sum()) if inputs.sum() > 0 else 0.0,
        cacheable_token_fraction=float(min(inputs.sum(), (shared + history).sum()) / inputs.sum())
        if inputs.sum() > 0 else 0.0,
        slo=tuple({"key": t.key, "metric": t.metric, "percentile": t.percentile,
                   "threshold_s": t.threshold_s} for t in slo_targets),
    )
