"""Terminal tables of a run comparison (``report.compare.Comparison``): one small table per
metric with each run's value and CI, its difference and ratio vs the baseline (with CIs),
the relative error and whether the intervals overlap. Latencies are shown in ms."""

from __future__ import annotations

import math
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table

__all__ = ["compare_tables"]


def _num(x: float, scale: float = 1.0) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    v = x * scale
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _with_ci(v: float, ci: tuple[float, float], scale: float) -> str:
    return f"{_num(v, scale)}\n[{_num(ci[0], scale)}, {_num(ci[1], scale)}]"


def compare_tables(cmp: Any) -> Group:
    """One small table per metric: value [CI], Δ [CI], ratio [CI], relative error, overlap."""
    from ..units import MS
    parts: list[Any] = [f"[bold]Comparison vs baseline {cmp.baseline}[/bold] — {cmp.confidence * 100:g}% "
                        f"percentile-bootstrap CIs, {cmp.n_resamples} resamples per run; Δ and ratio CIs "
                        "resample each run independently"]
    for m in cmp.metrics:
        scale, unit = (1 / MS, "ms") if m.unit == "s" else (1.0, m.unit)
        t = Table(title=f"{m.metric} ({unit})", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for i, h in enumerate(("run", "value [CI]", "Δ vs base [CI]", "ratio [CI]", "rel.err", "overlap")):
            t.add_column(h, justify="left" if i == 0 else "right", no_wrap=i > 0)
        for e in m.runs:
            if e.is_baseline:
                t.add_row(f"{e.label} (baseline)", _with_ci(e.value, e.ci, scale), "", "", "", "")
                continue
            rel = f"{e.rel_error:+.1%}" if math.isfinite(e.rel_error) else "–"
            ov = {True: "yes", False: "[bold red]NO[/bold red]", None: "–"}[e.overlap]
            t.add_row(e.label, _with_ci(e.value, e.ci, scale), _with_ci(e.diff, e.diff_ci, scale),
                      _with_ci(e.ratio, e.ratio_ci, 1.0), rel, ov)
        parts.append(t)
    return Group(*parts)
