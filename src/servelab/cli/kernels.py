"""`servelab kernels`: the GPU kernel lab (check on CPU, run on a GPU, report results).

Only torch-free modules are imported here at load time, so ``--help`` and ``report``
work with the base install; ``check`` and ``run`` need the ``gpu`` extra and exit 2
with an install hint without it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.console import Console

from ..errors import ServelabError
from ..kernels import KERNEL_NAMES
from ..kernels.specs import check_jobs, kernel_listing, kernel_names
from ..kernels._deps import prepare_device, require_gpu_extra, use_interpreter
from ..kernels.results import DEFAULT_RESULTS, read_rows

__all__ = ["register", "kernels_app"]

kernels_app = typer.Typer(
    name="kernels", no_args_is_help=True,
    help="GPU kernel lab: Triton RMSNorm, matmul, paged decode attention and a decode step "
         "vs PyTorch/cuBLAS/SDPA, with correctness checks, latency percentiles, GB/s, "
         "TFLOP/s and a roofline against measured peaks.")

_KERNEL_HELP = f"one of {', '.join(KERNEL_NAMES)} (repeatable; default: all)"
_out = Console()
_err = Console(stderr=True)


def _kernels(names: Optional[list[str]]) -> list[str]:
    try:
        return kernel_names(names)
    except ServelabError as exc:
        raise _fail(str(exc)) from None


def _fail(msg: str, code: int = 2) -> typer.Exit:
    _err.print(f"[red]error:[/red] {escape(str(msg))}")
    return typer.Exit(code)


@kernels_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """List the lab's kernels, their providers, dtypes and shapes."""
    from ..report.kernels_text import kernel_list_table
    data = kernel_listing()
    if as_json:
        _out.print_json(json.dumps(data))
        return
    _out.print(kernel_list_table(data))


@kernels_app.command("check")
def check_cmd(
    kernel: Optional[list[str]] = typer.Option(None, "--kernel", "-k", help=_KERNEL_HELP),
    device: str = typer.Option("cpu", help="cpu: Triton interpreter (CI); cuda: compiled on the GPU"),
    trials: int = typer.Option(2, min=1, max=20, help="fresh input draws per (provider, dtype, shape)"),
    results: Optional[Path] = typer.Option(None, help="also append max_abs_err rows to this JSONL file"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Correctness of every kernel and baseline at small irregular shapes (exit 1 on a failure)."""
    try:
        prepare_device(device)
    except ServelabError as exc:
        raise _fail(str(exc)) from None
    names = _kernels(kernel)
    from ..kernels._deps import cuda_available
    if device == "cuda" and not cuda_available():
        raise _fail("--device cuda needs a CUDA GPU; none is visible (use --device cpu)")
    from ..kernels.harness import check

    jobs = check_jobs(names, device)
    out, t0 = [], time.perf_counter()
    from rich.progress import Progress

    with Progress(console=_err, transient=True, disable=as_json) as bar:
        task = bar.add_task("checking", total=len(jobs))
        for n, p, dt, i, sh in jobs:
            bar.update(task, description=f"{n}/{p}/{dt}")
            out.append(check(n, p, sh, dt, device=device, seed=i, trials=trials))
            bar.advance(task)
    elapsed = time.perf_counter() - t0
    if results is not None:
        from datetime import datetime, timezone

        from ..kernels.env import environment
        from ..kernels.results import append_rows, check_rows
        env, ts = environment(), datetime.now(timezone.utc).isoformat(timespec="seconds")
        append_rows(results, check_rows(out, env, ts))
    failed = [r for r in out if not r.passed]
    from ..report.kernels_text import check_json, check_table
    if as_json:
        _out.print_json(json.dumps(check_json(out, elapsed)))
    else:
        _out.print(check_table(out, device, elapsed))
        for r in failed:
            _err.print(f"[red]FAIL[/red] {r.kernel}/{r.provider}/{r.dtype} {r.shape}: {escape(str(r.message))}")
    if failed:
        raise typer.Exit(1)


@kernels_app.command("run")
def run_cmd(
    kernel: Optional[list[str]] = typer.Option(None, "--kernel", "-k", help=_KERNEL_HELP),
    quick: bool = typer.Option(False, help="a few shapes per kernel, first dtype only"),
    ncu: bool = typer.Option(False, help="also record DRAM throughput % via Nsight Compute (when ncu exists)"),
    results: Path = typer.Option(DEFAULT_RESULTS, help="JSONL file the rows are appended to"),
    reps: int = typer.Option(100, min=5, help="timed repetitions per measurement"),
    warmup: int = typer.Option(10, min=1),
    l2: str = typer.Option("flush", help="flush: cold L2 before every call (untimed); warm: no flush"),
    graph: bool = typer.Option(False, help="time every kernel as a CUDA-graph replay (decode_step always is)"),
) -> None:
    """Measure on a CUDA GPU: peaks, correctness, then timing rows appended to RESULTS."""
    from ..kernels.timing import L2_MODES

    if l2 not in L2_MODES:
        raise _fail(f"unknown --l2 {l2!r}; known: {', '.join(L2_MODES)}")
    try:
        require_gpu_extra()
        use_interpreter(False)
    except ServelabError as exc:
        raise _fail(str(exc)) from None
    names = _kernels(kernel)
    from ..kernels._deps import cuda_available
    if not cuda_available():
        raise _fail("`servelab kernels run` needs a CUDA GPU; none is visible "
                    "(`servelab kernels check` runs the CPU interpreter checks)")
    from ..kernels.runner import RunOptions, run_lab

    opts = RunOptions(results=results, kernels=tuple(names), grid="quick" if quick else "bench", reps=reps,
                      warmup=warmup, l2=l2, graph=graph, ncu=ncu)
    with _err.status("starting") as status:
        summary = run_lab(opts, on_event=lambda m: status.update(m))
    _out.print(f"run {summary.run_id}: {summary.rows} rows appended to {results}")
    for s in summary.skipped:
        _err.print(f"[yellow]skipped[/yellow] {escape(str(s))}")
    for f in summary.failed_checks:
        _err.print(f"[red]FAIL[/red] {escape(str(f))}")
    if summary.failed_checks:
        raise typer.Exit(1)


@kernels_app.command("report")
def report_cmd(
    file: Path = typer.Argument(DEFAULT_RESULTS, help="results JSONL file"),
    html: Optional[Path] = typer.Option(None, "--html", help="write a self-contained HTML report here"),
    png: Optional[Path] = typer.Option(None, "--png", help="write the roofline as PNG (needs matplotlib)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable summary"),
) -> None:
    """Tables (and HTML/PNG roofline) from a results file."""
    from ..report import kernels as render
    from ..report.kernels_text import print_results, results_json

    try:
        if html is not None:
            from .._files import check_output_path
            check_output_path(html, what="--html")         # before any work
        rows = read_rows(file)
    except ServelabError as exc:
        raise _fail(str(exc)) from None
    if html is not None:
        from .._files import atomic_write_text
        atomic_write_text(html, render.html_report(rows))
    if png is not None and render.roofline_png(rows, png) is None:
        _err.print("[yellow]matplotlib is not installed: no PNG written[/yellow]")
    if as_json:
        _out.print_json(json.dumps(results_json(rows), default=str))
        return
    print_results(file, rows, _out)
    if html is not None:
        _out.print(f"HTML report: {html}")


def register(app: typer.Typer) -> None:
    """Add the ``kernels`` command group to app."""
    app.add_typer(kernels_app, name="kernels")
