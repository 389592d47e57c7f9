"""Metric evaluation over request-weight rows (one row = the records as given,
many rows = bootstrap resamples). See docs/metrics.md for every definition."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError
from ..records import STATUSES
from ._columns import LATENCY_BASES, Columns
from ._stats import row_moments, row_percentiles

__all__ = ["Thresholds", "Evaluator", "parse_name", "parse_thresholds", "SCALAR_METRICS",
           "LATENCY_STATS"]

# Scalar (non-latency) metric names, in summary order.
SCALAR_METRICS: tuple[str, ...] = (
    "offered", "completed", "rejected", "timed_out", "failed", "cancelled", "delivery",
    "duration_s", "request_throughput_rps", "throughput_tokens_per_s",
    "input_throughput_tokens_per_s", "total_input_tokens", "total_output_tokens",
    "goodput_rps", "slo_attainment", "prefix_cache_hit_rate",
)
LATENCY_STATS: tuple[str, ...] = ("mean", "std", "min", "max", "count")
_THRESHOLD_BASES = ("ttft", "tpot", "itl", "e2e", "queue")
_ALIASES = {"e2el": "e2e", "median": "p50"}
_LAT_RE = re.compile(
    r"^(?P<base>ttft|tpot|itl|e2el|e2e|queue|dispatch_lateness)(?:_s)?_"
    r"(?P<stat>mean|std|min|max|count|median|p(?P<q>\d+(?:\.\d+)?))(?:_s)?$")


def parse_name(name: str) -> tuple[str, str, float | None]:
    """``"ttft_p95"`` → ("ttft", "p95", 95.0); ``"delivery"`` → ("delivery", "", None)."""
    if name in SCALAR_METRICS:
        return name, "", None
    m = _LAT_RE.match(name)
    if m:
        base = _ALIASES.get(m["base"], m["base"])
        stat = _ALIASES.get(m["stat"], m["stat"])
        q = float(stat[1:]) if stat.startswith("p") else None
        if q is not None and not 0 <= q <= 100:
            raise ConfigError(f"percentile in metric {name!r} outside [0, 100]")
        return base, stat, q
    raise ConfigError(
        f"unknown metric {name!r}; valid: {', '.join(SCALAR_METRICS)}, or "
        f"<{'|'.join(LATENCY_BASES)}>_<mean|std|min|max|count|median|pQ> "
        f"(e.g. ttft_p95, tpot_p50, e2e_mean, itl_p99.9)")


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Per-request thresholds (a request is good if ok and every one is met) and
    percentile targets ``(key, base, q, threshold_s)`` for ``slo_met``."""
    per_request_s: dict[str, float] = field(default_factory=dict)
    targets: tuple[tuple[str, str, float, float], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.per_request_s)


def _base_of(metric: str) -> str:
    base = _ALIASES.get(metric, metric)
    if base not in _THRESHOLD_BASES:
        raise ConfigError(f"unknown SLO metric {metric!r}; valid: {', '.join(_THRESHOLD_BASES)}, e2el")
    return base


def _merge(d: dict[str, float], base: str, thr: float) -> None:
    if not (thr == thr) or thr < 0:
        raise ConfigError(f"SLO threshold for {base!r} must be a non-negative number, got {thr!r}")
    d[base] = min(thr, d.get(base, thr))


def parse_thresholds(slo: Any = None, goodput: Any = None) -> Thresholds:
    """Normalise ``slo`` (a ``catalog.SLO``, or a dict ``{"ttft": 2.0}`` /
    ``{"ttft_p95": 2.0}`` in seconds) and ``goodput`` (dict in seconds, or vLLM's
    ``"ttft:2000 tpot:50 e2el:5000"`` in milliseconds). ``goodput``, when given,
    sets the per-request thresholds; otherwise the SLO's thresholds do."""
    per: dict[str, float] = {}
    targets: list[tuple[str, str, float, float]] = []
    if slo is not None:
        if hasattr(slo, "targets"):
            for t in slo.targets:
                base = _base_of(t.metric)
                _merge(per, base, float(t.threshold_s))
                targets.append((f"{t.metric}_p{float(t.percentile):g}", base,
                                float(t.percentile), float(t.threshold_s)))
        elif isinstance(slo, Mapping):
            for key, thr in slo.items():
                if key in _THRESHOLD_BASES or key in _ALIASES:
                    _merge(per, _base_of(key), float(thr))
                    continue
                base, stat, q = parse_name(key)
                if q is None or base not in _THRESHOLD_BASES:
                    raise ConfigError(f"SLO key {key!r} must be a metric (ttft, tpot, itl, e2e, "
                                      f"queue) or a percentile target like ttft_p95")
                _merge(per, base, float(thr))
                targets.append((key, base, q, float(thr)))
        else:
            raise ConfigError(f"slo must be a catalog SLO or a dict, got {type(slo).__name__}")
    if goodput is not None:
        gp: dict[str, float] = {}
        if isinstance(goodput, str):
            for term in goodput.replace(",", " ").split():
                key, sep, val = term.partition(":")
                try:
                    ms = float(val)
                except ValueError:
                    ms = float("nan")
                if not sep or ms != ms:
                    raise ConfigError(f"bad goodput term {term!r}; expected KEY:MS with KEY in "
                                      f"ttft, tpot, e2el (vLLM --goodput form)")
                _merge(gp, _base_of(key), ms / 1000.0)
        elif isinstance(goodput, Mapping):
            for key, thr in goodput.items():
                _merge(gp, _base_of(key), float(thr))
        else:
            raise ConfigError(f"goodput must be a dict or a 'ttft:MS tpot:MS' string, got {goodput!r}")
        per = gp
    return Thresholds(per_request_s=per, targets=tuple(targets))


class Evaluator:
    """Computes any metric for a weight matrix W (R, n) over the requests."""

    def __init__(self, cols: Columns, *, duration_s: float | None, thresholds: Thresholds) -> None:
        self.cols = cols
        self.thresholds = thresholds
        if duration_s is None:
            duration_s = self._observed_duration(cols)
        elif not duration_s > 0:
            raise ConfigError(f"duration_s must be > 0, got {duration_s!r}")
        self.duration_s = duration_s
        self._sorted: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.good = self._good_mask() if thresholds else None

    @staticmethod
    def _observed_duration(c: Columns) -> float | None:
        if c.n == 0:
            return None
        end = np.nanmax(c.finish_s) if np.isfinite(c.finish_s).any() else -np.inf
        span = max(float(end), float(c.arrival_s.max())) - float(c.arrival_s.min())
        return span if span > 0 else None

    def _good_mask(self) -> np.ndarray:
        c = self.cols
        good = c.ok.copy()
        # vLLM: a request with ≤ 1 output token has TPOT 0 for goodput.
        tpot_good = np.where(c.ok & (c.output_tokens <= 1), 0.0, c.tpot_s)
        per_req = {"ttft": c.ttft_s, "tpot": tpot_good, "itl": tpot_good, "e2e": c.e2e_s,
                   "queue": c.queue_s}
        for base, thr in self.thresholds.per_request_s.items():
            with np.errstate(invalid="ignore"):
                good &= per_req[base] <= thr        # NaN (unknown) fails the check
        return good

    # -- latency samples, sorted once -------------------------------------------
    def samples(self, base: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sorted values, per-sample weight, request index) for a latency base."""
        if base not in self._sorted:
            c = self.cols
            if base == "itl":
                vals, w, req = c.itl_values_s, c.itl_weights, c.itl_request
            else:
                arr = c.latency(base)
                req = np.flatnonzero(np.isfinite(arr))
                vals, w = arr[req], np.ones(req.size)
            order = np.argsort(vals, kind="stable")
            self._sorted[base] = (vals[order], w[order], req[order])
        return self._sorted[base]

    def latency(self, base: str, stats: list[str], qs: list[float], W: np.ndarray, *,
                sample_space: bool = False) -> dict[str, np.ndarray]:
        """Latency statistics per row. ``W`` is (R, n) per-request weights, or with
        ``sample_space`` already (R, m) weights of the sorted samples."""
        v, w, req = self.samples(base)
        Wv = W if sample_space else W[:, req] * w
        out: dict[str, np.ndarray] = {}
        if {"mean", "std", "count"} & set(stats):
            N, mean, std = row_moments(v, Wv)
            out.update(count=N, mean=mean, std=std)
        ext = [q for q, s in ((0.0, "min"), (100.0, "max")) if s in stats]
        allq = list(qs) + ext
        if allq:
            P = row_percentiles(v, Wv, allq)
            for i, q in enumerate(qs):
                out[f"p{q:g}"] = P[:, i]
            for j, s in enumerate(s for s in ("min", "max") if s in stats):
                out[s] = P[:, len(qs) + j]
        return out

    # -- scalars -------------------------------------------------------------------
    def scalar(self, name: str, W: np.ndarray) -> np.ndarray:
        c, R = self.cols, W.shape[0]
        dur = self.duration_s

        def rate(x: np.ndarray) -> np.ndarray:
            return x / dur if dur else np.full(R, np.nan)

        def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)

        okf = c.ok.astype(np.float64)
        if name == "offered":
            return W.sum(axis=1)
        if name in STATUSES[1:]:
            return W @ (c.status == STATUSES.index(name)).astype(np.float64)
        if name == "completed":
            return W @ okf
        if name == "delivery":
            return ratio(W @ okf, W.sum(axis=1))
        if name == "duration_s":
            return np.full(R, np.nan if dur is None else dur)
        if name == "request_throughput_rps":
            return rate(W @ okf)
        if name in ("throughput_tokens_per_s", "total_output_tokens"):
            tot = W @ (c.output_tokens * okf)
            return tot if name == "total_output_tokens" else rate(tot)
        if name in ("input_throughput_tokens_per_s", "total_input_tokens"):
            tot = W @ (c.input_tokens * okf)
            return tot if name == "total_input_tokens" else rate(tot)
        if name in ("goodput_rps", "slo_attainment"):
            if self.good is None:
                return np.full(R, np.nan)
            g = W @ self.good.astype(np.float64)
            return rate(g) if name == "goodput_rps" else ratio(g, W.sum(axis=1))
        if name == "prefix_cache_hit_rate":
            rr = c.reached_replica.astype(np.float64)
            return ratio(W @ (c.cached_tokens * rr), W @ (c.input_tokens * rr))
        raise ConfigError(f"unknown scalar metric {name!r}")  # unreachable via parse_name

    def value(self, name: str, W: np.ndarray) -> np.ndarray:
        base, stat, q = parse_name(name)
        if not stat:
            return self.scalar(base, W)
        if q is not None:
            return self.latency(base, [], [q], W)[f"p{q:g}"]
        return self.latency(base, [stat], [], W)[stat]
