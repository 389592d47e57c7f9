"""`servelab plan-day` and `servelab simulate-day`: a day of a multi-model fleet."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .._limits import check_number
from ..errors import ConfigError, InfeasibleError

__all__ = ["register", "plan_day_cmd", "simulate_day_cmd"]


def _bar(label: str):  # noqa: ANN202 - rich progress or None
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(f"[bold]{label}" + " {task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True), transient=True)


def plan_day_cmd(
    fleet_file: str = typer.Argument(..., help="Fleet-day file (YAML/JSON): prices, autoscaler, pools of scenarios."),
    sim_hours: float = typer.Option(0.0, "--sim-hours", help="Hours of the day to simulate for hourly SLO attainment (0: none)."),
    sim_from: int = typer.Option(0, "--sim-from", help="First simulated hour of the day (0-23)."),
    sim_mode: str = typer.Option("both", "--sim-mode", help="schedule (fixed fleet of the planned replicas per hour) "
                                 "| autoscaler (the planned HPA settings) | both."),
    executor: str = typer.Option("local", "--executor", help="local (processes) | ray (the dist extra)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", help="Workers. [default: the CPUs]"),
    out: Optional[str] = typer.Option(None, "--out", help="Write the Markdown report here (and .json next to it)."),
    json_out: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Plan a day: per pool the replica capacity, replicas hour by hour, reserved/on-demand/spot mix,
    autoscaler settings, cost per day and per 1M tokens, lead time before the morning ramp."""
    from ..plan.dayplanner import plan_day
    from ..plan.fleetday import load_fleet_day
    from ..report.day_text import day_plan_markdown

    try:
        if jobs is not None:
            check_number("--jobs", jobs, lo=1, integer=True)
        fleet, scenarios = load_fleet_day(fleet_file)
        bar = None if json_out else _bar("planning")
        if bar is None:
            res = plan_day(fleet, scenarios, sim_hours=sim_hours, sim_start_h=sim_from, sim_mode=sim_mode,
                           executor=executor, jobs=jobs)
        else:
            with bar:
                task = bar.add_task("", total=1)

                def tick(stage: str, done: int, total: int) -> None:
                    bar.update(task, description=stage, completed=done, total=max(1, total))
                res = plan_day(fleet, scenarios, sim_hours=sim_hours, sim_start_h=sim_from, sim_mode=sim_mode,
                               executor=executor, jobs=jobs, progress=tick)
    except (ConfigError, InfeasibleError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    d = res.to_dict()
    md = day_plan_markdown(d)
    if out:
        p = Path(out)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(md + "\n", encoding="utf-8")
        p.with_suffix(".json").write_text(json.dumps(d, indent=2, allow_nan=False, default=str) + "\n")
    if json_out:
        typer.echo(json.dumps(d, indent=2, allow_nan=False, default=str))
    else:
        typer.echo(md)


def simulate_day_cmd(
    fleet_file: str = typer.Argument(..., help="Fleet-day file; each pool's scenario runs as written (replicas, autoscaler)."),
    hours: float = typer.Option(24.0, "--hours", help="Hours of the curves to simulate."),
    plan_file: Optional[str] = typer.Option(None, "--plan", help="A plan-day JSON (--out …/x.md writes x.json): each "
                                            "pool starts with the plan's hour-0 replicas and runs its autoscaler."),
    groups: str = typer.Option("1", "--groups", help="Replica groups per pool, simulated as separate shards "
                               "(approximate): K for every pool, or POOL=K[,POOL=K] (others 1)."),
    executor: str = typer.Option("local", "--executor", help="local (processes) | ray (the dist extra)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", help="Workers. [default: the CPUs]"),
    out: Optional[str] = typer.Option(None, "--out", help="Write one merged run folder here (records.parquet, "
                                      "summary.json, meta.json)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Simulate every pool of a fleet-day file, sharded by pool (and replica group), into one run.
    Shards stream their records to disk as they go; a progress bar per shard (simulated hours,
    requests done) is drawn on stderr when it is a terminal."""
    import tempfile

    from ..plan.dayplan_file import pools_with_plan
    from ..plan.dayrun import parse_groups, simulate_day
    from ..report.day_text import shard_bar, shard_updater
    from ..plan.fleetday import load_fleet_day
    from ..scenario import build

    try:
        if hours <= 0:
            raise ConfigError(f"--hours must be > 0, got {hours}")
        if jobs is not None:
            check_number("--jobs", jobs, lo=1, integer=True)
        fleet, scenarios = load_fleet_day(fleet_file)
        pools = [(p.name, build.derive(sc, duration_s=hours * 3600.0)) for p, sc in zip(fleet.pools, scenarios)]
        if plan_file:
            pools = pools_with_plan(pools, plan_file)
        groups_by = parse_groups(groups)
        with tempfile.TemporaryDirectory(prefix="servelab-day-") as tmp:
            folder = out or str(Path(tmp) / "run")
            bar = None if json_out else shard_bar()
            if bar is None:
                run = simulate_day(pools, groups=groups_by, executor=executor, jobs=jobs, out=folder)
            else:
                with bar:
                    run = simulate_day(pools, groups=groups_by, executor=executor, jobs=jobs, out=folder,
                                       on_progress=shard_updater(bar))
    except (ConfigError, InfeasibleError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    summary = dict(run.summary or {})
    summary["wall_s"] = run.wall_s
    if json_out:
        typer.echo(json.dumps(summary, indent=2, allow_nan=False, default=str))
        return
    typer.echo(f"{run.records_written:,} requests over {hours:g} h in {len(run.shards)} shards, "
               f"{run.wall_s:.1f} s wall")
    for name, s in summary["pools"].items():
        typer.echo(f"  {name}: {s['offered']:,} requests, delivery {s['delivery']:.4f}, "
                   f"p95 TTFT {s['ttft_s']['p95']}, p95 TPOT {s['tpot_s']['p95']}, SLO met {s['slo_met']}")
    if out:
        typer.echo(f"wrote {out}/")


def register(app: typer.Typer) -> None:
    app.command("plan-day")(plan_day_cmd)
    app.command("simulate-day")(simulate_day_cmd)
