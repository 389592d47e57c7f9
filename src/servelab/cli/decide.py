"""`servelab decide FILE` and `servelab ledger runs|claims|show ID`.

``decide`` validates a decision file, runs the experiments the ledger does not hold yet
(simulations run; bench runs only when the file gives a URL; imports are read), judges
every claim and prints the verdict table (``--json``: one JSON object). ``--report``
writes a self-contained HTML page with each claim's evidence plotted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.console import Console

from ..errors import ConfigError, LedgerError
from ..report.ledger_text import claims_table, decision_json, print_decision, print_ledger_item, runs_table

__all__ = ["register", "ledger_app"]

ledger_app = typer.Typer(help="Inspect the evidence ledger: runs, claims and verdict history.",
                         no_args_is_help=True)

_LEDGER_HELP = "Ledger database (default: $SERVELAB_LEDGER or .servelab/ledger.sqlite)."


def _console() -> Console:
    """stdout console; at least 150 columns when not a terminal (pipes, CI logs)."""
    con = Console()
    return con if con.is_terminal else Console(width=max(con.width, 150))


def _open_ledger(path: Optional[Path], *, must_exist: bool = False) -> Any:
    """Open the ledger; the read-only commands (``must_exist``) refuse a missing file."""
    from ..evidence.ledger import Ledger, open_existing
    try:
        return open_existing(path) if must_exist else Ledger(path)
    except LedgerError as exc:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None


def decide(
    file: Path = typer.Argument(..., help="Decision YAML file."),
    ledger: Optional[Path] = typer.Option(None, "--ledger", help=_LEDGER_HELP),
    report: Optional[Path] = typer.Option(None, "--report", help="Write an HTML report here."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    rerun: bool = typer.Option(False, "--rerun", help="Run every experiment again."),
    prices: Optional[str] = typer.Option(
        None, "--prices", help="Price file (CSV/YAML, see `servelab catalog prices`) for every scenario "
                               "that sets no prices.book or prices.gpu_hour_usd of its own."),
) -> None:
    """Run missing experiments, judge every claim and print the verdicts."""
    from ..evidence import load_decision, run_decision
    from ..evidence.schema import with_price_book

    err = Console(stderr=True)
    try:
        decision = load_decision(file)
        if prices is not None:
            decision = with_price_book(decision, prices)
    except ConfigError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    led = _open_ledger(ledger)
    try:
        if as_json:
            result = run_decision(decision, led, base_dir=file.parent, rerun=rerun)
        else:
            with err.status("working…") as status:
                result = run_decision(decision, led, base_dir=file.parent, rerun=rerun,
                                      on_progress=lambda m: status.update(m))
        if report is not None:
            from ..report.decision_page import render_report

            render_report(result, led, report)
        if as_json:
            typer.echo(json.dumps(decision_json(result, led.path, report), indent=2, default=str))
            return
        print_decision(result, led.path, report, _console())
    except ConfigError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    finally:
        led.close()


@ledger_app.command("runs")
def ledger_runs(
    ledger: Optional[Path] = typer.Option(None, "--ledger", help=_LEDGER_HELP),
    kind: Optional[str] = typer.Option(None, help="Only runs of this kind."),
    status: Optional[str] = typer.Option(None, help="Only runs with this status."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List runs with their status and provenance."""
    with _open_ledger(ledger, must_exist=True) as led:
        runs = led.runs(kind=kind, status=status)
    if as_json:
        typer.echo(json.dumps(runs, indent=2, default=str))
        return
    _console().print(runs_table(runs))


@ledger_app.command("claims")
def ledger_claims(
    ledger: Optional[Path] = typer.Option(None, "--ledger", help=_LEDGER_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List claims with their latest verdict."""
    with _open_ledger(ledger, must_exist=True) as led:
        claims = led.claims()
    if as_json:
        typer.echo(json.dumps(claims, indent=2, default=str))
        return
    _console().print(claims_table(claims))


@ledger_app.command("show")
def ledger_show(
    item_id: str = typer.Argument(..., metavar="ID", help="A run id or a claim id."),
    ledger: Optional[Path] = typer.Option(None, "--ledger", help=_LEDGER_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one run (provenance, config) or one claim (spec, verdict history)."""
    with _open_ledger(ledger, must_exist=True) as led:
        try:
            obj = led.item(item_id)
        except LedgerError as exc:
            Console(stderr=True).print(str(exc), markup=False)
            raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(obj, indent=2, default=str))
        return
    print_ledger_item(obj, _console())


def register(app: typer.Typer) -> None:
    """Add ``decide`` and the ``ledger`` group to app."""
    app.command("decide")(decide)
    app.add_typer(ledger_app, name="ledger")
