"""`servelab estimate`: memory budget, latency and throughput of one deployment."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from ..errors import ConfigError
from ..report.estimate_text import print_estimate
from ..scenario.estimate import estimate_scenario
from ._scenario import ScenarioArgs, scenario_options

__all__ = ["register", "estimate"]


@scenario_options()
def estimate(
    scn: ScenarioArgs,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Memory budget, KV capacity, TTFT, decode speed and offline throughput of one deployment
    (lengths: --input-tokens/--output-tokens, default 2048/256)."""
    try:
        result, warnings = estimate_scenario(scn.resolve())
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)
    if json_out:
        typer.echo(json.dumps(result, indent=2, allow_nan=False))
    else:
        print_estimate(result, Console())


def register(app: typer.Typer) -> None:
    """Add ``estimate`` to the app."""
    app.command("estimate")(estimate)
