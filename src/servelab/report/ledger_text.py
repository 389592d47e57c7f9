"""Terminal tables of the evidence ledger: a decision's verdicts (value, CI, threshold,
margin, evidence), the measured-vs-simulated calibration lines, and the ``ledger``
listings (runs, claims, one run's provenance, one claim's verdict history)."""

from __future__ import annotations

import json
import math
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["decision_json", "print_decision", "verdict_table", "calibration_lines", "runs_table", "claims_table", "print_ledger_item"]

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


def verdict_table(result: Any) -> Table:
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


def calibration_lines(result: Any) -> list[str]:
    out = []
    for v in result.verdicts:
        for c in v.detail.get("calibration", []):
            rel = "—" if c["rel_diff"] is None else f"{c['rel_diff']:+.1%}"
            flag = "DISAGREE" if c["disagree"] else "agree"
            out.append(f"{v.claim_id} @{c['scenario']}: measured {_fmt(c['measured_value'])} vs "
                       f"simulated {_fmt(c['simulated_value'])} ({rel}, {flag})")
    return out


def decision_json(result: Any, ledger_path: Any, report: Any = None) -> dict[str, Any]:
    """``decide --json``: the decision, the ledger, each experiment's status and every verdict."""
    return {"decision": result.decision.name, "ledger": str(ledger_path),
            "experiments": [vars(e) for e in result.experiments],
            "verdicts": [v.to_dict() for v in result.verdicts],
            "report": str(report) if report else None}


def print_decision(result: Any, ledger_path: Any, report: Any, con: Console) -> None:
    """``decide``: each experiment's status, the verdict table, the calibration lines."""
    for e in result.experiments:
        msg = f" — {e.message}" if e.message else ""
        con.print(f"[dim]{e.scenario}: {e.kind} {e.status} {e.run_id or ''}{msg}[/]",
                  highlight=False)
    con.print(verdict_table(result))
    cal = calibration_lines(result)
    if cal:
        con.print("[bold]measured vs simulated[/] (calibration data, stored in the ledger):")
        for line in cal:
            con.print("  " + line, highlight=False)
    con.print(f"[dim]ledger: {ledger_path}" + (f" · report: {report}" if report else "") + "[/]")


def runs_table(runs: list[dict[str, Any]]) -> Table:
    """``ledger runs``: one row per run with its status and provenance."""
    t = Table(title=f"Runs ({len(runs)})")
    for col in ("id", "kind", "status", "scenario", "records", "started", "git", "host"):
        t.add_column(col)
    for r in runs:
        t.add_row(r["id"], r["kind"], r["status"], r["scenario"] or "—", _fmt(r["n_records"]),
                  r["started_at"][:19], (r["git_commit"] or "—")[:12], r["host"] or "—")
    return t


def claims_table(claims: list[dict[str, Any]]) -> Table:
    """``ledger claims``: one row per claim with its latest verdict."""
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
    return t


def print_ledger_item(obj: dict[str, Any], con: Console) -> None:
    """``ledger show``: a run (``{"run": …}``) or a claim with its verdict history."""
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
