"""``summarize`` and ``metric_value``: metrics of one record list (docs/metrics.md)."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from ..records import RequestRecord
from ._columns import LATENCY_BASES, Columns, columns
from ._eval import LATENCY_STATS, SCALAR_METRICS, Evaluator, parse_name, parse_thresholds

__all__ = ["summarize", "metric_value", "metric_names", "DEFAULT_PERCENTILES", "json_number"]

DEFAULT_PERCENTILES: tuple[float, ...] = (50, 90, 95, 99)
_INT_KEYS = ("offered", "completed", "rejected", "timed_out", "failed", "cancelled",
             "total_input_tokens", "total_output_tokens")


def json_number(x: Any) -> float | int | None:
    """A plain Python number, or None for NaN/inf/None (summaries are NaN-free JSON)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def summarize(
    records: Iterable[RequestRecord] | Columns,
    *,
    duration_s: float | None = None,
    slo: Any = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    goodput: Any = None,
) -> dict[str, Any]:
    """Plain JSON-able summary of a run (keys in docs/metrics.md).

    ``duration_s``: the throughput window; default first arrival → last finish.
    ``slo``: a ``catalog.SLO`` or a dict (``{"ttft": 2.0}`` per-request thresholds,
    ``{"ttft_p95": 2.0}`` percentile targets), seconds. ``goodput``: per-request
    thresholds as a dict in seconds or vLLM's ``"ttft:2000 tpot:50"`` (ms); it
    overrides the SLO's per-request thresholds for ``goodput_rps``/``slo_attainment``.
    """
    cols = columns(records)
    th = parse_thresholds(slo, goodput)
    ev = Evaluator(cols, duration_s=duration_s, thresholds=th)
    ones = np.ones((1, cols.n))
    qs = [float(q) for q in percentiles]
    out: dict[str, Any] = {}
    for name in SCALAR_METRICS:
        v = json_number(ev.scalar(name, ones)[0])
        out[name] = int(v) if name in _INT_KEYS and v is not None else v
    if not th:
        out["goodput_rps"] = out["slo_attainment"] = None
    for base in LATENCY_BASES:
        res = ev.latency(base, list(LATENCY_STATS), qs, ones)
        row: dict[str, Any] = {k: json_number(res[k][0]) for k in ("mean", "std", "min", "max")}
        row.update({f"p{q:g}": json_number(res[f"p{q:g}"][0]) for q in qs})
        row["count"] = int(res["count"][0])
        out[f"{base}_s"] = row
    out["percentiles"] = qs
    out["slo_thresholds_s"] = dict(th.per_request_s) or None
    if th.targets:
        met: dict[str, bool | None] = {}
        for key, base, q, thr in th.targets:
            val = ev.latency(base, [], [q], ones)[f"p{q:g}"][0]
            met[key] = None if not np.isfinite(val) else bool(val <= thr)
        out["slo_met"] = met
    else:
        out["slo_met"] = None
    return out


def metric_value(
    records: Iterable[RequestRecord] | Columns,
    name: str,
    *,
    duration_s: float | None = None,
    slo: Any = None,
    goodput: Any = None,
) -> float:
    """One metric by name (``ttft_p95``, ``delivery``, ``goodput_rps``, …; see
    ``metric_names()``). NaN when undefined (no samples, no SLO for goodput, no
    duration). Unknown names raise ``ConfigError`` listing the valid forms."""
    parse_name(name)
    cols = columns(records)
    ev = Evaluator(cols, duration_s=duration_s, thresholds=parse_thresholds(slo, goodput))
    return float(ev.value(name, np.ones((1, cols.n)))[0])


def metric_names(percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> list[str]:
    """Every metric name ``metric_value`` accepts (latency percentiles: any q in
    [0, 100]; listed for ``percentiles``)."""
    names = list(SCALAR_METRICS)
    for base in LATENCY_BASES:
        names += [f"{base}_{s}" for s in LATENCY_STATS]
        names += [f"{base}_p{float(q):g}" for q in percentiles]
    return names
