"""Ready-made figures and an HTML page for one run (simulated, emulated or measured).

``run_figures`` turns a run's time series (``metrics.timeseries_from_records``)
and records into captioned SVG charts: load vs completions with delivery, output
token throughput, requests in the system, TTFT per arrival bucket against the SLO,
and the TTFT / E2E distribution (empirical CDF). ``run_page`` puts them on a
``Page`` under the summary tables.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..metrics import columns, timeseries_from_records
from ..records import RequestRecord, RunMeta
from ._svg import BAD, GOOD, PALETTE, WARN
from .charts import Series, line_chart
from .html import Page
from .tables import latency_rows, overview_rows

__all__ = ["run_figures", "run_page", "cdf_series"]

_CDF_POINTS = 400     # points per CDF curve (evenly spaced in probability)


def cdf_series(name: str, values: Sequence[float] | np.ndarray, *, scale: float = 1.0) -> Series:
    """Empirical CDF of finite ``values`` (× ``scale``) as a step series."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v)] * scale
    if v.size == 0:
        return Series(name=name, xs=[], ys=[], kind="step")
    k = min(v.size, _CDF_POINTS)
    idx = np.unique(np.linspace(0, v.size - 1, k).round().astype(int))
    return Series(name=name, xs=v[idx].tolist(), ys=((idx + 1) / v.size).tolist(), kind="step")


def run_figures(records: Sequence[RequestRecord], *, timeseries: dict[str, Any] | None = None,
                bucket_s: float | None = None, ttft_slo_s: float | None = None) -> list[tuple[str, str]]:
    """(svg, caption) pairs for a run; ``bucket_s`` defaults to span / 60."""
    recs = list(records)
    if timeseries is None:
        if bucket_s is None:
            c = columns(recs)
            span = float(np.nanmax(np.r_[c.finish_s, c.arrival_s])) if c.n else 1.0
            bucket_s = max(span / 60.0, 1e-3)
        timeseries = timeseries_from_records(recs, bucket_s)
    t = timeseries.get("t_s", [])
    b = timeseries.get("bucket_s", 1.0)
    figs: list[tuple[str, str]] = []
    figs.append((line_chart(
        [Series(name="offered", xs=t, ys=timeseries.get("offered_rps", []), kind="step", color=PALETTE[0]),
         Series(name="completed", xs=t, ys=timeseries.get("completed_rps", []), kind="step", color=GOOD),
         Series(name="rejected", xs=t, ys=timeseries.get("rejected_rps", []), kind="step", color=WARN),
         Series(name="failed / timed out", xs=t, ys=timeseries.get("failed_rps", []), kind="step",
                color=BAD)],
        title="Load and completions over time", x_label="time since start (s)", y_label="requests/s"),
        f"Requests per second in {b:g} s buckets (failures counted when they ended)."))
    figs.append((line_chart(
        [Series(name="delivery", xs=t, ys=timeseries.get("delivery", []), kind="step")],
        title="Delivery over time", x_label="arrival time (s)", y_label="ok / offered",
        y_range=(0.0, 1.0)),
        "Fraction of the requests arriving in each bucket that finished ok."))
    figs.append((line_chart(
        [Series(name="output tokens/s", xs=t, ys=timeseries.get("throughput_tokens_per_s", []), kind="step")],
        title="Output token throughput", x_label="time since start (s)", y_label="tokens/s"),
        "Output tokens emitted per second (token timestamps, or spread evenly over a request's decode)."))
    figs.append((line_chart(
        [Series(name="in system", xs=t, ys=timeseries.get("running", []), kind="step")],
        title="Requests in the system", x_label="time since start (s)", y_label="requests (time-averaged)"),
        "Time-averaged number of requests between arrival and finish."))
    hl = [(ttft_slo_s, f"SLO {ttft_slo_s:g} s")] if ttft_slo_s is not None else []
    figs.append((line_chart(
        [Series(name="TTFT p50", xs=t, ys=timeseries.get("ttft_p50_s", [])),
         Series(name="TTFT p95", xs=t, ys=timeseries.get("ttft_p95_s", []))],
        title="TTFT by arrival time", x_label="arrival time (s)", y_label="TTFT (s)", hlines=hl),
        "TTFT percentiles of the ok requests arriving in each bucket."))
    c = columns(recs)
    figs.append((line_chart(
        [cdf_series("TTFT", c.ttft_s), cdf_series("E2E", c.e2e_s)],
        title="Latency distribution", x_label="latency (s)", y_label="fraction of ok requests ≤ x",
        y_range=(0.0, 1.0), vlines=[(ttft_slo_s, "TTFT SLO")] if ttft_slo_s is not None else ()),
        "Empirical CDF of TTFT and end-to-end latency."))
    return figs


def run_page(title: str, summary: dict[str, Any], records: Sequence[RequestRecord] = (), *,
             meta: RunMeta | None = None, timeseries: dict[str, Any] | None = None,
             ttft_slo_s: float | None = None) -> Page:
    """An HTML page for one run: overview, latency table, figures, metadata."""
    page = Page(title, subtitle=f"{meta.kind} run {meta.run_id}, started {meta.started_at}" if meta else "")
    page.heading("Summary")
    page.table(["quantity", "value"], [list(p) for p in overview_rows(summary)])
    cols, rows = latency_rows(summary)
    if rows:
        page.table(cols, rows, caption="Latency (ms)")
    if records or timeseries:
        page.heading("Over time")
        for svg, cap in run_figures(records, timeseries=timeseries, ttft_slo_s=ttft_slo_s):
            page.figure(svg, cap)
    if meta is not None:
        page.heading("Run metadata")
        d = meta.to_dict()
        page.table(["field", "value"], [[k, v if isinstance(v, (int, float, str)) or v is None else str(v)]
                                        for k, v in d.items()])
    return page
