"""`servelab bench`: measure an OpenAI-compatible endpoint (flags follow `vllm bench serve`).

`servelab bench import vllm FILE` / `import guidellm FILE` convert other tools' results.

vLLM spellings are accepted as aliases: ``--dataset-name`` (``--dataset-format``;
``custom`` = jsonl), ``--dataset-path`` (``--dataset``), ``--goodput`` with several
space-separated terms (``--goodput ttft:200 tpot:20``), ``--save-result``
``--result-dir`` ``--result-filename`` (vLLM's result JSON, ``load.vllm_result``),
``--save-detailed`` and ``--label``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .._files import check_output_dir
from .._scrub import scrub_text
from ..errors import ConfigError, ServerError
from ..report.bench_text import bench_table, failure_table, sweep_table
from ._outputs import default_run_dir

_err = Console(stderr=True)

class _BenchGroup(typer.core.TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from ..load.bench_args import expand_multi_value_flags
        return super().parse_args(ctx, expand_multi_value_flags(list(args)))


bench_app = typer.Typer(help="Measure an OpenAI-compatible endpoint under load; import other tools' results.",
                        invoke_without_command=True, no_args_is_help=False, cls=_BenchGroup)


@bench_app.callback()
def bench(
    ctx: typer.Context,
    base_url: str = typer.Option("http://127.0.0.1:8000", help="Server root, e.g. http://127.0.0.1:8000"),
    endpoint: str = typer.Option("/v1/completions", help="/v1/completions or /v1/chat/completions"),
    model: str = typer.Option("", help="Model name sent in requests (default: first of /v1/models)"),
    api_key: Optional[str] = typer.Option(None, help="Bearer key (default: $OPENAI_API_KEY); never stored",
                                          show_default=False),
    header: list[str] = typer.Option([], help="Extra header 'Name: value' (repeatable)"),
    extra_body: str = typer.Option("", help="JSON object merged into every request body"),
    ignore_eos: bool = typer.Option(False, help="Ask the server to ignore EOS (fixed output lengths)"),
    min_tokens: Optional[int] = typer.Option(None, help="min_tokens request field"),
    request_rate: str = typer.Option("inf", help="Req/s; a list sweeps: 1,2,4,inf"),
    burstiness: float = typer.Option(1.0, help="Gamma shape of inter-arrival times (1 = Poisson)"),
    arrival: str = typer.Option("poisson", help="constant | poisson | gamma"),
    max_concurrency: Optional[int] = typer.Option(None, help="Cap on requests in flight"),
    num_prompts: Optional[int] = typer.Option(None, help="Requests per rate (default 1000 without --duration)"),
    duration: Optional[float] = typer.Option(None, help="Offered-load window in seconds"),
    random_input_len: int = typer.Option(1024),
    random_output_len: int = typer.Option(128),
    random_range_ratio: float = typer.Option(0.0),
    random_prefix_len: int = typer.Option(0, help="Shared prefix length (words ≈ tokens)"),
    num_prefix_groups: int = typer.Option(1),
    workload: Optional[str] = typer.Option(None, help="Workload preset from the catalog"),
    dataset: Optional[Path] = typer.Option(None, "--dataset", "--dataset-path",
                                           help="Prompts file (JSONL or ShareGPT JSON)"),
    dataset_format: str = typer.Option("random", "--dataset-format", "--dataset-name",
                                       help="random | jsonl (vLLM: custom) | sharegpt"),
    trace: Optional[Path] = typer.Option(None, help="JSONL trace with timestamps to replay"),
    percentile_metrics: str = typer.Option("ttft,tpot,itl", help="Shown in the table: ttft,tpot,itl,e2el"),
    metric_percentiles: str = typer.Option("50,90,95,99"),
    goodput: list[str] = typer.Option([], help="SLO per request, vLLM form: --goodput ttft:MS tpot:MS e2el:MS"),
    save_result: bool = typer.Option(False, "--save-result", help="Also write vLLM's result JSON "
                                     "(`vllm bench serve --save-result` schema, per-request lists included)"),
    save_detailed: bool = typer.Option(False, "--save-detailed", help="Accepted for vLLM compatibility: the "
                                       "per-request lists are always written"),
    result_dir: Optional[Path] = typer.Option(None, "--result-dir", help="Folder of the vLLM result JSON "
                                              "(default: the run folder)"),
    result_filename: Optional[str] = typer.Option(None, "--result-filename", help="Its file name (default: "
                                                  "vLLM's LABEL-RATEqps-MODEL-DATE.json)"),
    sweep: bool = typer.Option(False, "--sweep", help="Find the highest rate meeting --slo: synchronous, "
                               "throughput, then constant rates between them (guidellm's sweep), stopping "
                               "where the SLO breaks, then bisecting; writes sweep.json and sweep.html"),
    sweep_rates: int = typer.Option(8, "--sweep-rates", min=1, help="Constant rates between the sweep's ends"),
    sweep_refine: int = typer.Option(2, "--sweep-refine", min=0,
                                     help="Bisection steps between the last rate meeting the SLO and the first "
                                          "breaking it"),
    slo: Optional[str] = typer.Option(None, "--slo", help="SLO of the sweep, e.g. ttft_p95=2s,tpot_p95=50ms"),
    result_label: Optional[str] = typer.Option(None, "--label", help="Label in the vLLM result and its file name "
                                        "(default: the endpoint type, openai or openai-chat)"),
    seed: int = typer.Option(0),
    scrape_interval: float = typer.Option(1.0, help="Seconds between /metrics scrapes (0: off)"),
    metrics_url: Optional[str] = typer.Option(None, help="Default: BASE_URL/metrics"),
    workers: int = typer.Option(1, help="Dispatch processes"),
    timeout: float = typer.Option(600.0, help="Per-request timeout (s)"),
    http_client: str = typer.Option("raw", help="raw (lean asyncio transport) | aiohttp"),
    drain_timeout: float = typer.Option(5.0, help="After Ctrl-C or SIGTERM, wait this long for in-flight requests"),
    ready_timeout: float = typer.Option(10.0, help="Before the load, wait up to this long (s) for the server "
                                                  "to answer GET /v1/models; 0: no check"),
    max_failure_rate: float = typer.Option(0.0, help="Exit 1 when the share of failed, timed-out or rejected "
                                                     "requests exceeds this (0..1)"),
    out: Optional[Path] = typer.Option(None, help="Run directory (records.jsonl, summary.json, ...); "
                                       "default runs/bench-<UTC time>"),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout"),
) -> None:
    """Measure an endpoint: streamed requests on a schedule, one record per request."""
    if ctx.invoked_subcommand is not None:
        return
    from ..load.bench import run_bench
    from ..load.bench_args import bench_spec, failure_over, rate_tag, shown_metrics
    from ..load.preflight import discover_model, preflight
    from ..load.vllm_result import save_vllm_result

    try:
        spec, rates = bench_spec(
            base_url=base_url, endpoint=endpoint, model=model, api_key=api_key, header=header,
            extra_body=extra_body, ignore_eos=ignore_eos, min_tokens=min_tokens, request_rate=request_rate,
            timeout=timeout, http_client=http_client, ready_timeout=ready_timeout,
            max_failure_rate=max_failure_rate, metrics_url=metrics_url, metric_percentiles=metric_percentiles,
            num_prompts=num_prompts, duration=duration, dataset=dataset, trace=trace, goodput=goodput,
            scrape_interval=scrape_interval, drain_timeout=drain_timeout,
            on_note=lambda n: _err.print(f"[yellow]note:[/yellow] {escape(n)}"),
            burstiness=burstiness, arrival=arrival, max_concurrency=max_concurrency,
            random_input_len=random_input_len, random_output_len=random_output_len,
            random_range_ratio=random_range_ratio, random_prefix_len=random_prefix_len,
            num_prefix_groups=num_prefix_groups, workload=workload, dataset_format=dataset_format, seed=seed,
            workers=workers)
        ep = spec.endpoint
        shown = shown_metrics(percentile_metrics)
        if out is not None:
            check_output_dir(out, what="--out folder")
    except (ConfigError, ValueError) as e:
        _err.print(f"[red]error:[/red] {escape(scrub_text(str(e)))}")
        raise typer.Exit(2)
    if slo and not sweep:
        _err.print("[red]error:[/red] --slo sets the SLO of --sweep; for one run, give per-request targets "
                   "with --goodput ttft:MS tpot:MS")
        raise typer.Exit(2)
    if ready_timeout > 0:
        try:
            ready = preflight(ep.root_url, ep.http_headers(), timeout_s=ready_timeout, known=ep.secrets())
        except ServerError as e:
            _err.print(f"[red]error:[/red] {escape(str(e))}")
            raise typer.Exit(1)
        if not model and ready.models:
            ep = replace(ep, model=ready.models[0])
            spec = replace(spec, endpoint=ep)
    elif not model:
        ep = replace(ep, model=discover_model(ep.root_url, ep.http_headers()))
        spec = replace(spec, endpoint=ep)
    if sweep and request_rate != "inf":
        _err.print("[yellow]note:[/yellow] --sweep chooses its own rates; --request-rate is ignored")
    if sweep:
        _sweep(spec, out=out, slo=slo, n_rates=sweep_rates, refine=sweep_refine, json_out=json_out, shown=shown,
               vllm_result=(result_dir, result_filename, result_label) if save_result else None)
        return
    out = out or default_run_dir("bench")
    summaries = []
    failed_over: list[str] = []
    write_errors: list[str] = []
    for rate in rates:
        rate_dir = None
        if out is not None:
            rate_dir = out if len(rates) == 1 else out / f"rate_{rate_tag(rate)}"
        try:
            from ..load.bench import make_prompts
            prompts = make_prompts(spec, rate)
        except (ConfigError, ValueError, NotImplementedError, OSError) as e:
            _err.print(f"[red]error:[/red] {escape(scrub_text(str(e)))}")
            raise typer.Exit(2)
        label = f"rate {rate_tag(rate)} req/s"
        counts = {"ok": 0, "bad": 0}
        with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("ok {task.fields[ok]} · not ok {task.fields[bad]}"), TimeElapsedColumn(),
                      console=_err, transient=json_out, disable=not _err.is_terminal and json_out) as prog:
            task = prog.add_task(label, total=len(prompts), ok=0, bad=0)

            def on_record(rec: Any) -> None:
                counts["ok" if rec.status == "ok" else "bad"] += 1
                prog.update(task, advance=1, ok=counts["ok"], bad=counts["bad"])

            outcome = run_bench(spec, rate=rate, out_dir=rate_dir, on_record=on_record, prompts=prompts)
        s = outcome.summary
        summaries.append(s)
        if outcome.meta.notes:
            _err.print(f"[yellow]{escape(outcome.meta.notes)}[/yellow]")
        if outcome.write_error:
            write_errors.append(f"{rate_dir}: {outcome.write_error}")
        fails = s.get("failures") or {}
        if not json_out:
            Console().print(bench_table(s, f"servelab bench — {label}", shown))
            if fails.get("count"):
                Console().print(failure_table(fails, label))
            if rate_dir is not None and not outcome.write_error:
                Console().print(f"run written to {rate_dir}")
        if save_result:
            written = save_vllm_result(outcome, spec, rate, result_dir or rate_dir, result_filename, result_label,
                                       tag=f"{rate_tag(rate)}qps" if len(rates) > 1 else None)
            _err.print(f"vLLM result written to {written}")
        over = failure_over(s, label, max_failure_rate)
        if over:
            failed_over.append(over)
        if s.get("interrupted"):
            break
    if json_out:
        sys.stdout.write(json.dumps(summaries[0] if len(rates) == 1 else {"sweep": summaries}, indent=2) + "\n")
    for w in write_errors:
        _err.print(f"[red]error:[/red] run folder not fully written (marked incomplete): {escape(w)}")
    for f in failed_over:
        _err.print(f"[red]error:[/red] {escape(f)}")
    if write_errors or failed_over:
        raise typer.Exit(1)


def _sweep(spec: Any, *, out: Path | None, slo: str | None, n_rates: int, refine: int, json_out: bool,
           shown: list[str], vllm_result: tuple[Path | None, str | None, str | None] | None = None) -> None:
    """``bench --sweep`` (``load.sweep``): one run folder per point under OUT, then
    sweep.json, sweep.html and a table; with ``--save-result`` a vLLM result file per
    point (in its run folder, or ``--result-dir`` with the point's tag in the name)."""
    from ..catalog.slo import parse_slo
    from ..load.bench import make_prompts, run_bench
    from ..load.sweep import point_spec, point_summary, point_tag, run_sweep
    from ..load.vllm_result import save_vllm_result
    from ..report.sweep import write_sweep

    try:
        slo_obj = parse_slo(slo) if slo else None
    except ConfigError as e:
        _err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2)
    out = out or default_run_dir("bench-sweep")
    seq = iter(range(1, 10_000))

    def run(kind: str, rate: float) -> dict[str, Any]:
        sp = point_spec(spec, kind, rate)
        tag = point_tag(kind, rate)
        d = out / f"{next(seq):02d}-{tag}"
        prompts = make_prompts(sp, sp.request_rate)
        with Progress(TextColumn(f"[bold]sweep {tag}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=_err, transient=True, disable=not _err.is_terminal) as prog:
            task = prog.add_task(tag, total=len(prompts))
            o = run_bench(sp, rate=sp.request_rate, out_dir=d, prompts=prompts,
                          on_record=lambda _r: prog.update(task, advance=1))
        if vllm_result is not None:
            rdir, rname, rlabel = vllm_result
            save_vllm_result(o, sp, sp.request_rate, rdir or d, rname, rlabel, tag=d.name)
        return point_summary(o, slo_obj, spec.percentiles)

    def show(p: Any) -> None:
        if not json_out:
            verdict = "" if p.met is None else (" · SLO met" if p.met else " · [red]SLO not met[/red]")
            _err.print(f"{p.kind}: {p.achieved_rps:.4g} req/s achieved{verdict}")

    try:
        res = run_sweep(run, n_rates=n_rates, refine=refine, on_point=show)
    except (ConfigError, ValueError, OSError) as e:
        _err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2)
    doc = {"slo": slo, **res.to_dict()}
    write_sweep(doc, out, slo=slo, slo_obj=slo_obj)
    if json_out:
        sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        return
    con = Console()
    con.print(sweep_table(doc, slo))
    if res.max_rate_met_rps is not None:
        con.print(f"highest rate meeting the SLO: [bold]{res.max_rate_met_rps:.4g} req/s[/bold]"
                  + (f" (broken at {res.first_rate_broken_rps:.4g} req/s)" if res.first_rate_broken_rps else ""))
    con.print(f"sweep written to {out} (sweep.json, sweep.html, one run folder per point)")


@bench_app.command("import")
def import_cmd(
    tool: str = typer.Argument(..., help="vllm | guidellm"),
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Result JSON of that tool"),
    out: Optional[Path] = typer.Option(None, help="Run directory to write"),
    metric_percentiles: str = typer.Option("50,90,95,99"),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout"),
) -> None:
    """Convert `vllm bench serve` (--save-result [--save-detailed]) or guidellm JSON into records."""
    from ..load.importers import import_result, summarize_imported

    try:
        if out is not None:
            check_output_dir(out, what="--out folder")
        runs = import_result(tool, file)
    except (ConfigError, ValueError, KeyError) as e:
        _err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2)
    pcts = tuple(float(x) for x in metric_percentiles.split(",") if x.strip())
    summaries = summarize_imported(runs, out=out, percentiles=pcts)
    for i, s in enumerate(summaries):
        if not json_out:
            Console().print(bench_table(s, f"imported {tool}: {file.name}" + (f" #{i}" if len(runs) > 1 else ""),
                                   ["ttft", "tpot", "itl", "e2e"]))
    if json_out:
        sys.stdout.write(json.dumps(summaries[0] if len(summaries) == 1 else {"benchmarks": summaries},
                                    indent=2) + "\n")


@bench_app.command("recover")
def recover_cmd(
    run_dir: Path = typer.Argument(..., help="Run folder of a bench run that was killed"),
) -> None:
    """Account for the requests a killed run had in flight: each gets a 'cancelled' record
    (from the dispatch journal), and the summary is recomputed; the run stays incomplete."""
    from ..load.results import recover_run

    if not run_dir.is_dir():
        _err.print(f"[red]error:[/red] {str(run_dir)!r} is not a run folder")
        raise typer.Exit(2)
    try:
        added = recover_run(run_dir)
    except FileNotFoundError as e:
        _err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2)
    Console().print(f"{run_dir}: {added} in-flight request(s) recorded as cancelled")


def register(app: typer.Typer) -> None:
    """Add `bench` (and `bench import`) to app."""
    app.add_typer(bench_app, name="bench")
