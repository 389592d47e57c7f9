"""Terminal tables of ``servelab bench``: a run's summary (latency rows limited to the
metrics asked for), its failures grouped by reason, and a rate sweep's points."""

from __future__ import annotations

from typing import Any

from rich.table import Table

__all__ = ["bench_table", "failure_table", "sweep_table"]


def _fmt_ms(x: Any) -> str:
    return "-" if x is None else f"{x * 1000:.2f}"


def bench_table(summary: dict[str, Any], title: str, metrics: list[str]) -> Any:
    """Rich table of a summary; latency rows limited to ``metrics`` (+ dispatch lateness)."""
    keep = set(metrics) | {"dispatch_lateness"}
    shown = {k: v for k, v in summary.items()
             if not (k.endswith("_s") and isinstance(v, dict) and "p50" in v and k[:-2] not in keep)}
    try:
        from .tables import summary_table  # type: ignore[attr-defined]
        return summary_table(shown, title)
    except (ImportError, AttributeError, NotImplementedError, KeyError, TypeError):
        pass
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k in ("offered", "completed", "rejected", "timed_out", "failed", "cancelled", "delivery",
              "request_throughput_rps", "throughput_tokens_per_s", "total_input_tokens",
              "total_output_tokens", "goodput_rps"):
        if k in summary and summary[k] is not None:
            v = summary[k]
            t.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    for base in metrics + ["dispatch_lateness"]:
        row = summary.get(f"{base}_s")
        if not row:
            continue
        for stat in ["mean"] + [f"p{q:g}" for q in summary.get("percentiles", [])]:
            t.add_row(f"{base} {stat} (ms)", _fmt_ms(row.get(stat)))
    return t


def failure_table(fails: dict[str, Any], label: str) -> Any:
    """The not-ok requests of a run by (status, reason), with counts."""
    t = Table(title=f"not ok by reason — {label}")
    t.add_column("count", justify="right")
    t.add_column("status")
    t.add_column("reason")
    for g in fails.get("by_reason", []):
        t.add_row(str(g["count"]), g["status"], g["reason"])
    return t


def sweep_table(doc: dict[str, Any], slo: str | None) -> Table:
    """One row per sweep point (``load.sweep.SweepResult.to_dict()``)."""
    from .html import fmt_cell
    from .sweep import SWEEP_COLUMNS, sweep_rows
    t = Table(title="servelab bench --sweep" + (f" — SLO {slo}" if slo else ""))
    for i, c in enumerate(SWEEP_COLUMNS):
        t.add_column(c, justify="left" if i == 0 else "right")
    for row in sweep_rows(doc["points"]):
        t.add_row(*[fmt_cell(v)[0] for v in row])
    return t
