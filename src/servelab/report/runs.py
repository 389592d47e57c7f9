"""Ready-made figures and an HTML page for one run (simulated, emulated or measured).

``run_figures`` reads a run's time series in the one format every source writes
(``metrics.run_timeseries``: a ``requests`` part computed from the records and an
optional ``server`` part — the simulator's sampled gauges or the ``/metrics``
series scraped during a bench) and the records themselves, and draws captioned SVG
charts:

- load vs completions, delivery, output-token throughput (with the server's own
  generation rate when scraped), requests in the system (with the server's
  running/waiting gauges);
- TTFT, TPOT and E2E percentiles by arrival time (with the server's interval-mean
  TTFT when its histogram was scraped);
- latency distributions: empirical CDFs of TTFT and E2E (s), TPOT and ITL (ms;
  ITL pooled over tokens);
- server series when present: KV-cache usage, preemptions, replicas.

A chart is drawn only when the run holds its data (no empty frames); every point
carries hover text. ``run_page`` puts them on a ``Page`` under the summary tables,
with the run's metadata flattened to dotted keys.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from ..metrics import TIMESERIES_FORMAT, columns, default_bucket_s, timeseries_from_records
from ..records import RequestRecord, RunMeta
from ..units import MS
from ._svg import BAD, GOOD, PALETTE, WARN, finite
from .charts import Series, line_chart
from .html import Page
from .tables import latency_rows, overview_rows

__all__ = ["run_figures", "run_page", "cdf_series", "meta_rows", "client_server_rows"]

_CDF_POINTS = 400     # points per CDF curve (evenly spaced in probability)


def cdf_series(name: str, values: Sequence[float] | np.ndarray, *, scale: float = 1.0,
               weights: Sequence[float] | np.ndarray | None = None, color: str | None = None) -> Series:
    """Empirical CDF of finite ``values`` (× ``scale``) as a step series; with
    ``weights``, each value counts that many times (pooled ITL samples)."""
    v = np.asarray(values, dtype=np.float64)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = np.isfinite(v) & (w > 0)
    v, w = v[keep] * scale, w[keep]
    if v.size == 0:
        return Series(name=name, xs=[], ys=[], kind="step", color=color)
    order = np.argsort(v, kind="stable")
    v, cw = v[order], np.cumsum(w[order])
    k = min(v.size, _CDF_POINTS)
    idx = np.unique(np.linspace(0, v.size - 1, k).round().astype(int))
    return Series(name=name, xs=v[idx].tolist(), ys=(cw[idx] / cw[-1]).tolist(), kind="step", color=color)


def _has(ys: Sequence[Any] | None) -> bool:
    return bool(ys) and any(finite(y) for y in ys)  # type: ignore[union-attr]


def _parts(records: Sequence[RequestRecord], timeseries: dict[str, Any] | None,
           bucket_s: float | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(requests series, server section) from a stored time series, computing the
    request part from the records when the file lacks it."""
    ts = timeseries or {}
    server = ts.get("server") if ts.get("format") == TIMESERIES_FORMAT else None
    req = ts.get("requests") if ts.get("format") == TIMESERIES_FORMAT else (ts if "bucket_s" in ts else None)
    if req is None or bucket_s is not None or (records and not req.get("t_s")):
        req = timeseries_from_records(records, bucket_s or default_bucket_s(records))
    return req, server


def run_figures(records: Sequence[RequestRecord], *, timeseries: dict[str, Any] | None = None,
                bucket_s: float | None = None, ttft_slo_s: float | None = None,
                tpot_slo_s: float | None = None) -> list[tuple[str, str]]:
    """(svg, caption) pairs for a run (module docstring); ``bucket_s`` (default: the
    stored series', else about 60 buckets) recomputes the request series."""
    recs = list(records)
    req, server = _parts(recs, timeseries, bucket_s)
    t = req.get("t_s", [])
    b = req.get("bucket_s", 1.0)
    srv = (server or {}).get("series", {})
    st = (server or {}).get("t_s", [])
    src = (server or {}).get("source", "")
    srv_label = "simulator" if src == "simulator" else "server /metrics"
    figs: list[tuple[str, str]] = []

    def add(series: list[Series], caption: str, **kw: Any) -> None:
        if any(_has(s.ys) and len(s.xs) for s in series):
            figs.append((line_chart([s for s in series if _has(s.ys)], **kw), caption))

    add([Series(name="offered", xs=t, ys=req.get("offered_rps", []), kind="step", color=PALETTE[0]),
         Series(name="completed", xs=t, ys=req.get("completed_rps", []), kind="step", color=GOOD),
         Series(name="rejected", xs=t, ys=req.get("rejected_rps", []), kind="step", color=WARN),
         Series(name="failed / timed out", xs=t, ys=req.get("failed_rps", []), kind="step", color=BAD)],
        f"Requests per second in {b:g} s buckets (failures counted when they ended).",
        title="Load and completions over time", x_label="time since start (s)", y_label="requests/s")
    add([Series(name="output tokens/s (records)", xs=t, ys=req.get("throughput_tokens_per_s", []), kind="step"),
         Series(name=f"generation tokens/s ({srv_label})", xs=st, ys=srv.get("generation_tokens_per_s", []),
                dashed=True, color=PALETTE[3])],
        "Output tokens emitted per second, from the records' token timestamps (or spread evenly over a "
        "request's decode)" + ("; dashed: the server's own generation-token counter, as a rate over each "
                               "scrape interval." if _has(srv.get("generation_tokens_per_s")) else "."),
        title="Output token throughput over time", x_label="time since start (s)", y_label="tokens/s")
    add([Series(name="delivery", xs=t, ys=req.get("delivery", []), kind="step", color=GOOD)],
        "Fraction of the requests arriving in each bucket that finished ok.",
        title="Delivery over time", x_label="arrival time (s)", y_label="ok / offered", y_range=(0.0, 1.05))
    add([Series(name="in system (records)", xs=t, ys=req.get("running", []), kind="step"),
         Series(name=f"running ({srv_label})", xs=st, ys=srv.get("running", []), color=PALETTE[2], dashed=True),
         Series(name=f"waiting ({srv_label})", xs=st, ys=srv.get("waiting", []), color=PALETTE[1], dashed=True)],
        "Solid: time-averaged number of requests between arrival and finish, from the records. Dashed: "
        "the requests the server reported running (in the batch) and waiting, sampled.",
        title="Requests in the system", x_label="time since start (s)", y_label="requests")
    hl = [(ttft_slo_s, f"SLO {ttft_slo_s:g} s")] if ttft_slo_s is not None else []
    add([Series(name="TTFT p50", xs=t, ys=req.get("ttft_p50_s", [])),
         Series(name="TTFT p95", xs=t, ys=req.get("ttft_p95_s", [])),
         Series(name="TTFT p99", xs=t, ys=req.get("ttft_p99_s", [])),
         Series(name=f"mean TTFT ({srv_label} histogram)", xs=st, ys=srv.get("server_ttft_mean_s", []),
                dashed=True, color=PALETTE[6])],
        "TTFT percentiles of the ok requests arriving in each bucket.",
        title="TTFT percentiles by arrival time", x_label="arrival time (s)", y_label="TTFT (s)", hlines=hl)

    def ms(ys: Sequence[Any]) -> list[Any]:
        return [y / MS if finite(y) else None for y in ys]
    hl = [(tpot_slo_s / MS, f"SLO {tpot_slo_s / MS:g} ms")] if tpot_slo_s is not None else []
    add([Series(name="TPOT p50", xs=t, ys=ms(req.get("tpot_p50_s", []))),
         Series(name="TPOT p95", xs=t, ys=ms(req.get("tpot_p95_s", []))),
         Series(name=f"mean ITL ({srv_label} histogram)", xs=st, ys=ms(srv.get("server_itl_mean_s", [])),
                dashed=True, color=PALETTE[6])],
        "Time per output token (after the first) of the ok requests arriving in each bucket.",
        title="TPOT percentiles by arrival time", x_label="arrival time (s)", y_label="TPOT (ms)", hlines=hl)
    add([Series(name="E2E p50", xs=t, ys=req.get("e2e_p50_s", [])),
         Series(name="E2E p95", xs=t, ys=req.get("e2e_p95_s", []))],
        "End-to-end latency of the ok requests arriving in each bucket.",
        title="End-to-end latency by arrival time", x_label="arrival time (s)", y_label="E2E (s)")
    c = columns(recs)
    add([cdf_series("TTFT", c.ttft_s), cdf_series("E2E", c.e2e_s)],
        "Empirical CDF of TTFT and end-to-end latency (ok requests).",
        title="Latency distribution: TTFT and E2E", x_label="latency (s)", y_label="fraction ≤ x",
        y_range=(0.0, 1.0), vlines=[(ttft_slo_s, "TTFT SLO")] if ttft_slo_s is not None else ())
    add([cdf_series("TPOT (per request)", c.tpot_s, scale=1 / MS),
         cdf_series("ITL (per token)", c.itl_values_s, scale=1 / MS, weights=c.itl_weights)],
        "Empirical CDF of TPOT (one value per request) and inter-token latency (one value per token gap, "
        "pooled over requests, as vLLM reports ITL).",
        title="Latency distribution: TPOT and ITL", x_label="latency (ms)", y_label="fraction ≤ x",
        y_range=(0.0, 1.0))
    if _has(srv.get("kv_usage")):
        add([Series(name="KV cache usage", xs=st, ys=srv.get("kv_usage", []), color=PALETTE[4])],
            "Fraction of KV-cache blocks in use (" + ("mean over live replicas" if src == "simulator"
                                                      else "as the server reports it") + "), sampled.",
            title="KV cache usage over time", x_label="time since start (s)", y_label="fraction in use",
            y_range=(0.0, 1.0))
    add([Series(name="preemptions/s", xs=st, ys=srv.get("preemptions_per_s", []), color=BAD),
         Series(name="prompt tokens/s ÷ 1000", xs=st,
                ys=[y / 1000 if finite(y) else None for y in srv.get("prompt_tokens_per_s", [])],
                color=PALETTE[0], dashed=True)],
        "From the server's counters, as rates over each scrape interval: preemptions, and prefill tokens "
        "(in thousands per second).",
        title="Server counters over time", x_label="time since start (s)", y_label="per second")
    if _has(srv.get("replicas")) and len({y for y in srv["replicas"] if finite(y)}) > 1:
        add([Series(name="ready replicas", xs=st, ys=srv["replicas"], kind="step")],
            "Replicas ready to serve (autoscaling, faults).",
            title="Replicas over time", x_label="time since start (s)", y_label="replicas")
    return figs


def _flat(prefix: str, v: Any, out: list[list[Any]]) -> None:
    if isinstance(v, dict):
        if not v:
            out.append([prefix, "–"])
        for k, x in v.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), x, out)
    elif isinstance(v, (list, tuple)):
        if all(isinstance(x, (int, float, str, bool)) or x is None for x in v):
            out.append([prefix, ", ".join("–" if x is None else str(x) for x in v) or "–"])
        else:
            out.append([prefix, json.dumps(v, default=str, separators=(", ", ": "))])
    else:
        out.append([prefix, v])


def meta_rows(meta: RunMeta) -> list[list[Any]]:
    """The run's metadata as (dotted key, value) rows: nested settings flattened
    (``config.cli.model``), lists of scalars comma-joined."""
    rows: list[list[Any]] = []
    for k, v in meta.to_dict().items():
        _flat(k, v, rows)
    return rows


def client_server_rows(summary: dict[str, Any]) -> list[list[Any]]:
    """Rows (latency, client mean ms, server mean ms, difference ms, relative) for the
    bases whose server histogram was scraped (``server_metrics.mean_s``)."""
    server = (summary.get("server_metrics") or {}).get("mean_s") or {}
    rows = []
    for base, label in (("ttft", "TTFT"), ("itl", "ITL"), ("tpot", "TPOT"), ("e2e", "E2E"), ("queue", "queue")):
        c = (summary.get(f"{base}_s") or {}).get("mean")
        sv = server.get(base)
        if finite(c) and finite(sv):
            rows.append([label, c / MS, sv / MS, (c - sv) / MS, f"{(c - sv) / sv:+.1%}" if sv else "–"])
    return rows


def run_page(title: str, summary: dict[str, Any], records: Sequence[RequestRecord] = (), *,
             meta: RunMeta | None = None, timeseries: dict[str, Any] | None = None,
             ttft_slo_s: float | None = None, tpot_slo_s: float | None = None) -> Page:
    """An HTML page for one run: overview, latency table, figures, metadata."""
    page = Page(title, subtitle=f"{meta.kind} run {meta.run_id}, started {meta.started_at}" if meta else "")
    page.heading("Summary")
    page.table(["quantity", "value"], [list(p) for p in overview_rows(summary)])
    cols, rows = latency_rows(summary)
    if rows:
        page.table(cols, rows, caption="Latency (ms)")
    cs = client_server_rows(summary)
    if cs:
        page.table(["latency", "client mean (ms)", "server mean (ms)", "client − server (ms)", "relative"], cs,
                   caption="Measured by the client vs the server's own histograms over the same run")
        page.paragraph("The server's histograms count from when it received each request and to when it "
                       "emitted each token; the client counts from the scheduled send time to when each "
                       "chunk arrived. The difference is the client's dispatch lateness, the network and "
                       "HTTP path, and (for queue) what the two call waiting.")
    if records or timeseries:
        page.heading("Over time and distributions")
        for svg, cap in run_figures(records, timeseries=timeseries, ttft_slo_s=ttft_slo_s,
                                    tpot_slo_s=tpot_slo_s):
            page.figure(svg, cap)
    if meta is not None:
        page.heading("Run metadata")
        page.table(["field", "value"], meta_rows(meta))
    return page
