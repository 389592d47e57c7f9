"""Error bands: how far a prediction may be off, from validation residuals of its kind.

For every published number held out of the fit (role ``validate``, see
``benchmarks/data/README.md``), ``benchmarks/validate.py`` stores the log
residual ``r = ln(published / predicted)`` under its key

    (GPU family, metric kind, dense/MoE, engine profile)

with metric kind ``time`` (TTFT, inter-token latency, batch latency) or ``throughput``
(output tokens/s). A new prediction ``p`` of that kind gets the central 80 % band

    [p · e^{q10(r)},  p · e^{q90(r)}]

with ``q10``/``q90`` the empirical quantiles (linear interpolation) of the residuals of
the most specific level that has at least ``MIN_ROWS`` rows: the exact key, else the
family × metric kind pool. A prediction resting on fewer rows than that is
**uncalibrated**: it gets ``[p / DEFAULT_FACTOR, p · DEFAULT_FACTOR]``.

``DEFAULT_FACTOR`` = 2 is a stated choice, not a fit: wider than every calibrated band
shipped (``bands.json`` lists them) and than the worst family median error before the
family fits (Blackwell FP4, +43 % median over the perf-overview rows).

Coverage of the stated 80 % band is measured leave-one-out on the validation rows by
``benchmarks/validate.py`` (each row's band built without that row) and reported
in docs/calibration.md.

Uses: :func:`estimate_bands` (every time and rate of ``servelab estimate``; decode
tokens/s = batch / step time takes the inverted time band), :func:`calibration_status`
(what a GPU × engine prediction rests on), :func:`confidence_factor` and
:func:`scale_efficiency` (``plan --confidence``: step times at a band edge, exactly — every
roofline term is work / (peak · efficiency)), :func:`edge_bands` (``simulate --bands``:
the run repeated at both edges).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Mapping, Sequence

from .families import family_fit

__all__ = ["Band", "BandKey", "MIN_ROWS", "DEFAULT_FACTOR", "COVERAGE", "metric_kind",
           "quantile", "band_from_residuals", "band_for", "load_bands", "TIME_METRICS",
           "THROUGHPUT_METRICS"]

MIN_ROWS = 5              # fewest residuals a band may rest on
DEFAULT_FACTOR = 2.0      # uncalibrated band: value / 2 … value · 2 (module docstring)
COVERAGE = 0.80           # the band's nominal coverage
TIME_METRICS = ("itl_ms", "ttft_ms", "batch_latency_ms", "time")
THROUGHPUT_METRICS = ("output_tok_s", "static_out_tok_s_per_gpu", "throughput")


def metric_kind(metric: str) -> str:
    """``time`` or ``throughput``; ValueError naming the valid metrics otherwise."""
    if metric in TIME_METRICS:
        return "time"
    if metric in THROUGHPUT_METRICS:
        return "throughput"
    raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(TIME_METRICS + THROUGHPUT_METRICS)}")


@dataclass(frozen=True, slots=True)
class BandKey:
    family: str
    metric: str          # "time" | "throughput"
    moe: bool
    engine: str

    def label(self) -> str:
        return f"{self.family}/{self.metric}/{'moe' if self.moe else 'dense'}/{self.engine}"


@dataclass(frozen=True, kw_only=True)
class Band:
    """A predicted value and its 80 % band."""
    value: float
    lo: float
    hi: float
    n_rows: int          # residuals the band rests on (0: uncalibrated default)
    calibrated: bool
    level: str           # "key", "family-metric" or "default"
    key: str

    def to_dict(self) -> dict:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "n_rows": self.n_rows,
                "calibrated": self.calibrated}

    def scaled(self, factor: float) -> "Band":
        """The same relative band around ``value · factor`` (e.g. a rate from a time)."""
        return Band(value=self.value * factor, lo=self.lo * factor, hi=self.hi * factor,
                    n_rows=self.n_rows, calibrated=self.calibrated, level=self.level, key=self.key)

    def inverse(self) -> "Band":
        """The band of ``1/value`` (a throughput from a time and back): edges swap."""
        return Band(value=1 / self.value, lo=1 / self.hi, hi=1 / self.lo, n_rows=self.n_rows,
                    calibrated=self.calibrated, level=self.level, key=self.key)


def quantile(xs: Sequence[float], q: float) -> float:
    """Empirical quantile with linear interpolation between order statistics (type 7)."""
    if not xs:
        raise ValueError("quantile of no values")
    s = sorted(xs)
    h = (len(s) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def band_from_residuals(value: float, residuals: Sequence[float], *, level: str, key: str) -> Band:
    """The central ``COVERAGE`` band of ``value`` from log residuals ln(published/predicted)."""
    tail = (1 - COVERAGE) / 2
    return Band(value=value, lo=value * math.exp(quantile(residuals, tail)),
                hi=value * math.exp(quantile(residuals, 1 - tail)), n_rows=len(residuals),
                calibrated=True, level=level, key=key)


def _choose(key: BandKey, table: Mapping[str, Sequence[float]]) -> tuple[str, str, list[float]]:
    exact = list(table.get(key.label(), ()))
    if len(exact) >= MIN_ROWS:
        return "key", key.label(), exact
    prefix = f"{key.family}/{key.metric}/"
    pooled = [r for k, v in table.items() if k.startswith(prefix) for r in v]
    if len(pooled) >= MIN_ROWS:
        return "family-metric", prefix.rstrip("/"), pooled
    return "default", key.label(), []


def band_for(value: float, key: BandKey, table: Mapping[str, Sequence[float]] | None = None) -> Band:
    """The band of a prediction ``value`` of kind ``key`` (residual table: the shipped one)."""
    table = load_bands()["residuals"] if table is None else table
    level, label, res = _choose(key, table)
    if level == "default":
        return Band(value=value, lo=value / DEFAULT_FACTOR, hi=value * DEFAULT_FACTOR, n_rows=0,
                    calibrated=False, level=level, key=label)
    return band_from_residuals(value, res, level=level, key=label)


@lru_cache(maxsize=1)
def load_bands() -> dict:
    """The shipped residual table (``perf/data/bands.json``; ``residuals``: key label ->
    list of ln(published/predicted))."""
    text = resources.files("servelab.perf").joinpath("data", "bands.json").read_text("utf-8")
    return json.loads(text)


def key_for(gpu, *, moe: bool, engine: str, metric: str) -> BandKey:
    """The band key of a prediction for ``gpu`` (its catalog architecture is the family)."""
    return BandKey(family=gpu.architecture, metric=metric_kind(metric), moe=moe, engine=engine)


def estimate_bands(result: Mapping, *, gpu, moe: bool, engine: str) -> dict:
    """``{value, lo, hi, n_rows, calibrated}`` for every predicted time and throughput of an
    ``estimate`` result (the dict of :func:`servelab.scenario.estimate.estimate_scenario`).

    Times (TTFT, decode and offline step times) take the ``time`` band; decode tokens/s
    is batch / step time, so it takes the time band inverted; offline output and request
    rates take the ``throughput`` band."""
    t_key = key_for(gpu, moe=moe, engine=engine, metric="time")
    r_key = key_for(gpu, moe=moe, engine=engine, metric="throughput")
    out: dict = {}
    if result.get("ttft_s"):
        out["ttft_s"] = band_for(result["ttft_s"], t_key).to_dict()
    steps = result.get("decode_step_s") or {}
    if steps:
        out["decode_step_s"] = {b: band_for(v, t_key).to_dict() for b, v in steps.items()}
        out["decode_tokens_per_s"] = {
            b: band_for(v, t_key).inverse().scaled(float(b)).to_dict() for b, v in steps.items()}
    off = result.get("offline") or {}
    if result.get("offline_output_tokens_per_s"):
        out["offline_output_tokens_per_s"] = band_for(result["offline_output_tokens_per_s"], r_key).to_dict()
    for k in ("requests_per_s", "output_tokens_per_s_per_gpu"):
        if off.get(k):
            out[f"offline.{k}"] = band_for(off[k], r_key).to_dict()
    if off.get("step_s"):
        out["offline.step_s"] = band_for(off["step_s"], t_key).to_dict()
    return out


__all__ += ["key_for", "estimate_bands"]


def calibration_status(gpu, engine: str, *, moe: bool) -> dict:
    """What a prediction for ``gpu`` under ``engine`` rests on: the family fit's rows and
    the rows behind its time and throughput bands; ``calibrated`` when all three exist."""
    fit = family_fit(gpu)
    out = {"family": fit.family, "family_fit_rows": fit.fit_rows}
    for metric in ("time", "throughput"):
        b = band_for(1.0, key_for(gpu, moe=moe, engine=engine, metric=metric))
        out[f"{metric}_band"] = {"n_rows": b.n_rows, "calibrated": b.calibrated, "level": b.level,
                                 "key": b.key, "lo_factor": round(b.lo, 3), "hi_factor": round(b.hi, 3)}
    out["calibrated"] = fit.calibrated and out["time_band"]["calibrated"] and out["throughput_band"]["calibrated"]
    return out


__all__ += ["calibration_status"]


CONFIDENCES = ("optimistic", "expected", "pessimistic")


def confidence_factor(gpu, engine: str, *, moe: bool, confidence: str) -> dict:
    """Step-time multiplier for planning at one edge of the time band: ``pessimistic``
    the band's upper edge (steps slower than predicted), ``optimistic`` its lower edge,
    ``expected`` 1 (the model's value). With the band: its edges, rows and status."""
    if confidence not in CONFIDENCES:
        raise ValueError(f"unknown confidence {confidence!r}; valid: {', '.join(CONFIDENCES)}")
    b = band_for(1.0, key_for(gpu, moe=moe, engine=engine, metric="time"))
    factor = {"optimistic": b.lo, "expected": 1.0, "pessimistic": b.hi}[confidence]
    return {"confidence": confidence, "factor": factor, "lo_factor": b.lo, "hi_factor": b.hi,
            "n_rows": b.n_rows, "calibrated": b.calibrated, "key": b.key, "level": b.level}


def scale_efficiency(eff, factor: float):
    """``eff`` with every step time multiplied by ``factor`` exactly: each roofline term is
    work / (peak · efficiency), so efficiencies are divided by ``factor``; the fixed times
    (per step, per sequence, per collective, per request) are multiplied by it."""
    if factor <= 0:
        raise ValueError(f"step-time factor must be > 0, got {factor}")
    fr = ("compute", "memory", "attention_compute", "attention_memory", "comm")
    tm = ("comm_latency_s", "step_overhead_s", "seq_overhead_s", "request_overhead_s")
    return dataclasses.replace(eff, **{k: getattr(eff, k) / factor for k in fr},
                               **{k: getattr(eff, k) * factor for k in tm})


__all__ += ["CONFIDENCES", "confidence_factor", "scale_efficiency"]


# Simulated quantities that get a band when the same run is repeated at the band's edges.
SIM_TIME_METRICS = ("ttft_s", "tpot_s", "itl_s", "e2e_s", "queue_s")
SIM_RATE_METRICS = ("request_throughput_rps", "throughput_tokens_per_s", "goodput_rps", "slo_attainment",
                    "delivery")


def edge_bands(value: Mapping, low: Mapping, high: Mapping, band: Mapping) -> dict:
    """Bands of simulated quantities from three runs of one scenario — at the model's step
    times (``value``) and at the time band's lower and upper edge (``low``, ``high``):
    each quantity's interval spans the edge runs. ``band``: :func:`confidence_factor`'s dict."""
    out: dict = {}
    for m in SIM_TIME_METRICS:
        if isinstance(value.get(m), Mapping):
            out[m] = {}
            for p in ("mean", "p50", "p90", "p95", "p99"):
                v, a, b = value[m].get(p), low.get(m, {}).get(p), high.get(m, {}).get(p)
                if None not in (v, a, b):
                    out[m][p] = {"value": v, "lo": min(a, b), "hi": max(a, b),
                                 "n_rows": band["n_rows"], "calibrated": band["calibrated"]}
    for m in SIM_RATE_METRICS:
        v, a, b = value.get(m), low.get(m), high.get(m)
        if None not in (v, a, b):
            out[m] = {"value": v, "lo": min(a, b), "hi": max(a, b), "n_rows": band["n_rows"],
                      "calibrated": band["calibrated"]}
    return out


__all__ += ["SIM_TIME_METRICS", "SIM_RATE_METRICS", "edge_bands"]
