"""`servelab simulate`: a simulated serving fleet under a workload — records, summary, time series."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer
from rich.console import Console

from ..errors import ConfigError, InfeasibleError
from ..report.sim_text import print_simulation
from ._scenario import ScenarioArgs, scenario_options

__all__ = ["register", "simulate_cmd"]


@scenario_options()
def simulate_cmd(
    scn: ScenarioArgs,
    exact: bool = typer.Option(False, "--exact", help="Step by step instead of event skipping (slower)."),
    out: Optional[str] = typer.Option(None, "--out", help="Write meta, records, summary and time series here "
                                                          "[default: runs/simulate-<UTC time>]."),
    token_times: bool = typer.Option(False, "--token-times", help="Record every token's time (bigger records)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    bands: bool = typer.Option(False, "--bands", help="Re-simulate at both edges of the error band "
                                                     "(step times × the band's 80 % edges) and report an "
                                                     "interval for every latency and rate (3 runs)."),
) -> None:
    """Simulate a serving fleet under a workload and summarize TTFT/TPOT/E2E, throughput, goodput."""
    from .. import recordio
    from ..scenario import build
    from ..scenario.simrun import simulation_summary
    from ..sim import simulate

    try:
        sc = scn.resolve()
        cal = build.calibration(sc)
        dep = build.deployment(sc, cal=cal)
        warnings = build.warnings(sc, dep, cal=cal)
        config = build.sim_config(sc, exact=exact, record_token_times=token_times, dep=dep)
        for w in warnings:
            typer.echo(f"warning: {w}", err=True)
        reqs = build.requests(sc)
        slo_obj = build.slo(sc)
        show = not json_out and sys.stderr.isatty()
        if show:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
            with Progress(TextColumn("[bold]simulating"), BarColumn(),
                          TextColumn("{task.percentage:>3.0f}% of simulated time"), TimeElapsedColumn(),
                          console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task("sim", total=1.0)
                result = simulate(config, reqs, progress=lambda f: bar.update(task, completed=f))
        else:
            result = simulate(config, reqs)
    except (ConfigError, InfeasibleError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    summary = simulation_summary(sc, result, cal=cal, warnings=warnings, exact=exact, bands=bands,
                                 slo=slo_obj)
    if not out:
        from ._outputs import default_run_dir
        out = str(default_run_dir("simulate"))
    if out:
        from ..metrics import run_timeseries
        from ..sim.series import server_section_of
        recordio.write_run(out, result.meta, result.records, summary,
                           run_timeseries(result.records, server=server_section_of(result.timeseries)))
    if json_out:
        typer.echo(json.dumps(summary, indent=2, allow_nan=False))
        return
    print_simulation(sc, summary, Console(), cal=cal, bands=bands, out=out)


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the app."""
    app.command("simulate")(simulate_cmd)
