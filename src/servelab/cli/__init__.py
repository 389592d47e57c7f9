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


def _register_all() -> None:
    from . import bench, calibrate, catalog_cmd, decide, deploy, emulate, estimate, kernels, plan, report_cmd, simulate

    for module in (catalog_cmd, estimate, simulate, bench, emulate, plan, kernels, decide, report_cmd, calibrate, deploy):
        module.register(app)


_register_all()


def main() -> None:
    app()
