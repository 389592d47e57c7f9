"""Runs side by side: each metric per run with its bootstrap CI, and every run
against a baseline (difference, ratio, relative error, with CIs).

Whatever produced a run (simulator, load client, imported ``vllm bench serve`` or
guidellm result), it is a record list and a throughput window; all metrics come
from ``servelab.metrics``, so a prediction and a measurement are compared on the
same definitions.

Per metric m and run r (baseline b), with c the confidence level:

- value v_r = m(records_r), throughput over run r's own window ``duration_s``
  (runs of different length and size compare fairly);
- CI of v_r: percentile bootstrap over r's requests (``metrics.bootstrap_distribution``,
  Efron & Tibshirani 1993, ch. 13): the (1 − c)/2 and (1 + c)/2 quantiles of
  m on R resamples;
- difference d = v_r − v_b and ratio q = v_r / v_b, with CIs from the same
  quantiles of d* = m(r*) − m(b*) and q* = m(r*)/m(b*), where r* and b* are
  resampled **independently** (different seeds): the runs share no requests, so
  the two samples are independent and the bootstrap of the pair is the product
  of the two bootstraps (Efron & Tibshirani 1993, §8.3, two-sample problem);
- relative error (v_r − v_b) / v_b — the calibration figure when b is a
  measurement and r a prediction;
- proportions of offered requests (``delivery``, ``slo_attainment``): the bootstrap
  collapses to a point when every request (or none) succeeded, so the CI is widened
  to contain the Wilson score interval and the difference CI to contain Newcombe's
  hybrid score interval (``metrics.proportion``);
- ``overlap``: whether the CIs of v_r and v_b intersect. Disjoint intervals
  flag a difference that resampling does not explain; overlapping intervals do
  not prove equality (the difference CI is the sharper test).

Units: latency metrics in seconds (shown in ms), throughput per second, delivery
a fraction. NaN (metric undefined, e.g. no ok request) propagates to None in JSON.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from ..errors import ConfigError
from ..metrics import bootstrap_distribution, columns, metric_value, timeseries_from_records
from ..metrics.proportion import PROPORTION_METRICS, newcombe_diff_interval, wilson_interval
from ..metrics._eval import parse_name
from ..records import RequestRecord, RunMeta
from ..units import MS
from .charts import Series, interval_chart, line_chart
from .html import Page
from .runs import cdf_series

__all__ = ["workload_differences", "CompareRun", "RunEstimate", "MetricComparison", "Comparison", "compare_runs",
           "comparison_rows", "compare_figures", "compare_page", "DEFAULT_METRICS", "itl_gaps_s"]

DEFAULT_METRICS: tuple[str, ...] = ("ttft_p50", "ttft_p95", "tpot_p95", "e2e_p95",
                                    "throughput_tokens_per_s", "delivery")
_HIGHER_BETTER = {"delivery", "throughput_tokens_per_s", "input_throughput_tokens_per_s",
                  "request_throughput_rps", "goodput_rps", "slo_attainment", "prefix_cache_hit_rate",
                  "completed"}
_UNITS = {"delivery": "fraction", "slo_attainment": "fraction", "prefix_cache_hit_rate": "fraction",
          "throughput_tokens_per_s": "tokens/s", "input_throughput_tokens_per_s": "tokens/s",
          "request_throughput_rps": "req/s", "goodput_rps": "req/s", "duration_s": "s"}


@dataclass(frozen=True, kw_only=True)
class CompareRun:
    """One run to compare: its label, records and throughput window (None: first
    arrival → last finish, as in ``metrics.summarize``)."""
    label: str
    records: Sequence[RequestRecord]
    duration_s: float | None = None
    meta: RunMeta | None = None
    source: str = ""


@dataclass(frozen=True, kw_only=True)
class RunEstimate:
    """One metric of one run, and (except for the baseline) how it differs from
    the baseline's. CIs are ``(lo, hi)``; NaN where undefined."""
    label: str
    value: float
    ci: tuple[float, float]
    is_baseline: bool = False
    diff: float = math.nan
    diff_ci: tuple[float, float] = (math.nan, math.nan)
    ratio: float = math.nan
    ratio_ci: tuple[float, float] = (math.nan, math.nan)
    rel_error: float = math.nan
    overlap: bool | None = None          # CIs of this run and the baseline intersect


@dataclass(frozen=True, kw_only=True)
class MetricComparison:
    metric: str
    unit: str                            # "s" for latency metrics, else per _UNITS
    better: Literal["lower", "higher"] | None
    runs: tuple[RunEstimate, ...]


@dataclass(frozen=True, kw_only=True)
class Comparison:
    baseline: str
    confidence: float
    n_resamples: int
    seed: int
    runs: tuple[CompareRun, ...]
    metrics: tuple[MetricComparison, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = ()        # the runs served different work (``workload_differences``)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (NaN → None); keys documented in docs/compare.md."""
        def num(x: float) -> float | None:
            return float(x) if x is not None and math.isfinite(x) else None

        def ci(t: tuple[float, float]) -> list[float | None]:
            return [num(t[0]), num(t[1])]
        return {
            "baseline": self.baseline, "confidence": self.confidence,
            "n_resamples": self.n_resamples, "seed": self.seed,
            "ci_method": "percentile bootstrap over requests; runs resampled independently",
            "warnings": list(self.warnings),
            "runs": [{"label": r.label, "source": r.source, "kind": r.meta.kind if r.meta else None,
                      "run_id": r.meta.run_id if r.meta else None, "n_records": len(r.records),
                      "duration_s": num(r.duration_s) if r.duration_s is not None else None}
                     for r in self.runs],
            "metrics": [{"metric": m.metric, "unit": m.unit, "better": m.better, "runs": [
                {"label": e.label, "baseline": e.is_baseline, "value": num(e.value), "ci": ci(e.ci),
                 "diff": num(e.diff), "diff_ci": ci(e.diff_ci), "ratio": num(e.ratio),
                 "ratio_ci": ci(e.ratio_ci), "rel_error": num(e.rel_error), "overlap": e.overlap}
                for e in m.runs]} for m in self.metrics],
        }


def _interval(dist: np.ndarray, confidence: float) -> tuple[float, float]:
    d = dist[np.isfinite(dist)]
    if d.size == 0:
        return (math.nan, math.nan)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.percentile(d, [100.0 * a, 100.0 * (1.0 - a)])
    return (float(lo), float(hi))


def _wilson(value: float, n: int, confidence: float) -> tuple[float, float]:
    if not (math.isfinite(value) and n > 0):
        return (math.nan, math.nan)
    return wilson_interval(value * n, n, confidence)


def _widen(ci: tuple[float, float], other: tuple[float, float]) -> tuple[float, float]:
    """The smallest interval containing ``ci`` and ``other`` (NaN sides ignored)."""
    if not all(math.isfinite(x) for x in other):
        return ci
    if not all(math.isfinite(x) for x in ci):
        return other
    return (min(ci[0], other[0]), max(ci[1], other[1]))


def _describe(metric: str) -> tuple[str, Literal["lower", "higher"] | None]:
    base, stat, _ = parse_name(metric)
    if stat:
        return ("count" if stat == "count" else "s"), (None if stat in ("count", "std") else "lower")
    return _UNITS.get(base, "requests"), ("higher" if base in _HIGHER_BETTER else None)


WORKLOAD_TOLERANCE = 0.10   # relative difference in request count or mean lengths that is worth a warning


def _work(records: Sequence[RequestRecord]) -> tuple[int, float, float]:
    """(requests, mean input tokens of all, mean output tokens of the ok ones)."""
    recs = list(records)
    ok = [r.output_tokens for r in recs if r.status == "ok"]
    return (len(recs), float(np.mean([r.input_tokens for r in recs])) if recs else math.nan,
            float(np.mean(ok)) if ok else math.nan)


def workload_differences(runs: Sequence[CompareRun], baseline: int = 0,
                         tolerance: float = WORKLOAD_TOLERANCE) -> list[str]:
    """Sentences naming each run whose request count, mean input length or mean output
    length (of its ok requests) differs from the baseline's by more than ``tolerance``
    (relative): such runs served different work, and their latencies are not
    comparable as a prediction and its measurement."""
    b = _work(runs[baseline].records)
    out = []
    for i, r in enumerate(runs):
        if i == baseline:
            continue
        w = _work(r.records)
        diffs = [f"{name} {x:,.4g} vs {y:,.4g}" for name, x, y in
                 zip(("requests", "mean input tokens", "mean output tokens"), w, b)
                 if math.isfinite(x) and math.isfinite(y) and y and abs(x - y) / abs(y) > tolerance]
        if diffs:
            out.append(f"{r.label} served different work than {runs[baseline].label}: " + "; ".join(diffs))
    return out


def compare_runs(runs: Sequence[CompareRun], *, baseline: int = 0,
                 metrics: Sequence[str] = DEFAULT_METRICS, confidence: float = 0.95,
                 n_resamples: int = 1000, seed: int = 0) -> Comparison:
    """Compare ``runs`` on ``metrics`` against ``runs[baseline]`` (module docstring).
    Run i is resampled with seed ``seed + i``. Unknown metric names raise
    ``ConfigError`` listing the valid forms."""
    if not runs:
        raise ConfigError("nothing to compare: no runs given")
    if not 0 <= baseline < len(runs):
        raise ConfigError(f"baseline index {baseline} out of range; runs: 0..{len(runs) - 1}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_resamples < 2:
        raise ConfigError(f"n_resamples must be ≥ 2, got {n_resamples!r}")
    described = [(m, *_describe(m)) for m in metrics]       # validates every name first
    cols = [columns(list(r.records)) for r in runs]
    out = []
    for metric, unit, better in described:
        vals = [metric_value(c, metric, duration_s=r.duration_s) for c, r in zip(cols, runs)]
        dists = [bootstrap_distribution(c, metric, n_resamples=n_resamples, seed=seed + i,
                                        duration_s=r.duration_s) for i, (c, r) in enumerate(zip(cols, runs))]
        cis = [_interval(d, confidence) for d in dists]
        if metric in PROPORTION_METRICS:
            cis = [_widen(ci, _wilson(v, c.n, confidence)) for ci, v, c in zip(cis, vals, cols)]
        vb, (blo, bhi), db = vals[baseline], cis[baseline], dists[baseline]
        ests = []
        for i, r in enumerate(runs):
            v, (lo, hi) = vals[i], cis[i]
            if i == baseline:
                ests.append(RunEstimate(label=r.label, value=v, ci=(lo, hi), is_baseline=True))
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio_d = dists[i] / db
                ratio = v / vb if vb != 0 else math.nan
            known = all(math.isfinite(x) for x in (lo, hi, blo, bhi))
            diff_ci = _interval(dists[i] - db, confidence)
            if metric in PROPORTION_METRICS and math.isfinite(v) and math.isfinite(vb):
                diff_ci = _widen(diff_ci, newcombe_diff_interval(v, cols[i].n, vb, cols[baseline].n,
                                                                 confidence))
            ests.append(RunEstimate(
                label=r.label, value=v, ci=(lo, hi), diff=v - vb,
                diff_ci=diff_ci, ratio=ratio,
                ratio_ci=_interval(ratio_d, confidence), rel_error=ratio - 1.0 if math.isfinite(ratio) else math.nan,
                overlap=(lo <= bhi and blo <= hi) if known else None))
        out.append(MetricComparison(metric=metric, unit=unit, better=better, runs=tuple(ests)))
    return Comparison(warnings=tuple(workload_differences(runs, baseline)),
                      baseline=runs[baseline].label, confidence=confidence, n_resamples=n_resamples,
                      seed=seed, runs=tuple(runs), metrics=tuple(out))


def _shown(x: float, unit: str) -> float:
    """Latency in ms for display; other units as they are."""
    return x / MS if unit == "s" else x


def comparison_rows(cmp: Comparison) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) for a table: one row per metric and run; latency in ms."""
    pct = f"{cmp.confidence * 100:g}%"
    head = ["metric", "run", "value", f"{pct} CI", "Δ vs baseline", f"Δ {pct} CI", "ratio",
            f"ratio {pct} CI", "rel. error", "CIs overlap"]
    rows: list[list[Any]] = []
    for m in cmp.metrics:
        name = f"{m.metric} (ms)" if m.unit == "s" else f"{m.metric} ({m.unit})"
        for e in m.runs:
            ci = f"[{_fmt(_shown(e.ci[0], m.unit))}, {_fmt(_shown(e.ci[1], m.unit))}]"
            if e.is_baseline:
                rows.append([name, e.label + " (baseline)", _shown(e.value, m.unit), ci,
                             None, "", None, "", None, ""])
                continue
            rows.append([name, e.label, _shown(e.value, m.unit), ci, _shown(e.diff, m.unit),
                         f"[{_fmt(_shown(e.diff_ci[0], m.unit))}, {_fmt(_shown(e.diff_ci[1], m.unit))}]",
                         e.ratio, f"[{_fmt(e.ratio_ci[0])}, {_fmt(e.ratio_ci[1])}]",
                         (f"{e.rel_error:+.1%}" if math.isfinite(e.rel_error) else None),
                         {True: "yes", False: "NO", None: "–"}[e.overlap]])
    return head, rows


def _fmt(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    a = abs(x)
    return f"{x:,.0f}" if a >= 1000 else f"{x:.4g}"


def itl_gaps_s(records: Sequence[RequestRecord]) -> np.ndarray:
    """Gaps between consecutive token times of ok requests that carry them (s)."""
    gaps = [np.diff(np.asarray(r.token_times_s, dtype=np.float64)) for r in records
            if r.status == "ok" and r.token_times_s and len(r.token_times_s) > 1]
    return np.concatenate(gaps) if gaps else np.empty(0)


def compare_figures(cmp: Comparison, *, bucket_s: float | None = None) -> list[tuple[str, str]]:
    """(svg, caption) pairs: an interval chart per metric, TTFT/TPOT/E2E CDFs of
    all runs overlaid, output throughput and delivery over time (one bucket width
    for all runs, default longest span / 60), and the ITL CDF of runs that have
    token times."""
    figs: list[tuple[str, str]] = []
    pct = f"{cmp.confidence * 100:g}%"
    for m in cmp.metrics:
        items = [(e.label, _shown(e.value, m.unit), _shown(e.ci[0], m.unit), _shown(e.ci[1], m.unit))
                 for e in m.runs]
        base = next(e for e in m.runs if e.is_baseline)
        unit = "ms" if m.unit == "s" else m.unit
        figs.append((interval_chart(items, title=f"{m.metric} per run", x_label=f"{m.metric} ({unit})",
                                    threshold=_shown(base.value, m.unit) if math.isfinite(base.value) else None,
                                    threshold_label=f"baseline {base.label}"),
                     f"{m.metric}: value and {pct} bootstrap interval per run; dashed line: the baseline's value."))
    cols = [columns(list(r.records)) for r in cmp.runs]
    for attr, name in (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "E2E")):
        figs.append((line_chart([cdf_series(r.label, getattr(c, attr), scale=1 / MS)
                                 for r, c in zip(cmp.runs, cols)],
                                title=f"{name} distribution", x_label=f"{name} (ms)",
                                y_label="fraction of ok requests ≤ x", y_range=(0.0, 1.0)),
                     f"Empirical CDF of {name} per run (ok requests)."))
    if bucket_s is None:
        spans = [float(np.nanmax(np.r_[c.finish_s, c.arrival_s])) for c in cols if c.n]
        bucket_s = max(max(spans, default=1.0) / 60.0, 1e-3)
    ts = [timeseries_from_records(list(r.records), bucket_s) for r in cmp.runs]
    for key, title, y, yr in (("throughput_tokens_per_s", "Output token throughput", "tokens/s", None),
                              ("delivery", "Delivery over time", "ok / offered", (0.0, 1.0))):
        figs.append((line_chart([Series(name=r.label, xs=t.get("t_s", []), ys=t.get(key, []), kind="step")
                                 for r, t in zip(cmp.runs, ts)],
                                title=title, x_label="time since start (s)", y_label=y, y_range=yr),
                     f"{title} per run, {bucket_s:.3g} s buckets."))
    itl = [(r.label, itl_gaps_s(r.records)) for r in cmp.runs]
    itl = [(label, g) for label, g in itl if g.size]
    if itl:
        figs.append((line_chart([cdf_series(label, g, scale=1 / MS) for label, g in itl],
                                title="ITL distribution", x_label="inter-token latency (ms)",
                                y_label="fraction of gaps ≤ x", y_range=(0.0, 1.0)),
                     "ITL: empirical CDF of the gaps between consecutive tokens (runs with token times only)."))
    return figs


def compare_page(cmp: Comparison, *, title: str = "Run comparison") -> Page:
    """An HTML page: runs, the comparison table, figures."""
    page = Page(title, subtitle=f"baseline {cmp.baseline}; {cmp.confidence * 100:g}% percentile-bootstrap "
                                f"intervals, {cmp.n_resamples} resamples per run, runs resampled independently")
    page.heading("Runs")
    page.table(["label", "kind", "run id", "records", "window (s)", "source"],
               [[r.label, r.meta.kind if r.meta else None, r.meta.run_id if r.meta else None,
                 len(r.records), r.duration_s, r.source] for r in cmp.runs])
    for w in cmp.warnings:
        page.raw(f'<p class="warn">warning: {html.escape(w)}</p>')
    page.heading("Metrics")
    head, rows = comparison_rows(cmp)
    page.table(head, rows, caption="Latency in ms; Δ and ratio are run vs baseline")
    page.heading("Figures")
    for svg, cap in compare_figures(cmp):
        page.figure(svg, cap)
    return page
