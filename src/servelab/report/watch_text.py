"""Terminal view of ``servelab watch``: a live fleet's operating point (arrival rate,
p95 TTFT/TPOT/E2E, running/waiting, KV usage, preemptions, output tokens/s) next to the
plan's prediction at that load, and the findings of the report."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

__all__ = ["watch_report"]


def watch_report(rep: Any, planned: float) -> Any:
    """One ``deploy.watch`` report: observed vs predicted at the observed load, then the findings."""
    p = rep.point
    pr = rep.prediction
    style = {"idle": "dim", "ok": "green", "warn": "yellow", "alert": "bold red"}[rep.status]
    tab = Table(title=f"[{style}]{rep.status.upper()}[/]  load {rep.load_factor:.2f}× plan", title_justify="left")
    for col in ("", "observed", "predicted at this load"):
        tab.add_column(col, justify="right" if col else "left")

    def s(x: Any, unit: str = "s") -> str:
        if x is None:
            return "-"
        return f"{x * 1e3:.0f} ms" if unit == "s" and x < 1 else (f"{x:.2f} s" if unit == "s" else f"{x:.3g}")

    tab.add_row("arrival rate (req/s)", f"{p.arrival_rate_rps:.3g}", f"plan {planned:.3g}")
    for m in ("ttft", "tpot", "e2e"):
        tab.add_row(f"p95 {m.upper()}", s(getattr(p, f"{m}_p95_s")), s(pr.values.get(f"{m}_p95") if pr else None))
    tab.add_row("running / waiting", f"{p.running:g} / {p.waiting:g}", "")
    tab.add_row("KV usage (max)", "-" if p.kv_usage is None else f"{p.kv_usage:.0%}", "")
    tab.add_row("preemptions/s", s(p.preemptions_per_s, ""), "")
    tab.add_row("output tokens/s", s(p.output_tokens_per_s, ""), "")
    lines = [Text.from_markup(f"[{'bold red' if f.level == 'alert' else 'yellow'}]{f.level.upper():<5}[/] "
                              f"{f.kind}: {f.message}") for f in rep.findings]
    if p.missing:
        lines.append(Text.from_markup(f"[dim]not exposed by the source: {', '.join(p.missing)}[/]"))
    return Group(tab, *lines)
