"""`servelab plan`: size a serving fleet under SLOs (the 13 steps of docs/plan.md)."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import ConfigError
from ..plan import DEFAULT_RATE_RPS, EXECUTORS, plan
from ..plan.from_scenario import check_search_options, compare_recommended, plan_request
from ..report.plan_text import clean_json, print_plan
from ._scenario import ScenarioArgs, scenario_options

__all__ = ["register", "plan_command"]


# The plan's own flags (--gpus, --tp, --pp, --precisions, --kv-precisions) list the
# values of the searched fields (plan.from_scenario.SEARCHED).
_EXCLUDED_FLAGS = ("gpu", "tp", "pp", "ep", "dtype", "kv_dtype", "replicas")


@scenario_options(exclude=_EXCLUDED_FLAGS)
def plan_command(
    scn: ScenarioArgs,
    gpus: Optional[str] = typer.Option(None, help="Comma-separated GPU ids (default: the scenario's gpu if set, else every GPU in the catalog)."),
    precisions: Optional[str] = typer.Option(None, help="Weight dtypes to consider. [default: bf16,fp8]"),
    kv_precisions: Optional[str] = typer.Option(None, "--kv-precisions", help="KV-cache dtypes (default: those of --precisions that are KV dtypes, else bf16)."),
    tp: Optional[str] = typer.Option(None, "--tp", help="Tensor-parallel degrees to consider. [default: 1,2,4,8]"),
    pp: Optional[str] = typer.Option(None, "--pp", help="Pipeline-parallel degrees, or auto (1, plus 2 when the weights outgrow a node). [default: auto]"),
    headroom: float = typer.Option(1.1, help="Replica headroom factor (>= 1)."),
    spares: int = typer.Option(1, help="Spare replicas for failures (N+spares)."),
    executor: str = typer.Option("local", help=f"Where candidates run: {', '.join(EXECUTORS)}."),
    jobs: Optional[int] = typer.Option(None, help="Parallel workers (default: CPUs available)."),
    max_requests: int = typer.Option(3000, "--max-requests", help="Most requests per capacity probe."),
    fleet_duration: Optional[float] = typer.Option(None, "--fleet-duration", help="Seconds of arrivals in fleet simulations (the scenario's duration_s). [default: 120]"),
    heterogeneous: bool = typer.Option(True, "--hetero/--no-hetero", help="Step 12: two pools routed by length."),
    sensitivity: bool = typer.Option(True, "--sensitivity/--no-sensitivity", help="Step 13 sensitivity runs."),
    report: Optional[str] = typer.Option(None, help="Write a self-contained HTML report here."),
    export_scenario: Optional[str] = typer.Option(
        None, "--export-scenario", help="Write the recommended fleet as a scenario file (YAML, or JSON for .json); "
                                        "`servelab simulate --scenario FILE` re-runs its fleet simulation exactly."),
    disagg: bool = typer.Option(False, "--disagg/--no-disagg", help="Also compare the recommended configuration aggregated "
                                "against prefill/decode splits (1P+1D, 1P+2D, 2P+1D, 1P+3D; decode at its TP and at twice it; "
                                "KV over NVLink) by DistServe per-GPU goodput at the SLO; needs TTFT and TPOT targets."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON on stdout."),
    confidence: str = typer.Option("pessimistic", "--confidence",
                                   help="Edge of each candidate's error band to size for: optimistic | "
                                        "expected | pessimistic (step times at the band's upper edge)."),
) -> None:
    """Plan a serving fleet: candidates, simulated SLO capacity, replicas, cost, recommendation."""
    err = Console(stderr=True)
    try:
        check_search_options(headroom=headroom, spares=spares, jobs=jobs, max_requests=max_requests)
        extra: dict[str, Any] = {"rate_rps": DEFAULT_RATE_RPS, "duration_s": 120.0}
        if fleet_duration is not None:
            scn.flags["duration"] = fleet_duration
        req, notices = plan_request(scn.resolve(extra), scn.given(), gpus=gpus, precisions=precisions,
                                    kv_precisions=kv_precisions, tp=tp, pp=pp, headroom=headroom, spares=spares,
                                    executor=executor, jobs=jobs, max_requests=max_requests,
                                    heterogeneous=heterogeneous, sensitivity=sensitivity, confidence=confidence)
        for n in notices:
            err.print(f"[yellow]note:[/] {escape(str(n))}")
        with Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal) as prog:
            tasks: dict[str, Any] = {}

            def tick(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = prog.add_task(stage, total=max(total, 1))
                prog.update(tasks[stage], completed=done, total=max(total, 1))
            res = plan(req, progress=tick)
        rec = res.recommendation
        if export_scenario and rec is not None:
            from ..scenario import resolve, write_scenario
            path = write_scenario(resolve(rec.scenario), export_scenario,
                                  comment=f"servelab plan: recommended fleet {rec.replicas} x {rec.key}\n"
                                          f"re-run: servelab simulate --scenario {export_scenario}")
            err.print(f"scenario written to {path}")
        pd_cmp = None
        if disagg and rec is not None:
            pd_cmp = compare_recommended(rec.scenario)
    except ConfigError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if report:
        from ..report.plan_page import write_plan_report
        path = write_plan_report(res, report)
        err.print(f"report written to {path}")
    if as_json:
        d = res.to_dict()
        if pd_cmp is not None:
            d["disagg"] = pd_cmp.to_dict()
        typer.echo(json.dumps(clean_json(d), indent=1))
    else:
        out = Console()
        if not out.is_terminal:
            out = Console(width=160)
        print_plan(res, out)
        if pd_cmp is not None:
            from ..report.pd_text import print_pd
            print_pd(pd_cmp, out)
    if res.recommendation is None:
        if export_scenario:
            err.print("[yellow]no scenario written: no configuration meets the SLO[/]")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``plan`` to the app."""
    app.command("plan")(plan_command)
