"""``servelab report RUN`` and ``servelab compare A B [C …]`` (inputs: ``servelab.report.inputs``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, List, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import ConfigError
from ..report.compare_text import compare_tables
from ..report.inputs import LoadedRun, compare_loaded, load_inputs

__all__ = ["register"]

_err = Console(stderr=True)


def _fail(e: Exception) -> NoReturn:
    _err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _warn_skipped(loaded: list[LoadedRun]) -> None:
    for lr in loaded:
        if lr.skipped_lines:
            _err.print(f"[yellow]warning:[/yellow] {escape(str(lr.path))}: {lr.skipped_lines} unreadable "
                       "record line(s) skipped (e.g. a truncated last line after a crash)", soft_wrap=True)


def report_cmd(
    run: str = typer.Argument(..., help="Run folder, records .jsonl/.parquet, or vLLM/guidellm result JSON."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML page here."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Summarize one run (simulated, measured or imported): table, JSON or HTML page."""
    from .._files import check_output_path
    from ..report import run_page, summary_table, write_html
    try:
        if html is not None:
            check_output_path(html, what="--html")          # before any work
        loaded = load_inputs(run)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        _fail(e)
    _warn_skipped(loaded)
    out = []
    for lr in loaded:
        summary = lr.run_summary()
        out.append((lr, summary))
        if html is not None:
            target = html if len(loaded) == 1 else html.with_name(f"{html.stem}-{len(out)}{html.suffix}")
            write_html(run_page(f"Run {lr.label}", summary, lr.records, meta=lr.meta,
                                timeseries=lr.timeseries), target)
            if not json_out:
                _err.print(f"wrote {target}")
    if json_out:
        doc: Any = out[0][1] if len(out) == 1 else {"runs": [{"label": lr.label, "summary": s} for lr, s in out]}
        sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n")
        return
    con = Console()
    for lr, s in out:
        con.print(summary_table(s, f"{lr.label} ({lr.fmt}, {len(lr.records):,} records)"))


def compare_cmd(
    runs: List[str] = typer.Argument(..., help="Two or more inputs: run folders, records files, "
                                               "vLLM/guidellm result JSON."),
    baseline: Optional[str] = typer.Option(None, "--baseline", "-b",
                                           help="Baseline: an input as given, a label, or a 1-based index "
                                                "(default: the first)."),
    metrics: str = typer.Option(",".join(("ttft_p50", "ttft_p95", "tpot_p95", "e2e_p95",
                                          "throughput_tokens_per_s", "delivery")), "--metrics",
                                help="Comma-separated metric names (see docs/metrics.md)."),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence level of the intervals, in (0, 1)."),
    resamples: int = typer.Option(1000, "--resamples", min=2, help="Bootstrap resamples per run."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first run's resamples (run i: seed + i)."),
    label: Optional[List[str]] = typer.Option(None, "--label", "-l",
                                              help="Run label, once per run in order (default: kind + run id, "
                                                   "or the file/folder name)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML page here."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Lay runs side by side: each metric with its CI, difference and ratio vs a baseline."""
    from ..report import write_html
    from ..report.compare import compare_page
    from .._files import check_output_path
    try:
        if html is not None:
            check_output_path(html, what="--html")          # before any work
        loaded: list[tuple[str, LoadedRun]] = [(arg, lr) for arg in runs for lr in load_inputs(arg)]
        cmp = compare_loaded(loaded, labels=label, baseline=baseline, metrics=metrics, confidence=confidence,
                             resamples=resamples, seed=seed, inputs=runs)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        _fail(e)
    _warn_skipped([lr for _, lr in loaded])
    if html is not None:
        write_html(compare_page(cmp), html)
        if not json_out:
            _err.print(f"wrote {html}")
    if json_out:
        sys.stdout.write(json.dumps(cmp.to_dict(), indent=2, allow_nan=False) + "\n")
        return
    for w in cmp.warnings:
        _err.print(f"[yellow]warning:[/yellow] {escape(w)} — compare runs of the same requests "
                   "(same workload, rate, seed and count) to read differences as model error", soft_wrap=True)
    con = Console()
    con.print(compare_tables(cmp))
    flagged = [(m.metric, e.label) for m in cmp.metrics for e in m.runs if e.overlap is False]
    if flagged:
        con.print("[bold]Intervals do not overlap[/bold] (a difference resampling does not explain): "
                  + "; ".join(f"{m} — {lab}" for m, lab in flagged))


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``compare`` to the app."""
    app.command("report")(report_cmd)
    app.command("compare")(compare_cmd)
