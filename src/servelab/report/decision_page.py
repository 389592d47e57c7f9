"""HTML report of a decision: verdict table, each claim's evidence plotted, runs.

Per claim: the metric's point value and bootstrap interval for each piece of evidence
(the measured run, the simulated run when both exist, the baseline scaled by the
factor for a relative claim) against the threshold line; per scenario: delivery over
time (``metrics.timeseries_from_records``) of every run the verdicts rest on.
One self-contained page (``report.html.Page``: inline SVG, no script, no URL).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["render_report"]


def _f(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.4g}" if isinstance(x, float) else str(x)


_FRACTIONS = ("delivery", "slo_attainment", "prefix_cache_hit_rate")
_COUNTS = ("offered", "completed", "rejected", "timed_out", "failed", "cancelled")


def _unit(metric: str) -> str:
    """Unit of a claim metric for axis labels ("" when unknown, e.g. kernel-lab metrics)."""
    from ..errors import ConfigError
    from ..metrics._eval import parse_name

    if metric == "cost_per_million_tokens":
        return "USD per 1M output tokens"
    try:
        base, stat, _ = parse_name(metric)
    except ConfigError:
        return ""
    if stat:
        return "samples" if stat == "count" else "s"
    if base in _FRACTIONS:
        return "fraction of requests" if base != "prefix_cache_hit_rate" else "fraction of input tokens"
    if base in _COUNTS:
        return "requests"
    if base.endswith("_rps"):
        return "req/s"
    if base.endswith("tokens_per_s"):
        return "tokens/s"
    if base.startswith("total_"):
        return "tokens"
    return "s" if base.endswith("_s") else ""


def _labelled(metric: str) -> str:
    unit = _unit(metric)
    return f"{metric} ({unit})" if unit else metric


def _items(claim: Any, v: Any) -> list[tuple[str, float, float, float]]:
    items: list[tuple[str, float, float, float]] = []
    if v.value is not None and v.ci_lo is not None:
        kind = "measured" if not v.simulation_only and "bench" in v.evidence_kind else "simulated"
        if "baseline_value" in v.detail:
            kind = "claim"
        items.append((f"{claim.scenario} ({kind})", v.value, v.ci_lo, v.ci_hi))
    for c in v.detail.get("calibration", []):
        lo, hi = c["simulated_ci"]
        if c["scenario"] == claim.scenario and lo is not None:
            items.append((f"{claim.scenario} (simulated)", c["simulated_value"], lo, hi))
    if "baseline_value" in v.detail and v.detail["baseline_value"] is not None:
        f = v.detail["factor"]
        lo, hi = v.detail["baseline_ci"]
        items.append((f"{f:g}× {v.detail['baseline_scenario']}", f * v.detail["baseline_value"],
                      f * (lo if lo is not None else math.nan), f * (hi if hi is not None else math.nan)))
    return [it for it in items if all(isinstance(x, (int, float)) and math.isfinite(x)
                                      for x in it[1:])]


def render_report(result: Any, ledger: Any, path: str | Path) -> Path:
    """Write the decision's HTML report to ``path``."""
    from ..metrics import timeseries_from_records
    from .charts import Series, interval_chart, line_chart
    from .html import Page, write_html

    d = result.decision
    page = Page(f"Decision: {d.name}", subtitle=d.description)
    claims = {c.id: c for c in d.claims}
    rows = []
    for v in result.verdicts:
        c = claims[v.claim_id]
        ci = "—" if v.ci_lo is None else f"[{_f(v.ci_lo)}, {_f(v.ci_hi)}]"
        rows.append([c.id, f"{_labelled(c.metric)} @{c.scenario}", _f(v.value), ci,
                     f"{c.comparison} {_f(v.threshold)}", _f(v.margin), v.label,
                     f"{v.evidence_kind} {', '.join(v.run_ids)}".strip()])
    page.heading("Verdicts")
    page.table(["claim", "metric", "value", "CI", "threshold", "margin", "verdict", "evidence"],
               rows, caption="supported / rejected: the interval lies wholly on one side of "
                             "the threshold; pending: it straddles it, or evidence is missing")
    page.heading("Evidence per claim")
    for v in result.verdicts:
        c = claims[v.claim_id]
        page.heading(f"{c.id}: {v.label}", level=3)
        if c.text:
            page.paragraph(c.text)
        if v.reason:
            page.paragraph(f"Reason: {v.reason}")
        items = _items(c, v)
        if items and v.threshold is not None and math.isfinite(v.threshold):
            better = "higher" if c.comparison in (">", ">=") else "lower"
            page.figure(interval_chart(items, title=f"{c.metric} ({int(c.confidence * 100)}% CI)",
                                       x_label=_labelled(c.metric), threshold=v.threshold,
                                       threshold_label=f"threshold {_f(v.threshold)}",
                                       better=better),
                        caption=f"claim: {c.metric} {c.comparison} threshold")
        for cal in v.detail.get("calibration", []):
            rel = "—" if cal["rel_diff"] is None else f"{cal['rel_diff']:+.1%}"
            page.paragraph(f"Measured vs simulated on {cal['scenario']}: "
                           f"{_f(cal['measured_value'])} vs {_f(cal['simulated_value'])} ({rel}); "
                           f"{'they disagree' if cal['disagree'] else 'they agree'}.")
    page.heading("Delivery over time")
    for sc_name, evs in result.evidence.items():
        series = []
        for e in evs:
            if e.kind == "kernels" or not e.records:
                continue
            span = max((r.arrival_s for r in e.records), default=0.0)
            ts = timeseries_from_records(e.records, bucket_s=max(1.0, span / 40.0))
            pts = [(t, y) for t, y in zip(ts["t_s"], ts.get("delivery", [])) if y is not None]
            if pts:
                series.append(Series(name=f"{e.kind} {e.run_id}", xs=[p[0] for p in pts],
                                     ys=[p[1] for p in pts], kind="step"))
        if series:
            page.figure(line_chart(series, title=f"{sc_name}: delivery by arrival time",
                                   x_label="time since start (s)", y_label="delivered / offered",
                                   y_range=(0.0, 1.05)),
                        caption="fraction of the requests arriving in each interval that completed ok")
    page.heading("Experiments and runs")
    run_rows = []
    for e in result.experiments:
        prov = {}
        if e.run_id:
            try:
                prov = ledger.run(e.run_id)
            except Exception:   # noqa: BLE001 - a report never fails on a missing row
                prov = {}
        run_rows.append([e.scenario, e.kind, e.status, e.run_id or "—", e.message or "",
                         (prov.get("git_commit") or "—")[:12], (prov.get("catalog_hash") or "—")[:12],
                         prov.get("host") or "—"])
    page.table(["scenario", "kind", "status", "run", "note", "git", "catalog", "host"], run_rows)
    return write_html(page, path)
