"""The page of a rate sweep (``servelab bench --sweep``): one summary table across
rates and latency–throughput curves.

Input: the sweep's JSON (``load.sweep.SweepResult.to_dict``): ``points`` rows with
``kind``, ``rate_rps``, ``achieved_rps``, ``throughput_tokens_per_s``, TTFT/TPOT
percentiles, ``delivery``, ``slo_met``. Curves: TTFT p50/p95 (s) and TPOT p50/p95 (ms)
against the achieved request throughput, points in order of achieved rate; the
highest rate that met the SLO is marked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from .._files import atomic_write_text
from ..units import MS
from ._svg import BAD, GOOD, PALETTE, finite
from .charts import Series, line_chart
from .html import Page, write_html

__all__ = ["sweep_page", "sweep_rows", "write_sweep", "SWEEP_COLUMNS"]

SWEEP_COLUMNS = ["run", "offered (req/s)", "achieved (req/s)", "output (tok/s)", "TTFT p50 (ms)",
                 "TTFT p95 (ms)", "TPOT p50 (ms)", "TPOT p95 (ms)", "delivery", "SLO"]


def _ms(x: Any) -> Any:
    return x / MS if finite(x) else None


def sweep_rows(points: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Table rows (``SWEEP_COLUMNS``), one per run in the order they ran."""
    rows = []
    for p in points:
        rate = p.get("rate_rps")
        met = p.get("slo_met")
        rows.append([p.get("kind"), "all at once" if p.get("kind") == "throughput" else
                     ("one at a time" if p.get("kind") == "synchronous" else rate),
                     p.get("achieved_rps"), p.get("throughput_tokens_per_s"),
                     _ms(p.get("ttft_p50_s")), _ms(p.get("ttft_p95_s")), _ms(p.get("tpot_p50_s")),
                     _ms(p.get("tpot_p95_s")), p.get("delivery"),
                     "–" if met is None else ("met" if met else "not met")])
    return rows


def _curve(points: list[dict[str, Any]], key: str, name: str, scale: float, color: str) -> Series:
    xs = [p["achieved_rps"] for p in points]
    ys = [p.get(key) * scale if finite(p.get(key)) else None for p in points]
    hover = [f"{name} {y:.4g} at {x:.4g} req/s achieved ({p['kind']}"
             + (f", offered {p['rate_rps']:.4g} req/s" if finite(p.get("rate_rps")) else "")
             + ("" if p.get("slo_met") is None else (", SLO met" if p["slo_met"] else ", SLO not met")) + ")"
             if y is not None else "" for x, y, p in zip(xs, ys, points)]
    return Series(name=name, xs=xs, ys=ys, color=color, hover=hover)


def sweep_page(sweep: dict[str, Any], *, title: str = "Rate sweep", slo: str | None = None,
               ttft_slo_s: float | None = None, tpot_slo_s: float | None = None) -> Page:
    """The page: verdict sentence, table, TTFT and TPOT against achieved throughput."""
    pts = sorted([p for p in sweep.get("points", []) if finite(p.get("achieved_rps"))],
                 key=lambda p: p["achieved_rps"])
    page = Page(title, subtitle=f"SLO {slo}" if slo else "no SLO given: every rate run")
    best, broke = sweep.get("max_rate_met_rps"), sweep.get("first_rate_broken_rps")
    text = (f"Synchronous (one request at a time): {sweep.get('sync_rps', 0):.4g} req/s; "
            f"throughput (all at once): {sweep.get('throughput_rps', 0):.4g} req/s. ")
    if slo and best is not None:
        text += f"The highest offered rate that met the SLO is {best:.4g} req/s"
        text += f"; {broke:.4g} req/s broke it." if broke is not None else \
            " (no rate up to the throughput end broke it)."
    elif slo and broke is not None:
        text += f"Every rate broke the SLO, the lowest at {broke:.4g} req/s."
    page.paragraph(text)
    page.table(SWEEP_COLUMNS, sweep_rows(sweep.get("points", [])), caption="One row per run, in run order")
    marks = [(best, f"met up to {best:.4g} req/s")] if finite(best) else []
    page.figure(line_chart(
        [_curve(pts, "ttft_p50_s", "TTFT p50", 1.0, PALETTE[0]),
         _curve(pts, "ttft_p95_s", "TTFT p95", 1.0, PALETTE[1])],
        title="TTFT against throughput", x_label="achieved request throughput (req/s)", y_label="TTFT (s)",
        hlines=[(ttft_slo_s, f"SLO {ttft_slo_s:g} s")] if ttft_slo_s else (), vlines=marks),
        "Each point is one run of the sweep (hover for its rate and verdict).")
    page.figure(line_chart(
        [_curve(pts, "tpot_p50_s", "TPOT p50", 1 / MS, GOOD),
         _curve(pts, "tpot_p95_s", "TPOT p95", 1 / MS, BAD)],
        title="TPOT against throughput", x_label="achieved request throughput (req/s)", y_label="TPOT (ms)",
        hlines=[(tpot_slo_s / MS, f"SLO {tpot_slo_s / MS:g} ms")] if tpot_slo_s else (), vlines=marks),
        "Time per output token after the first, per run.")
    return page


def write_sweep(doc: dict[str, Any], out: str | Path, *, slo: str | None = None, slo_obj: Any = None,
                title: str = "servelab bench --sweep") -> None:
    """``sweep.json`` (``doc``, written atomically) and ``sweep.html`` in ``out``; the TTFT
    and TPOT targets of ``slo_obj`` (``catalog.slo``) are drawn on the latency curves."""
    atomic_write_text(Path(out) / "sweep.json", json.dumps(doc, indent=2, allow_nan=False) + "\n")
    targets = {t.metric: t.threshold_s for t in slo_obj.targets} if slo_obj else {}
    write_html(sweep_page(doc, title=title, slo=slo, ttft_slo_s=targets.get("ttft"),
                          tpot_slo_s=targets.get("tpot")), Path(out) / "sweep.html")
