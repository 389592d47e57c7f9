"""`servelab calibrate`: fit the perf model's efficiencies to measured runs, or bound them
from the kernel lab's measured peaks (docs/calibration.md)."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ..calibrate import (
    DEFAULT_PARAMS,
    calibration_dict,
    efficiency_from_kernels,
    fit_efficiency,
    write_calibration,
)
from ..calibrate.runs import deployment_hints, observations_from_runs
from ..catalog import get_gpu
from ..errors import ConfigError
from ..perf import Deployment
from ..report.calibration_text import print_bounds, print_fit
from ._scenario import ScenarioArgs, scenario_options

__all__ = ["calibrate", "register"]

_out = Console()


def _deployment(scn: ScenarioArgs, hints: dict[str, Any]) -> Deployment:
    """The measured deployment: the scenario (file, flags) with the runs' own metadata
    filling the fields the user did not give; model and GPU must come from one of them."""
    from ..scenario import build

    given = scn.given()
    extra = {k: v for k, v in hints.items() if k not in given}
    if not ({"model", "gpu"} <= given | set(extra)):
        raise ConfigError("the deployment the runs measured is unknown: pass --model and --gpu "
                          "(catalog ids, see `servelab catalog`)")
    return build.deployment(scn.resolve(extra))


@scenario_options()
def calibrate(
    scn: ScenarioArgs,
    runs: list[Path] | None = typer.Argument(None, metavar="[RUN_DIR]...",
                                               help="Run folders (meta.json + records)."),
    params: str = typer.Option(",".join(DEFAULT_PARAMS), "--params",
                               help="Comma-separated perf.Efficiency fields to fit."),
    holdout: float = typer.Option(0.25, "--holdout", min=0.0, max=0.9,
                                  help="Fraction of observations held out of the fit."),
    no_start: bool = typer.Option(False, "--ignore-start",
                                  help="Ignore start_s (measure TTFT from dispatch/arrival)."),
    kernels: Path | None = typer.Option(None, "--kernels",
                                           help="Kernel-lab results JSONL: efficiency upper bounds "
                                                "(and fit bounds when runs are given)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the calibration JSON here."),
    json_out: bool = typer.Option(False, "--json", help="Print the calibration JSON."),
) -> None:
    """Fit efficiency parameters of the perf model to measured runs; --kernels bounds them."""
    runs = list(runs or [])
    if not runs and kernels is None:
        typer.echo("error: give RUN_DIR(s) to fit, or --kernels FILE for kernel-derived bounds", err=True)
        raise typer.Exit(2)
    try:
        kb = None
        if kernels is not None:
            from ..kernels.results import read_rows  # torch-free
            if "gpu" not in scn.given():
                raise ConfigError("--kernels needs --gpu (the catalog GPU the rows were measured on)")
            kb = efficiency_from_kernels(read_rows(kernels), get_gpu(scn.resolve().gpu))
        if runs:
            obs, prov, configs = observations_from_runs(runs, use_start=not no_start)
            dep = _deployment(scn, deployment_hints(configs))
            names = [p.strip() for p in params.split(",") if p.strip()]
            upper = {k: b.upper for k, b in kb.bounds.items() if b.upper <= 1.0} if kb else None
            with _out.status("fitting efficiencies…", spinner="dots") if not json_out else nullcontext():
                res = fit_efficiency(obs, dep, params=names, holdout_fraction=holdout,
                                     upper_bounds=upper)
            data = calibration_dict(result=res, deployment=dep, runs=prov, kernel_bounds=kb)
        else:
            data = calibration_dict(kernel_bounds=kb)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if out is not None:
        write_calibration(out, data)
    if json_out:
        typer.echo(json.dumps(data, indent=2, allow_nan=False, default=str))
        return
    if runs:
        print_fit(data, _out)
    if kb is not None:
        print_bounds(data["kernel_bounds"], _out)
    if out is not None:
        _out.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``calibrate`` to the app."""
    app.command("calibrate")(calibrate)
