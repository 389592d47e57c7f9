"""Terminal tables (rich) for run summaries and key/value listings, plus the same
rows for HTML pages.

``summary_table`` renders a ``metrics.summarize`` dict: requests and delivery,
throughput and goodput, then one row per latency metric (mean and each
percentile present, in ms) — the table every run command prints.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from rich.console import Group
from rich.table import Table

from ..units import MS

__all__ = ["summary_table", "kv_table", "latency_rows", "overview_rows", "LATENCY_LABELS"]

LATENCY_LABELS: dict[str, str] = {
    "ttft_s": "TTFT", "tpot_s": "TPOT", "itl_s": "ITL", "e2e_s": "E2E",
    "queue_s": "queue", "dispatch_lateness_s": "dispatch late",
}


def _num(v: Any, fmt: str = "{:,.2f}") -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    return fmt.format(v)


def _pct_keys(summary: dict[str, Any]) -> list[str]:
    qs = summary.get("percentiles")
    if qs:
        return [f"p{float(q):g}" for q in qs]
    row = summary.get("ttft_s") or {}
    return [k for k in row if k.startswith("p")]


def latency_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of latency statistics in milliseconds; rows without samples
    are left out (e.g. queue when no start times were recorded)."""
    pcts = _pct_keys(summary)
    cols = ["ms", "mean", *pcts, "max", "n"]
    rows: list[list[Any]] = []
    for key, label in LATENCY_LABELS.items():
        row = summary.get(key)
        if not row or not row.get("count"):
            continue
        def ms(v: Any) -> Any:
            return None if v is None else v / MS
        rows.append([label, ms(row.get("mean")), *[ms(row.get(p)) for p in pcts], ms(row.get("max")),
                     row.get("count")])
    return cols, rows


def overview_rows(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) pairs: request counts, delivery, duration, throughput, goodput."""
    pairs: list[tuple[str, Any]] = [
        ("offered", summary.get("offered")),
        ("completed (ok)", summary.get("completed")),
    ]
    for k in ("rejected", "timed_out", "failed", "cancelled"):
        if summary.get(k):
            pairs.append((k.replace("_", " "), summary.get(k)))
    pairs += [
        ("delivery (ok / offered)", summary.get("delivery")),
        ("duration (s)", summary.get("duration_s")),
        ("request throughput (req/s)", summary.get("request_throughput_rps")),
        ("output throughput (tok/s)", summary.get("throughput_tokens_per_s")),
        ("input throughput (tok/s)", summary.get("input_throughput_tokens_per_s")),
    ]
    if summary.get("goodput_rps") is not None:
        pairs += [("goodput (req/s)", summary.get("goodput_rps")),
                  ("SLO attainment (good / offered)", summary.get("slo_attainment"))]
    if summary.get("prefix_cache_hit_rate"):
        pairs.append(("prefix-cache hit rate", summary.get("prefix_cache_hit_rate")))
    for key, met in (summary.get("slo_met") or {}).items():
        pairs.append((f"SLO {key}", "met" if met else ("no samples" if met is None else "NOT met")))
    return pairs


def kv_table(pairs: Iterable[tuple[str, Any]], title: str = "") -> Table:
    """Two-column table of (key, value); numbers right-aligned and grouped."""
    t = Table(title=title or None, show_header=False, title_justify="left", box=None, pad_edge=False)
    t.add_column("key", style="bold")
    t.add_column("value", justify="right")
    for k, v in pairs:
        if isinstance(v, float):
            text = _num(v, "{:,.4g}" if abs(v) < 1 else "{:,.2f}")
        elif isinstance(v, str):
            text = v
            if v == "NOT met":
                text = "[red]NOT met[/red]"
            elif v == "met":
                text = "[green]met[/green]"
        else:
            text = _num(v)
        t.add_row(str(k), text)
    return t


def _ms(v: Any) -> str:
    """Milliseconds with precision that fits: 1,234 · 56.7 · 8.90."""
    if v is None:
        return "–"
    a = abs(v)
    return f"{v:,.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}"


def _table(cols: Sequence[str], rows: Sequence[Sequence[Any]], title: str) -> Table:
    t = Table(title=title or None, title_justify="left")
    for i, c in enumerate(cols):
        t.add_column(c, justify="left" if i == 0 else "right", no_wrap=True)
    for r in rows:
        t.add_row(*[r[0], *[_ms(v) for v in r[1:-1]], _num(r[-1])])
    return t


def summary_table(summary: dict[str, Any], title: str = "Run summary") -> Group:
    """The overview (counts, delivery, throughput, goodput, SLO checks) and the
    latency table (ms), as one printable rich renderable."""
    cols, rows = latency_rows(summary)
    parts: list[Any] = [kv_table(overview_rows(summary), title)]
    if rows:
        parts.append(_table(cols, rows, "Latency (ms)"))
    return Group(*parts)
