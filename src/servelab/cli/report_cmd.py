"""``servelab report RUN`` and ``servelab compare A B [C …]``.

An input is detected by what it is: a run folder (``meta.json`` + records), a
folder of run folders (a rate sweep: one run each, in name order), a records file (``.jsonl``/``.ndjson``/``.parquet``), or a result JSON of
``vllm bench serve --save-result --save-detailed`` (per-request lists ``ttfts``,
``itls`` …) or guidellm (a ``benchmarks`` list); the last two go through
``servelab.load.importers``. A guidellm file with several benchmarks yields one run
per benchmark.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, NoReturn, Optional

import typer
from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table

from ..errors import ConfigError
from ..records import RequestRecord, RunMeta

__all__ = ["register", "load_inputs", "LoadedRun", "VALID_INPUTS"]

VALID_INPUTS = ("a run folder (meta.json + records.jsonl/parquet), a records file (.jsonl, .ndjson, "
                ".parquet), or a `vllm bench serve --save-result --save-detailed` / guidellm result .json")
_err = Console(stderr=True)


@dataclass(frozen=True, kw_only=True)
class LoadedRun:
    """An input read back: records, metadata when known, stored summary/time series."""
    path: Path
    label: str
    records: list[RequestRecord]
    meta: RunMeta | None = None
    summary: dict[str, Any] | None = None
    timeseries: dict[str, Any] | None = None
    fmt: str = ""                          # run-folder | jsonl | json-list | parquet | vllm | guidellm
    skipped_lines: int = 0                 # unreadable JSONL lines (a crash mid-write), skipped

    @property
    def duration_s(self) -> float | None:
        return self.meta.duration_s if self.meta is not None else None


def _meta_label(meta: RunMeta | None, fallback: str) -> str:
    return f"{meta.kind} {meta.run_id}" if meta is not None and meta.run_id else fallback


def _import(tool: str, p: Path, data: dict[str, Any]) -> list[LoadedRun]:
    try:
        importers = importlib.import_module("servelab.load.importers")
    except ImportError as e:   # the load package is optional to this command
        raise ConfigError(f"{p} looks like a {tool} result, but reading it needs "
                          f"servelab.load.importers, which cannot be imported here ({e})") from None
    runs = [importers.import_vllm(data, source=str(p))] if tool == "vllm" \
        else importers.import_guidellm(data, source=str(p))
    many = len(runs) > 1
    return [LoadedRun(path=p, label=p.stem + (f"#{i}" if many else ""), records=list(recs), meta=meta, fmt=tool)
            for i, (meta, recs) in enumerate(runs)]


def _unified_timeseries(ts: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored ``timeseries.json`` in the current format (``metrics.run_timeseries``);
    folders written before it (the simulator's gauges, or raw ``/metrics`` samples at
    the top level) get their ``server`` section rebuilt, the request part is
    recomputed from the records by the report."""
    from ..metrics import TIMESERIES_FORMAT
    if not ts or ts.get("format") == TIMESERIES_FORMAT:
        return ts
    server = None
    if isinstance(ts.get("samples"), list):
        from ..load.scrape import server_series
        server = server_series(ts)
    elif isinstance(ts.get("kv_usage"), list) and "bucket_s" not in ts:
        from ..sim.series import server_section_of
        server = server_section_of(ts)
    doc: dict[str, Any] = {"format": TIMESERIES_FORMAT}
    if "bucket_s" in ts:
        doc["requests"] = ts
    if server is not None:
        doc["server"] = server
    return doc


def load_inputs(path: str | Path) -> list[LoadedRun]:
    """Read one input (module docstring); ``ConfigError`` naming the valid inputs
    when the path is missing or its format is not one of them."""
    from .. import recordio
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"no such file or folder {str(p)!r}; expected {VALID_INPUTS}")
    if p.is_file() and p.name in ("meta.json", "summary.json", "timeseries.json") \
            and (p.parent / "meta.json").exists():
        p = p.parent
    if p.is_dir():
        subruns = sorted(c for c in p.iterdir() if c.is_dir() and (c / "meta.json").exists())
        if not (p / "meta.json").exists() and subruns:      # a sweep: bench --rate a,b,c --out DIR
            return [lr for c in subruns for lr in load_inputs(c)]
        if not (p / "meta.json").exists():
            raise ConfigError(f"{str(p)!r} is a folder without meta.json, not a run folder; expected {VALID_INPUTS}")
        run = recordio.read_run(p)
        return [LoadedRun(path=p, label=_meta_label(run.meta, p.name), records=list(run.records), meta=run.meta,
                          summary=run.summary or None, timeseries=_unified_timeseries(run.timeseries),
                          fmt="run-folder",
                          skipped_lines=run.skipped_lines)]
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        return [LoadedRun(path=p, label=p.stem, records=recordio.read_records_parquet(p), fmt="parquet")]
    if suffix in (".jsonl", ".ndjson"):
        recs = recordio.read_records_jsonl(p)
        if recs or not recs.skipped_lines:
            return [LoadedRun(path=p, label=p.stem, records=list(recs), fmt="jsonl",
                              skipped_lines=recs.skipped_lines)]
    if suffix == ".json":
        text = p.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("benchmarks"), list):
            return _import("guidellm", p, data)
        if isinstance(data, dict) and ("ttfts" in data or ("input_lens" in data and "duration" in data)):
            return _import("vllm", p, data)
        if isinstance(data, list) and all(isinstance(d, dict) for d in data):
            try:
                return [LoadedRun(path=p, label=p.stem, records=[RequestRecord.from_dict(d) for d in data],
                                  fmt="json-list")]
            except (TypeError, ValueError):
                pass
        if data is None:   # several JSON documents: records one per line
            try:
                return [LoadedRun(path=p, label=p.stem, fmt="jsonl",
                                  records=list(recordio.read_records_jsonl(p, strict=True)))]
            except ValueError:
                pass
    raise ConfigError(f"unknown input format {str(p)!r}; expected {VALID_INPUTS}")


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
    from ..metrics import summarize
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
        stored = lr.summary if lr.summary and "ttft_s" in lr.summary else None
        summary = stored or summarize(lr.records, duration_s=lr.duration_s)
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


def _num(x: float, scale: float = 1.0) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    v = x * scale
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _with_ci(v: float, ci: tuple[float, float], scale: float) -> str:
    return f"{_num(v, scale)}\n[{_num(ci[0], scale)}, {_num(ci[1], scale)}]"


def _compare_tables(cmp: Any) -> Group:
    """One small table per metric: value [CI], Δ [CI], ratio [CI], relative error, overlap."""
    from ..units import MS
    parts: list[Any] = [f"[bold]Comparison vs baseline {cmp.baseline}[/bold] — {cmp.confidence * 100:g}% "
                        f"percentile-bootstrap CIs, {cmp.n_resamples} resamples per run; Δ and ratio CIs "
                        "resample each run independently"]
    for m in cmp.metrics:
        scale, unit = (1 / MS, "ms") if m.unit == "s" else (1.0, m.unit)
        t = Table(title=f"{m.metric} ({unit})", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for i, h in enumerate(("run", "value [CI]", "Δ vs base [CI]", "ratio [CI]", "rel.err", "overlap")):
            t.add_column(h, justify="left" if i == 0 else "right", no_wrap=i > 0)
        for e in m.runs:
            if e.is_baseline:
                t.add_row(f"{e.label} (baseline)", _with_ci(e.value, e.ci, scale), "", "", "", "")
                continue
            rel = f"{e.rel_error:+.1%}" if math.isfinite(e.rel_error) else "–"
            ov = {True: "yes", False: "[bold red]NO[/bold red]", None: "–"}[e.overlap]
            t.add_row(e.label, _with_ci(e.value, e.ci, scale), _with_ci(e.diff, e.diff_ci, scale),
                      _with_ci(e.ratio, e.ratio_ci, 1.0), rel, ov)
        parts.append(t)
    return Group(*parts)


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
    from ..report.compare import CompareRun, compare_page, compare_runs
    from .._files import check_output_path
    try:
        if html is not None:
            check_output_path(html, what="--html")          # before any work
        loaded: list[tuple[str, LoadedRun]] = [(arg, lr) for arg in runs for lr in load_inputs(arg)]
        if len(loaded) < 2:
            raise ConfigError(f"compare needs at least two runs, got {len(loaded)} from {runs}")
        labels = [lr.label for _, lr in loaded]
        if label:
            if len(label) != len(loaded):
                raise ConfigError(f"--label given {len(label)} times for {len(loaded)} runs; give one per run")
            labels = list(label)
        seen: dict[str, int] = {}
        for i, lab in enumerate(labels):          # keep labels unique
            seen[lab] = seen.get(lab, 0) + 1
            if seen[lab] > 1:
                labels[i] = f"{lab} #{seen[lab]}"
        b = 0
        if baseline is not None:
            hits = [i for i, (arg, _) in enumerate(loaded) if baseline in (arg, labels[i])]
            if not hits and baseline.isdigit() and 1 <= int(baseline) <= len(loaded):
                hits = [int(baseline) - 1]
            if not hits:
                raise ConfigError(f"unknown baseline {baseline!r}; give one of the inputs, a label "
                                  f"({', '.join(labels)}) or an index 1..{len(loaded)}")
            b = hits[0]
        names = [m.strip() for m in metrics.split(",") if m.strip()]
        if not names:
            raise ConfigError("--metrics is empty; e.g. ttft_p95,throughput_tokens_per_s")
        crs = [CompareRun(label=labels[i], records=lr.records, duration_s=lr.duration_s, meta=lr.meta,
                          source=str(lr.path)) for i, (_, lr) in enumerate(loaded)]
        cmp = compare_runs(crs, baseline=b, metrics=names, confidence=confidence, n_resamples=resamples,
                           seed=seed)
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
    con.print(_compare_tables(cmp))
    flagged = [(m.metric, e.label) for m in cmp.metrics for e in m.runs if e.overlap is False]
    if flagged:
        con.print("[bold]Intervals do not overlap[/bold] (a difference resampling does not explain): "
                  + "; ".join(f"{m} — {lab}" for m, lab in flagged))


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``compare`` to the app."""
    app.command("report")(report_cmd)
    app.command("compare")(compare_cmd)
