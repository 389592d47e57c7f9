"""`servelab decide FILE` and `servelab ledger runs|claims|show ID`.

``decide`` validates a decision file, runs the experiments the ledger does not hold yet
(simulations run; bench runs only when the file gives a URL; imports are read), judges
every claim and prints the verdict table (``--json``: one JSON object). ``--report``
writes a self-contained HTML page with each claim's evidence plotted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.console import Console
from rich.table import Table

from ..errors import ConfigError, LedgerError

__all__ = ["register", "ledger_app"]

ledger_app = typer.Typer(help="Inspect the evidence ledger: runs, claims and verdict history.",
                         no_args_is_help=True)

_LEDGER_HELP = "Ledger database (default: $SERVELAB_LEDGER or .servelab/ledger.sqlite)."
_STYLE = {"supported": "green", "rejected": "red", "pending": "yellow"}


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _threshold_text(claim: Any, v: Any) -> str:
    thr = getattr(claim, "threshold", None)
    base = f"{claim.comparison} {_fmt(v.threshold)}"
    if hasattr(thr, "scenario"):
        return f"{base} ({thr.factor:g}× {thr.scenario})"
    return base


def _verdict_table(result: Any) -> Table:
    t = Table(title=f"Decision: {result.decision.name}", show_lines=False)
    for col in ("claim", "metric", "value", "CI", "threshold", "margin", "verdict", "evidence"):
        t.add_column(col, justify="right" if col in ("value", "margin") else "left")
    claims = {c.id: c for c in result.decision.claims}
    for v in result.verdicts:
        c = claims[v.claim_id]
        ci = "—" if v.ci_lo is None else f"[{_fmt(v.ci_lo)}, {_fmt(v.ci_hi)}]"
        margin = _fmt(v.margin) + ("" if v.margin_rel is None else f" ({v.margin_rel:+.1%})")
        evidence = (v.evidence_kind + " " + ",".join(r.rsplit("-", 1)[-1] for r in v.run_ids)
                    ).strip() or "—"
        label = f"[{_STYLE[v.verdict]}]{v.label}[/]"
        if v.reason and v.verdict == "pending":
            label += f"\n[dim]{v.reason}[/]"
        t.add_row(c.id, c.metric + f" @{c.scenario}", _fmt(v.value), ci, _threshold_text(c, v),
                  margin, label, evidence)
    return t


def _calibration_lines(result: Any) -> list[str]:
    out = []
    for v in result.verdicts:
        for c in v.detail.get("calibration", []):
            rel = "—" if c["rel_diff"] is None else f"{c['rel_diff']:+.1%}"
            flag = "DISAGREE" if c["disagree"] else "agree"
            out.append(f"{v.claim_id} @{c['scenario']}: measured {_fmt(c['measured_value'])} vs "
                       f"simulated {_fmt(c['simulated_value'])} ({rel}, {flag})")
    return out


def _console() -> Console:
    """stdout console; at least 150 columns when not a terminal (pipes, CI logs)."""
    con = Console()
    return con if con.is_terminal else Console(width=max(con.width, 150))


def _open_ledger(path: Optional[Path], *, must_exist: bool = False) -> Any:
    """Open the ledger; the read-only commands (``must_exist``) refuse a missing file
    instead of creating an empty ledger (and its folder) at a mistyped path."""
    from ..evidence import Ledger
    from ..evidence.ledger import default_ledger_path

    if must_exist:
        where = path if path is not None else default_ledger_path()
        if not Path(where).is_file():
            Console(stderr=True).print(
                f"[red]error:[/] no ledger at {where}; `servelab decide FILE` creates one "
                f"(the ledger is --ledger PATH, else $SERVELAB_LEDGER, else .servelab/ledger.sqlite)")
            raise typer.Exit(2)
    try:
        return Ledger(path)
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

    err = Console(stderr=True)
    try:
        decision = load_decision(file)
        if prices is not None:
            from ..catalog.prices import read_price_file
            read_price_file(prices)                     # a bad file fails here, naming row and column
            decision = decision.model_copy(update={"scenarios": {
                k: (sc if sc.prices.book is not None or sc.prices.gpu_hour_usd is not None else
                    sc.model_copy(update={"prices": sc.prices.model_copy(update={"book": prices})}))
                for k, sc in decision.scenarios.items()}})
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
            typer.echo(json.dumps({
                "decision": decision.name, "ledger": str(led.path),
                "experiments": [vars(e) for e in result.experiments],
                "verdicts": [v.to_dict() for v in result.verdicts],
                "report": str(report) if report else None,
            }, indent=2, default=str))
            return
        out = _console()
        for e in result.experiments:
            msg = f" — {e.message}" if e.message else ""
            out.print(f"[dim]{e.scenario}: {e.kind} {e.status} {e.run_id or ''}{msg}[/]",
                      highlight=False)
        out.print(_verdict_table(result))
        cal = _calibration_lines(result)
        if cal:
            out.print("[bold]measured vs simulated[/] (calibration data, stored in the ledger):")
            for line in cal:
                out.print("  " + line, highlight=False)
        out.print(f"[dim]ledger: {led.path}" + (f" · report: {report}" if report else "") + "[/]")
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
    t = Table(title=f"Runs ({len(runs)})")
    for col in ("id", "kind", "status", "scenario", "records", "started", "git", "host"):
        t.add_column(col)
    for r in runs:
        t.add_row(r["id"], r["kind"], r["status"], r["scenario"] or "—", _fmt(r["n_records"]),
                  r["started_at"][:19], (r["git_commit"] or "—")[:12], r["host"] or "—")
    _console().print(t)


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
    t = Table(title=f"Claims ({len(claims)})")
    for col in ("id", "decision", "metric", "latest verdict", "value", "judged"):
        t.add_column(col)
    for c in claims:
        v = c["latest"] or {}
        verdict = v.get("verdict", "—")
        if v.get("simulation_only") and verdict != "pending":
            verdict += " (simulation only)"
        t.add_row(c["id"], c["decision"] or "—", str(c["spec"].get("metric", "")),
                  f"[{_STYLE.get(v.get('verdict'), 'white')}]{verdict}[/]", _fmt(v.get("value")),
                  (v.get("judged_at") or "—")[:19])
    _console().print(t)


@ledger_app.command("show")
def ledger_show(
    item_id: str = typer.Argument(..., metavar="ID", help="A run id or a claim id."),
    ledger: Optional[Path] = typer.Option(None, "--ledger", help=_LEDGER_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one run (provenance, config) or one claim (spec, verdict history)."""
    with _open_ledger(ledger, must_exist=True) as led:
        try:
            obj: dict[str, Any] = {"run": led.run(item_id)}
            try:
                obj["records"] = {"meta_keys": sorted(led.records_meta(item_id))}
            except LedgerError:
                pass
        except LedgerError:
            try:
                obj = {"claim": led.claim(item_id), "verdicts": led.verdicts(item_id)}
            except LedgerError:
                Console(stderr=True).print(f"no run or claim with id {item_id!r}; "
                                           f"see `servelab ledger runs` / `servelab ledger claims`",
                                           markup=False)
                raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(obj, indent=2, default=str))
        return
    con = _console()
    if "run" in obj:
        r = obj["run"]
        t = Table(title=f"Run {r['id']}", show_header=False)
        for key in ("kind", "status", "scenario", "fingerprint", "git_commit", "catalog_hash",
                    "host", "pid", "gpu", "engine_version", "started_at", "finished_at",
                    "duration_s", "n_records", "error"):
            t.add_row(key, _fmt(r.get(key)))
        t.add_row("versions", json.dumps(r["versions"]))
        t.add_row("config", json.dumps(r["config"], indent=1))
        con.print(t)
        return
    c = obj["claim"]
    con.print(f"[bold]Claim {c['id']}[/] ({c['decision']}): {c['text']}")
    con.print(json.dumps(c["spec"], indent=1), highlight=False)
    t = Table(title="Verdict history (newest first)")
    for col in ("judged", "verdict", "value", "CI", "threshold", "margin", "runs"):
        t.add_column(col)
    for v in obj["verdicts"]:
        label = v["verdict"] + (" (simulation only)" if v["simulation_only"]
                                and v["verdict"] != "pending" else "")
        t.add_row(v["judged_at"][:19], label, _fmt(v["value"]),
                  f"[{_fmt(v['ci_lo'])}, {_fmt(v['ci_hi'])}]", _fmt(v["threshold"]),
                  _fmt(v["margin"]), ",".join(v["run_ids"]))
    con.print(t)


def register(app: typer.Typer) -> None:
    """Add ``decide`` and the ``ledger`` group to app."""
    app.command("decide")(decide)
    app.add_typer(ledger_app, name="ledger")
