"""`servelab catalog gpus|models|workloads|prices`: list the catalog (rich tables or ``--json``)."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from ..catalog import list_gpus, list_models, list_workloads
from ..catalog.models import active_param_count, param_count
from ..report.catalog_text import gpus_table, models_table, offers_table, workloads_table

__all__ = ["register"]

catalog_app = typer.Typer(help="List the GPUs, models and workload presets servelab knows, with sources.",
                          no_args_is_help=True)

_JSON_HELP = "Print a JSON list instead of a table."


def _print_json(items: list[dict]) -> None:
    typer.echo(json.dumps(items, indent=2, allow_nan=False))


@catalog_app.command("gpus")
def gpus(json_out: bool = typer.Option(False, "--json", help=_JSON_HELP)) -> None:
    """GPUs: memory, bandwidth, dense peak TFLOP/s, interconnect, price."""
    items = list_gpus()
    if json_out:
        _print_json([g.to_dict() for g in items])
        return
    Console().print(gpus_table(items))


@catalog_app.command("models")
def models(json_out: bool = typer.Option(False, "--json", help=_JSON_HELP)) -> None:
    """Built-in models: shape, attention layout, parameter counts."""
    items = list_models()
    if json_out:
        _print_json([{**m.to_dict(), "param_count": param_count(m),
                      "active_param_count": active_param_count(m)} for m in items])
        return
    Console().print(models_table(items))


@catalog_app.command("workloads")
def workloads(json_out: bool = typer.Option(False, "--json", help=_JSON_HELP)) -> None:
    """Workload presets: lengths, arrivals, prefix sharing, SLOs."""
    items = list_workloads()
    if json_out:
        _print_json([w.to_dict() for w in items])
        return
    Console().print(workloads_table(items))


@catalog_app.command("prices")
def prices(gpu: str = typer.Option(None, "--gpu", "-g", help="Only offers of this GPU."),
           prices_file: str = typer.Option(None, "--prices",
                                           help="A price file (CSV or YAML, same columns) instead of the built-in book."),
           json_out: bool = typer.Option(False, "--json", help=_JSON_HELP)) -> None:
    """Price book: instance offers with provider, shape, region, tiers, source and date."""
    from ..catalog.prices import load_price_book
    from ..errors import ConfigError
    try:
        items = list(load_price_book(prices_file))
        if gpu:
            from ..catalog import get_gpu
            name = get_gpu(gpu).name
            items = [o for o in items if o.gpu == name]
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if json_out:
        _print_json([o.to_dict() for o in items])
        return
    Console().print(offers_table(items, prices_file))


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to app."""
    app.add_typer(catalog_app, name="catalog")
