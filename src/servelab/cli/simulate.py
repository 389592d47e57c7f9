"""`servelab simulate`: a simulated serving fleet under a workload — records, summary, time series."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer
from rich.console import Console

from ..errors import ConfigError, InfeasibleError
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
    from ..scenario import build, dump_scenario
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
    from ..perf import get_engine
    from ..sim.summary import summarize_result
    profile = get_engine(sc.engine.profile)
    result.meta.config = {"scenario": dump_scenario(sc, full=True),
                          "engine_profile": profile.to_dict(),
                          "calibration": cal.to_dict() if cal is not None else None,
                          **result.meta.config}
    summary = summarize_result(result, slo=slo_obj, window_s=build.throughput_window_s(result.meta.duration_s),
                               engine=profile.name)
    summary["engine"] = profile.name
    summary["efficiency_source"] = "calibration" if cal is not None else f"engine profile {profile.name}"
    summary["calibration"] = cal.to_dict() if cal is not None else None
    if warnings:
        summary["warnings"] = warnings
    if bands:
        summary["bands"], summary["band"] = _edge_runs(sc, summary, slo_obj, build, simulate,
                                                       summarize_result, exact, profile.name)
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
    from ..report.tables import summary_table
    con = Console()
    shape = f"TP{sc.tp}" + (f" PP{sc.pp}" if sc.pp > 1 else "") + (f" EP{sc.ep}" if sc.ep > 1 else "")
    fleet = f"{sc.replicas}× {sc.gpu} {shape}"
    if sc.disagg is not None:
        d = sc.disagg
        fleet = (f"{d.prefill.replicas}× prefill {d.prefill.gpu or sc.gpu} TP{d.prefill.tp or sc.tp} + "
                 f"{d.decode.replicas}× decode {d.decode.gpu or sc.gpu} TP{d.decode.tp or sc.tp}, KV over {d.link}")
    con.print(summary_table(summary, f"{sc.model} on {fleet} ({profile.name}) — "
                                     f"{sc.workload} at {build.rate_rps(sc):g} req/s for {sc.duration_s:g} s "
                                     f"(simulated)"))
    if cal is not None:
        con.print(f"efficiency from calibration {cal.path} (sha256 {cal.sha256[:12]}…)")
    if bands:
        b, bd = summary["band"], summary["bands"]
        status = (f"{b['n_rows']} held-out rows ({b['key']})" if b["calibrated"]
                  else f"UNCALIBRATED ({b['key']}: default band)")
        for m in ("ttft_s", "tpot_s", "e2e_s"):
            if "p95" in bd.get(m, {}):
                x = bd[m]["p95"]
                con.print(f"{m[:-2].upper()} p95 80 % band: {x['lo'] * 1e3:,.1f} – {x['hi'] * 1e3:,.1f} ms")
        if "throughput_tokens_per_s" in bd:
            x = bd["throughput_tokens_per_s"]
            con.print(f"output throughput 80 % band: {x['lo']:,.0f} – {x['hi']:,.0f} tokens/s")
        con.print(f"[dim]bands: the run repeated with step times ×{b['lo_factor']:.2f} and ×{b['hi_factor']:.2f}; "
                  f"{status}[/dim]")
    if out:
        con.print(f"[dim]wrote {out}/ (meta, records, summary, timeseries)[/dim]")


def _edge_runs(sc, summary, slo_obj, build, simulate, summarize_result, exact, engine):
    """The same scenario (same requests) simulated with step times at the band's two edges."""
    from ..catalog import get_gpu
    from ..perf.band import confidence_factor, edge_bands
    moe = build.load_model(sc.model).moe is not None
    band = confidence_factor(get_gpu(sc.gpu), engine, moe=moe, confidence="expected")
    edges = []
    for f in (band["lo_factor"], band["hi_factor"]):
        esc = build.derive(sc, step_time_factor=sc.step_time_factor * f)
        cfg = build.sim_config(esc, exact=exact, record_token_times=False, dep=build.deployment(esc))
        r = simulate(cfg, build.requests(esc))
        edges.append(summarize_result(r, slo=slo_obj, window_s=build.throughput_window_s(r.meta.duration_s),
                                      engine=engine))
    return edge_bands(summary, edges[0], edges[1], band), band


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the app."""
    app.command("simulate")(simulate_cmd)
