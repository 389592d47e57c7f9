"""Tables and plots from a kernel results file (torch-free).

- :func:`summarize` — one :class:`Summary` per (kernel, provider, dtype, shape), from the
  newest run that measured it: latency p50/p95/p99, achieved GB/s and TFLOP/s (p50; from
  the hand counts of :mod:`.specs` when the file has no rate rows),
  fractions of the run's measured peaks, and for the ``triton`` provider the speed
  relative to the fastest baseline at the same shape (baseline p50 / triton p50; > 1 is
  faster than every baseline).
- :func:`roofline_svg` — operational intensity (FLOP/byte, from the hand counts) vs
  achieved TFLOP/s on log axes, with the roof min(peak FLOP/s, intensity × copy bytes/s)
  drawn from the peaks *measured* in the file (no roof when none were measured).
- :func:`html_report` — a self-contained page (:class:`Page`).
- :func:`roofline_png` — the same chart with matplotlib, only when it is installed.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..kernelrows import ResultRow
from ..kernels.specs import KERNELS, work_of
from .charts import Series, line_chart
from .html import Page

__all__ = ["Summary", "summarize", "peaks_of", "checks_of", "roofline_svg", "html_report",
           "roofline_png", "TABLE_COLUMNS", "table_rows"]

_TIMED = ("latency", "bandwidth", "throughput", "frac_copy_bw", "frac_matmul_peak")


@dataclass(frozen=True, kw_only=True)
class Summary:
    kernel: str
    provider: str
    dtype: str
    shape: dict[str, Any]
    p50_s: float
    p95_s: float
    p99_s: float
    gb_per_s: float
    tflop_per_s: float
    frac_copy_bw: float
    frac_matmul_peak: float
    intensity_flop_per_byte: float
    vs_best_baseline: float
    gpu: str
    run_id: str

    def shape_str(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.shape.items())


def _key(r: ResultRow) -> tuple:
    return (r.kernel, r.provider, r.dtype, tuple(sorted(r.shape.items())))


def _latest(rows: Sequence[ResultRow], metrics: Sequence[str]) -> dict[tuple, dict[str, ResultRow]]:
    """{key: {metric: row}} keeping, per key, the rows of the newest run."""
    out: dict[tuple, dict[str, ResultRow]] = {}
    for r in sorted((r for r in rows if r.metric in metrics), key=lambda r: r.timestamp):
        cur = out.get(_key(r))
        if cur and next(iter(cur.values())).run_id != r.run_id:
            cur = None
        cur = cur or {}
        cur[r.metric] = r
        out[_key(r)] = cur
    return out


def peaks_of(rows: Sequence[ResultRow]) -> tuple[float | None, float | None]:
    """(copy GB/s, matmul TFLOP/s) measured by the newest run that measured them."""
    bw = [r for r in rows if r.metric == "peak_copy_bw"]
    mm = [r for r in rows if r.metric == "peak_matmul"]
    newest = lambda xs: max(xs, key=lambda r: r.timestamp).p50 if xs else None  # noqa: E731
    return newest(bw), newest(mm)


def summarize(rows: Sequence[ResultRow]) -> list[Summary]:
    groups = _latest(rows, _TIMED)
    nan = math.nan
    out: list[Summary] = []
    for ms in groups.values():
        lat = ms.get("latency")
        if lat is None:
            continue
        try:
            work = work_of(lat.kernel, lat.shape, lat.dtype)
            oi, gbs, tfs = work.intensity_flop_per_byte, work.bytes / lat.p50 / 1e9, work.flops / lat.p50 / 1e12
        except (KeyError, ValueError):
            oi = gbs = tfs = nan
        get = lambda m, dflt=nan, ms=ms: ms[m].p50 if m in ms else dflt  # noqa: E731
        out.append(Summary(kernel=lat.kernel, provider=lat.provider, dtype=lat.dtype, shape=lat.shape,
                           p50_s=lat.p50, p95_s=lat.p95, p99_s=lat.p99, gb_per_s=get("bandwidth", gbs),
                           tflop_per_s=get("throughput", tfs), frac_copy_bw=get("frac_copy_bw"),
                           frac_matmul_peak=get("frac_matmul_peak"), intensity_flop_per_byte=oi,
                           vs_best_baseline=nan, gpu=lat.gpu, run_id=lat.run_id))
    best: dict[tuple, float] = {}
    for s in out:
        if s.provider != "triton":
            k = (s.kernel, s.dtype, tuple(sorted(s.shape.items())))
            best[k] = min(best.get(k, math.inf), s.p50_s)
    final = []
    for s in out:
        k = (s.kernel, s.dtype, tuple(sorted(s.shape.items())))
        if s.provider == "triton" and k in best:
            s = Summary(**{**s.__dict__, "vs_best_baseline": best[k] / s.p50_s})
        final.append(s)
    order = {name: i for i, name in enumerate(KERNELS)}
    final.sort(key=lambda s: (order.get(s.kernel, 99), s.dtype, str(sorted(s.shape.items())), s.p50_s))
    return final


def checks_of(rows: Sequence[ResultRow]) -> list[ResultRow]:
    return [r for r in rows if r.metric == "max_abs_err"]


TABLE_COLUMNS = ("kernel", "provider", "dtype", "shape", "p50 µs", "p95 µs", "p99 µs", "GB/s",
                 "TFLOP/s", "% copy BW", "% matmul peak", "× best baseline")


def table_rows(summaries: Sequence[Summary]) -> list[list[Any]]:
    def pct(x: float) -> float:
        return 100 * x
    return [[s.kernel, s.provider, s.dtype, s.shape_str(), s.p50_s * 1e6, s.p95_s * 1e6, s.p99_s * 1e6,
             s.gb_per_s, s.tflop_per_s, pct(s.frac_copy_bw), pct(s.frac_matmul_peak), s.vs_best_baseline]
            for s in summaries]


def _roof(bw_gb_s: float, mm_tflop_s: float, x_lo: float, x_hi: float) -> Series:
    ridge = mm_tflop_s * 1e12 / (bw_gb_s * 1e9)
    xs = sorted({x_lo, min(max(ridge, x_lo), x_hi), x_hi})
    ys = [min(mm_tflop_s, x * bw_gb_s * 1e9 / 1e12) for x in xs]
    return Series(name=f"roof: {bw_gb_s:,.4g} GB/s, {mm_tflop_s:,.4g} TFLOP/s (measured)",
                  xs=xs, ys=ys, kind="line", dashed=True)


def roofline_svg(rows: Sequence[ResultRow]) -> str:
    sums = [s for s in summarize(rows) if s.tflop_per_s > 0 and math.isfinite(s.intensity_flop_per_byte)]
    series = []
    for kernel in dict.fromkeys(s.kernel for s in sums):
        for prov in dict.fromkeys(s.provider for s in sums if s.kernel == kernel):
            pts = [s for s in sums if s.kernel == kernel and s.provider == prov]
            series.append(Series(name=f"{kernel} / {prov}", xs=[s.intensity_flop_per_byte for s in pts],
                                 ys=[s.tflop_per_s for s in pts], kind="scatter"))
    bw, mm = peaks_of(rows)
    if bw and mm:
        xs = [s.intensity_flop_per_byte for s in sums] or [1.0]
        series.append(_roof(bw, mm, min(min(xs) / 2, 0.1), max(max(xs) * 2, 1e4)))
    return line_chart(series, title="Roofline (achieved p50 vs hand-counted intensity)",
                         x_label="operational intensity [FLOP/byte]", y_label="achieved [TFLOP/s]",
                         log_x=True, log_y=True, width=900, height=520)


def html_report(rows: Sequence[ResultRow], *, title: str = "servelab kernel lab") -> str:
    sums = summarize(rows)
    gpus = sorted({r.gpu for r in rows if r.gpu}) or ["(none recorded)"]
    env = next((r for r in rows if r.gpu), rows[0] if rows else None)
    page = Page(title, subtitle=f"GPU: {', '.join(gpus)}")
    if env is not None:
        page.paragraph(f"driver {env.driver or '?'} · CUDA {env.cuda or '?'} · torch {env.torch or '?'} · "
                       f"triton {env.triton or '?'} · {len(rows)} rows")
    bw, mm = peaks_of(rows)
    page.heading("Measured peaks")
    page.table(["metric", "value"], [["copy bandwidth [GB/s]", bw], ["cuBLAS bf16 8192³ [TFLOP/s]", mm]])
    if not sums:
        page.paragraph("No timing rows in this file: GPU numbers not measured.")
    else:
        page.figure(roofline_svg(rows), caption="Each point is one (kernel, provider, dtype, shape) at its p50.")
        for kernel in dict.fromkeys(s.kernel for s in sums):
            page.heading(kernel)
            page.table(TABLE_COLUMNS, table_rows([s for s in sums if s.kernel == kernel]))
    checks = checks_of(rows)
    if checks:
        page.heading("Correctness checks")
        page.table(["kernel", "provider", "dtype", "shape", "max abs err", "tolerance used", "result"],
                   [[c.kernel, c.provider, c.dtype, c.shape_str(), c.p50, c.config.get("excess"),
                     "pass" if c.config.get("passed") else "fail"] for c in checks])
    return page.render()


def roofline_png(rows: Sequence[ResultRow], path: str | Path) -> Path | None:
    """Write the roofline as PNG when matplotlib is installed; None otherwise."""
    if importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sums = [s for s in summarize(rows) if s.tflop_per_s > 0 and math.isfinite(s.intensity_flop_per_byte)]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for kernel in dict.fromkeys(s.kernel for s in sums):
        pts = [s for s in sums if s.kernel == kernel]
        ax.scatter([s.intensity_flop_per_byte for s in pts], [s.tflop_per_s for s in pts], label=kernel, s=14)
    bw, mm = peaks_of(rows)
    if bw and mm and sums:
        r = _roof(bw, mm, min(s.intensity_flop_per_byte for s in sums) / 2, 1e4)
        ax.plot(r.xs, r.ys, "k--", label=r.name)
    ax.set(xscale="log", yscale="log", xlabel="operational intensity [FLOP/byte]",
           ylabel="achieved [TFLOP/s]", title="Roofline")
    ax.legend(fontsize=7)
    p = Path(path)
    fig.savefig(p, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return p
