"""Terminal output of ``servelab kernels``: the kernel list, the correctness checks
(grouped by kernel, provider and dtype) and the tables of a results file (latency
percentiles, GB/s, TFLOP/s and roofline placement per shape, against the file's measured
peaks). Rows and summaries come from ``report.kernels``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from . import kernels as render

__all__ = ["kernel_list_table", "check_json", "check_table", "results_json", "print_results"]


def kernel_list_table(data: list[dict[str, Any]]) -> Table:
    """``kernels list``: one row per kernel (``kernels.specs.kernel_listing()``)."""
    t = Table(title="servelab kernels")
    for c in ("kernel", "what", "providers", "bench dtypes", "check/bench shapes"):
        t.add_column(c)
    for d in data:
        t.add_row(d["kernel"], d["description"], ", ".join(d["providers"]), ", ".join(d["bench_dtypes"]),
                  f"{d['check_shapes']}/{d['bench_shapes']}")
    return t


def check_json(out: Sequence[Any], elapsed: float) -> dict[str, Any]:
    """``kernels check --json``: pass/fail counts and every check (``harness.CheckResult``)."""
    failed = [r for r in out if not r.passed]
    return {"passed": not failed, "checks": len(out), "failed": len(failed), "elapsed_s": elapsed, "results": [
        {"kernel": r.kernel, "provider": r.provider, "dtype": r.dtype, "shape": r.shape,
         "backend": r.backend, "passed": r.passed, "max_abs_err": r.max_abs_err,
         "excess": r.excess, "nonfinite": r.nonfinite, "message": r.message} for r in out]}


def check_table(out: Sequence[Any], device: str, elapsed: float) -> Table:
    """``kernels check``: one row per (kernel, provider, dtype) with its worst error."""
    t = Table(title=f"kernel checks ({out[0].backend if out else device}), {elapsed:.1f} s")
    for c in ("kernel", "provider", "dtype", "shapes", "max abs err", "tolerance used", "result"):
        t.add_column(c)
    groups: dict[tuple, list] = {}
    for r in out:
        groups.setdefault((r.kernel, r.provider, r.dtype), []).append(r)
    for (n, p, dt), rs in groups.items():
        ok = all(r.passed for r in rs)
        t.add_row(n, p, dt, str(len(rs)), f"{max(r.max_abs_err for r in rs):.3g}",
                  f"{max(r.excess for r in rs):.0%}", "[green]pass[/green]" if ok else "[red]FAIL[/red]")
    return t


def results_json(rows: Sequence[Any]) -> dict[str, Any]:
    """``kernels report --json``: row count, measured peaks and the per-shape summaries."""
    bw, mm = render.peaks_of(rows)
    return {"rows": len(rows), "peak_copy_gb_per_s": bw, "peak_matmul_tflop_per_s": mm,
            "summaries": [{**s.__dict__} for s in render.summarize(rows)]}


def print_results(file: Path, rows: Sequence[Any], con: Console) -> None:
    """``kernels report``: the measured peaks, one table per kernel, the correctness rows."""
    sums = render.summarize(rows)
    bw, mm = render.peaks_of(rows)
    con.print(f"{file}: {len(rows)} rows · measured peaks: copy "
              f"{'%.0f GB/s' % bw if bw else 'not measured'}, matmul {'%.0f TFLOP/s' % mm if mm else 'not measured'}")
    if not sums:
        con.print("no timing rows: GPU numbers not measured in this file")
    for k in dict.fromkeys(s.kernel for s in sums):
        t = Table(title=k)
        for c in render.TABLE_COLUMNS:
            t.add_column(c, justify="left" if c in ("kernel", "provider", "dtype", "shape") else "right")
        for r in render.table_rows([s for s in sums if s.kernel == k]):
            t.add_row(*[v if isinstance(v, str) else ("–" if v != v else f"{v:,.4g}") for v in r])
        con.print(t)
    checks = render.checks_of(rows)
    if checks:
        bad = [c for c in checks if not c.config.get("passed")]
        con.print(f"correctness rows: {len(checks)}, failed: {len(bad)}")
