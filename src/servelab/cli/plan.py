"""`servelab plan`: size a serving fleet under SLOs (the 13 steps of docs/plan.md)."""

from __future__ import annotations

import json
import math
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import ConfigError
from ..plan import (DEFAULT_MODEL, DEFAULT_RATE_RPS, DEFAULT_WORKLOAD, EXECUTORS, PlanRequest,
                    SearchSettings, plan)
from ..units import fmt_bytes, fmt_seconds

__all__ = ["register", "plan_command", "clean_json"]

_MAX_ROWS = 20        # candidates per terminal table (all are in --json and --report)
_MAX_QUANT_ROWS = 12


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(x.strip().lower() for x in (text or "").split(",") if x.strip())


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in _csv(text))
    except ValueError:
        raise ConfigError(f"--{name} takes comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise ConfigError(f"--{name} needs integers >= 1, got {text!r}")
    return vals


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


def _print_plan(res: dict[str, Any], con: Console) -> None:
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
                "p95 TPOT", "Pareto"):
        t.add_column(col, justify="left" if col == "candidate" else "right")
    if len(sim) > _MAX_ROWS:
        t.caption = f"cheapest {_MAX_ROWS} of {len(sim)} shown; all in --json and --report"
    for c in sorted(sim, key=lambda c: (c["cost"]["cost_per_hour_usd"], c["key"]))[:_MAX_ROWS]:
        sz = c["sizing"]
        style = "bold green" if c["verdict"] == "recommended" else None
        t.add_row(c["key"], f"{c['capacity_rps']:.3g}", f"{sz['active_replicas']}+{sz['spare_replicas']}",
                  f"{sz['utilization']:.0%}", str(c["cost"]["packing"]["billed_gpus"]),
                  _money(c["cost"]["cost_per_hour_usd"]), _money(c["cost"]["cost_per_million_output_tokens_usd"]),
                  _ms(c.get("ttft_p95_s")), _ms(c.get("tpot_p95_s")), "●" if c.get("pareto") else "", style=style)
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


def plan_command(
    model: str = typer.Option(DEFAULT_MODEL, help="Model id or path to an HF config.json."),
    workload: str = typer.Option(DEFAULT_WORKLOAD, help="Workload preset."),
    rate: float = typer.Option(DEFAULT_RATE_RPS, "--request-rate", "--rate", help="Mean arrival rate, requests/s."),
    slo: Optional[str] = typer.Option(None, help="SLO targets, e.g. ttft_p95=2s,tpot_p95=50ms (default: the workload's)."),
    gpus: Optional[str] = typer.Option(None, help="Comma-separated GPU ids (default: every GPU in the catalog)."),
    precisions: str = typer.Option("bf16,fp8", help="Weight dtypes to consider."),
    kv_precisions: Optional[str] = typer.Option(None, "--kv-precisions", help="KV-cache dtypes (default: those of --precisions that are KV dtypes, else bf16)."),
    tp: str = typer.Option("1,2,4,8", help="Tensor-parallel degrees to consider."),
    pp: str = typer.Option("auto", help="Pipeline-parallel degrees, or auto (1, plus 2 when the weights outgrow a node)."),
    headroom: float = typer.Option(1.1, help="Replica headroom factor (>= 1)."),
    spares: int = typer.Option(1, help="Spare replicas for failures (N+spares)."),
    node_sizes: str = typer.Option("1,2,4,8", "--node-sizes", help="Instance sizes in GPUs (e.g. 8 for whole nodes)."),
    engine: str = typer.Option("vllm", "--engine", help="Engine profile: vllm | trtllm (step overheads, KV rule)."),
    calibration: Optional[str] = typer.Option(
        None, "--calibration", help="Calibration JSON (`servelab calibrate`): its efficiency replaces the "
                                    "engine profile's for candidates on the GPU it was fitted on only."),
    executor: str = typer.Option("local", help=f"Where candidates run: {', '.join(EXECUTORS)}."),
    jobs: Optional[int] = typer.Option(None, help="Parallel workers (default: CPUs available)."),
    seed: int = typer.Option(0, help="Seed for every generated request list."),
    max_requests: int = typer.Option(3000, "--max-requests", help="Most requests per capacity probe."),
    fleet_duration: float = typer.Option(120.0, "--fleet-duration", help="Seconds of arrivals in fleet simulations."),
    heterogeneous: bool = typer.Option(True, "--hetero/--no-hetero", help="Step 12: two pools routed by length."),
    sensitivity: bool = typer.Option(True, "--sensitivity/--no-sensitivity", help="Step 13 sensitivity runs."),
    report: Optional[str] = typer.Option(None, help="Write a self-contained HTML report here."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON on stdout."),
) -> None:
    """Plan a serving fleet: candidates, simulated SLO capacity, replicas, cost, recommendation."""
    err = Console(stderr=True)
    try:
        if headroom < 1.0:
            raise ConfigError(f"--headroom must be >= 1, got {headroom:g}")
        if spares < 0:
            raise ConfigError(f"--spares must be >= 0, got {spares}")
        cal, cal_gpu, notices = None, None, []
        if calibration:
            from ._calibration import load as load_cal
            cal = load_cal(calibration)
            cal_gpu = cal.gpu
            if not cal_gpu:
                raise ConfigError(f"calibration {calibration!r} does not name the GPU it was fitted on "
                                  "('deployment.gpu'); the plan cannot tell which candidates it describes")
            if gpus and cal_gpu not in _csv(gpus):
                raise ConfigError(f"calibration {calibration!r} was fitted on {cal_gpu}, which --gpus "
                                  f"({gpus}) leaves out: it would change nothing")
            notices.append(f"calibration {calibration} (fitted on {cal_gpu}) applies to candidates on "
                           f"{cal_gpu} only; candidates on other GPUs use the {engine} engine profile, "
                           "so comparisons across GPUs mix calibrated and uncalibrated efficiencies")
            cal_model = (cal.deployment or {}).get("model")
            if cal_model and cal_model != model:
                notices.append(f"calibration was fitted on model {cal_model}, the plan is for {model}: "
                               "its efficiencies may not carry over")
        req = PlanRequest(
            model=model, workload=workload, rate_rps=rate, slo=slo, gpus=_csv(gpus),
            weight_dtypes=_csv(precisions), kv_dtypes=_csv(kv_precisions), tps=_ints(tp, "tp"),
            pps=() if pp.strip().lower() == "auto" else _ints(pp, "pp"), headroom=headroom, spares=spares, node_sizes=_ints(node_sizes, "node-sizes"),
            search=SearchSettings(seed=seed, max_requests=max_requests,
                                  min_requests=min(SearchSettings().min_requests, max_requests)),
            fleet_duration_s=fleet_duration, heterogeneous=heterogeneous, sensitivity=sensitivity,
            executor=executor, jobs=jobs, engine=engine,
            calibration=cal.efficiency if cal is not None else None, calibration_gpu=cal_gpu,
            calibration_info={"path": cal.path, "sha256": cal.sha256, "deployment": cal.deployment,
                              "notices": notices} if cal is not None else None)
        for n in notices:
            err.print(f"[yellow]note:[/] {escape(str(n))}")
        if not req.weight_dtypes:
            raise ConfigError("--precisions is empty; e.g. bf16,fp8")
        with Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal) as prog:
            tasks: dict[str, Any] = {}

            def tick(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = prog.add_task(stage, total=max(total, 1))
                prog.update(tasks[stage], completed=done, total=max(total, 1))
            res = plan(req, progress=tick)
    except ConfigError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if report:
        from ._plan_report import write_plan_report
        path = write_plan_report(res, report)
        err.print(f"report written to {path}")
    if as_json:
        typer.echo(json.dumps(clean_json(res), indent=1))
    else:
        out = Console()
        if not out.is_terminal:
            out = Console(width=160)
        _print_plan(res, out)
    if res["recommendation"] is None:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``plan`` to the app."""
    app.command("plan")(plan_command)
