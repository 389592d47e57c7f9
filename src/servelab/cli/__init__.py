"""Command line: thin wrappers that parse, call the packages and print.

Each command lives in its own module exposing ``register(app)``.
"""

from __future__ import annotations

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="servelab",
    help="The LLM serving decision lab: estimate, simulate, measure, plan and decide.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__
        typer.echo(f"servelab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print servelab's version and exit.")) -> None:
    """The LLM serving decision lab: estimate, simulate, measure, plan and decide."""


def _register_all() -> None:
    from . import (bench, calibrate, catalog_cmd, decide, deploy, emulate, estimate, kernels, plan, plan_day,
                   report_cmd, simulate)

    for module in (catalog_cmd, estimate, simulate, bench, emulate, plan, plan_day, kernels, decide, report_cmd,
                   calibrate, deploy):
        module.register(app)
    from ._guard import guard_app
    guard_app(app)


_register_all()


def main() -> None:
    app()
