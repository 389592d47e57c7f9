"""The plan as terminal tables (rich): the 13 steps, the recommendation and its claims."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from ..units import fmt_bytes, fmt_seconds

__all__ = ["print_plan", "clean_json"]

_MAX_ROWS = 20        # candidates per terminal table (all are in --json and --report)
_MAX_QUANT_ROWS = 12


def clean_json(x: Any) -> Any:
    """Plain JSON: non-finite floats become null, tuples lists."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean_json(v) for v in x]
    return x


def _ms(x: float | None) -> str:
    return "–" if x is None else fmt_seconds(x)


def _money(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"${x:,.2f}"


def _band_cell(band: dict[str, Any] | None) -> str:
    """The candidate's step-time band (×lo–×hi, the edge it was sized at marked ▲), or why none."""
    if not band:
        return "calib. file"
    mark = {"optimistic": "▼", "pessimistic": "▲"}.get(band["confidence"], "")
    return (f"×{band['lo_factor']:.2f}–{band['hi_factor']:.2f}{mark}"
            + ("" if band["calibrated"] else " uncal."))


def print_plan(result: Any, con: Console) -> None:
    """Print the plan (a ``plan.PlanResult``, or its ``to_dict()`` form) as terminal tables."""
    res = result.to_dict() if hasattr(result, "to_dict") else result
    steps = res["steps"]
    p = steps["1_characterize"]
    inp = res["inputs"]
    con.rule(f"[bold]servelab plan[/] · {inp['model']} · {inp['workload']} · {inp['rate_rps']:g} req/s · {inp['slo']}"
             + (f" · engine {inp['engine']}" if inp.get("engine") else ""))
    t = Table(title="1 · Workload", show_header=True)
    for c in ("", "mean", "p50", "p90", "p99", "max"):
        t.add_column(c, justify="right" if c else "left")
    for name in ("input_tokens", "output_tokens", "context_tokens"):
        s = p[name]
        t.add_row(name.replace("_", " "), f"{s['mean']:.0f}", f"{s['p50']:.0f}", f"{s['p90']:.0f}",
                  f"{s['p99']:.0f}", f"{s['max']:.0f}")
    con.print(t)
    con.print(f"  arrivals {p['arrival_kind']} (burstiness {p['burstiness']:g}, gap CV {p['interarrival_cv']:.2f}); "
              f"mean {p['mean_rate_rps']:.2f} req/s, peak {p['peak_rate_rps']:.2f} req/s "
              f"(p{p['peak_percentile']:g} of {p['peak_window_s']:g}-s windows); prefix sharing: "
              f"{p['prefix_request_fraction']:.0%} of requests, {p['prefix_token_fraction']:.0%} of input tokens")
    t = Table(title="2–3 · Footprint per precision")
    t.add_column("dtype"), t.add_column("weights (whole model)", justify="right"), t.add_column("KV bytes/token", justify="right")
    for d in sorted(set(steps["2_weights"]) | set(steps["3_kv_cache"])):
        w = steps["2_weights"].get(d, {}).get("weight_bytes")
        k = steps["3_kv_cache"].get(d, {}).get("kv_bytes_per_token")
        t.add_row(d, fmt_bytes(w) if w else "–", f"{k:,.0f}" if k else "–")
    con.print(t)
    cal = inp.get("calibration")
    if cal:
        con.print(f"  calibration {cal['path']} (sha256 {cal['sha256'][:12]}…): {cal['rule']}; "
                  f"applied to {len(cal['applied_to'])} candidate(s)")
    cands = res["candidates"]
    t = Table(title=f"4 · Candidates: {len(cands)} enumerated, not simulated and why")
    t.add_column("verdict"), t.add_column("count", justify="right"), t.add_column("example reason")
    groups: dict[tuple[str, str], list[str]] = {}
    for c in cands:
        if c["verdict"] in ("infeasible", "hopeless", "pruned", "no-capacity", "error"):
            kind = "cost lower bound" if c["verdict"] == "pruned" else c["reason"].split(":")[0].split(";")[0][:60]
            groups.setdefault((c["verdict"], kind), []).append(c["key"] + ": " + c["reason"])
    for (verdict, _), reasons in sorted(groups.items()):
        t.add_row(verdict, str(len(reasons)), reasons[0][:150])
    con.print(t)
    sim = [c for c in cands if c["verdict"] in ("meets-slo", "recommended")]
    t = Table(title="5–8 · Memory, roofline and operating point (simulated candidates)")
    t.add_column("candidate", no_wrap=True)
    for col in ("weights/GPU", "KV tokens", "max conc", "prefill", "bound", "decode b1",
                "SLO batch", "analytic λ", "saturation λ"):
        t.add_column(col, justify="left" if col == "candidate" else "right")
    if len(sim) > _MAX_ROWS:
        t.caption = f"cheapest {_MAX_ROWS} of {len(sim)} shown; all in --json and --report"
    for c in sorted(sim, key=lambda c: c["cost"]["cost_per_hour_usd"])[:_MAX_ROWS]:
        a = c["analytic"]
        t.add_row(c["key"], fmt_bytes(a["memory"]["weight_bytes"]), f"{a['kv_capacity_tokens']:,}",
                  str(a["max_concurrency_mean_ctx"]), _ms(a["prefill_s"]), a["prefill_bound"],
                  _ms(a["decode_step_b1_s"]), str(a["slo_batch"]), f"{a['slo_rate_rps']:.3g}",
                  f"{a['saturation_rps']:.3g}")
    con.print(t)
    q = steps["7_quantization"]
    if q:
        t = Table(title="7 · Quantization vs bf16 (same GPU and parallelism) — needs quality evidence")
        for col in ("candidate", "weights ×", "KV capacity ×", "decode b1 ×", "saturation ×"):
            t.add_column(col, justify="left" if col == "candidate" else "right")
        if len(q) > _MAX_QUANT_ROWS:
            t.caption = f"first {_MAX_QUANT_ROWS} of {len(q)} shown; all in --json"
        for row in q[:_MAX_QUANT_ROWS]:
            t.add_row(row["key"], *(f"{row[k]:.2f}" if row[k] else "–" for k in
                                    ("weight_bytes_ratio", "kv_capacity_ratio", "decode_step_b1_ratio", "saturation_ratio")))
        con.print(t)
    t = Table(title=f"9–11 · Simulated SLO capacity, replicas, cost ({steps['9_search']['simulations']} simulations)")
    t.add_column("candidate", no_wrap=True)
    for col in ("cap λ/replica", "replicas", "util", "GPUs", "$/h", "$/1M out", "p95 TTFT",
                "p95 TPOT", "step band", "Pareto"):
        t.add_column(col, justify="left" if col == "candidate" else "right")
    if len(sim) > _MAX_ROWS:
        t.caption = f"cheapest {_MAX_ROWS} of {len(sim)} shown; all in --json and --report"
    for c in sorted(sim, key=lambda c: (c["cost"]["cost_per_hour_usd"], c["key"]))[:_MAX_ROWS]:
        sz = c["sizing"]
        style = "bold green" if c["verdict"] == "recommended" else None
        t.add_row(c["key"], f"{c['capacity_rps']:.3g}", f"{sz['active_replicas']}+{sz['spare_replicas']}",
                  f"{sz['utilization']:.0%}", str(c["cost"]["packing"]["billed_gpus"]),
                  _money(c["cost"]["cost_per_hour_usd"]), _money(c["cost"]["cost_per_million_output_tokens_usd"]),
                  _ms(c.get("ttft_p95_s")), _ms(c.get("tpot_p95_s")), _band_cell(c.get("band")),
                  "●" if c.get("pareto") else "", style=style)
    con.print(t)
    h = steps["12_heterogeneous"]
    con.print("[bold]12 · Heterogeneous pools:[/] " + (h.get("verdict") or h.get("reason", "")))
    r13 = steps["13_recommendation"]
    rec = res["recommendation"]
    if rec is None:
        con.print(Panel(f"[red]No configuration meets the SLO:[/] {r13.get('reason', '')}", title="13 · Recommendation"))
        return
    nodes = ", ".join(f"{n['count']}×{n['gpus_per_node']}-GPU" for n in rec["nodes"])
    body = (f"[bold]{rec['replicas']} × {rec['key']}[/] ({rec['active_replicas']} active + {rec['spare_replicas']} spare), "
            f"{rec['gpus_total']} GPUs in nodes {nodes}\n"
            f"cost {_money(rec['cost_per_hour'])}/h · {_money(rec['cost_per_million_tokens'])} per 1M output tokens · "
            f"monthly on-demand {_money(rec['monthly_usd']['on_demand'])}, 1-yr {_money(rec['monthly_usd']['reserved_1y'])}, "
            f"3-yr {_money(rec['monthly_usd']['reserved_3y'])}, spot {_money(rec['monthly_usd']['spot'])}\n"
            f"fleet simulation at {inp['rate_rps']:g} req/s: p95 TTFT {_ms(rec['ttft_p95_s'])}, p95 TPOT "
            f"{_ms(rec['tpot_p95_s'])}, delivery {rec['delivery']:.3f} — SLO "
            + ("[green]met[/]" if rec["slo_met"] else "[red]missed[/]"))
    if rec.get("headline"):
        body = f"{rec['headline']}\n" + body
    for w in rec["warnings"]:
        body += f"\n[yellow]warning:[/] {w}"
    con.print(Panel(body, title="13 · Recommendation", border_style="green"))
    con.print("  Pareto front (cost vs p95 TTFT): " + ", ".join(r13["pareto"]))
    if r13["sensitivity"]:
        t = Table(title="13 · Sensitivity (chosen fleet re-simulated)")
        for col in ("scenario", "p95 TTFT", "p95 TPOT", "delivery", "SLO", "replicas needed"):
            t.add_column(col, justify="left" if col == "scenario" else "right")
        for s in r13["sensitivity"]:
            t.add_row(s["label"], _ms(s["ttft_p95_s"]), _ms(s["tpot_p95_s"]), f"{s['delivery']:.3f}",
                      "[green]met[/]" if s["slo_met"] else "[red]missed[/]", str(s["replicas_needed"] or "–"))
        con.print(t)
    t = Table(title="13 · Claims this plan rests on")
    t.add_column("claim"), t.add_column("status")
    for c in r13["claims"]:
        color = "green" if c["status"].startswith("supported") else "red" if c["status"].startswith("rejected") else "yellow"
        t.add_row(c["claim"], f"[{color}]{c['status']}[/]")
    con.print(t)
