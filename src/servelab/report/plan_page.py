"""The HTML report of ``servelab plan``: the 13 steps as sections, with tables and plots.

Plots: latency–throughput curves per candidate (analytic TPOT vs output tokens/s, and
simulated p95 TTFT vs offered rate) with the SLO lines; memory breakdown per GPU
(stacked bars); roofline with the operating points; the cost / p95-TTFT Pareto front;
sensitivity of the chosen fleet against the SLO. One self-contained file (inline SVG,
no script, no network), built with :mod:`servelab.report`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from . import Page, Series, bar_chart, interval_chart, line_chart, scatter_chart, write_html

__all__ = ["plan_page", "write_plan_report"]

MAX_PLOTTED = 8   # candidates per plot (the Pareto front first, then the cheapest)


def _plotted(sim: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ranked = sorted(sim, key=lambda c: (not c.get("pareto"), c["verdict"] != "recommended",
                                        c["cost"]["cost_per_hour_usd"], c["key"]))
    return ranked[:MAX_PLOTTED]


def _slo(res: dict[str, Any], metric: str) -> float | None:
    vals = [t["threshold_s"] for t in res["steps"]["1_characterize"]["slo"] if t["metric"] == metric]
    return min(vals) if vals else None


def _gb(x: float | None) -> float | None:
    return None if x is None else x / 1e9


def _ms(x: float | None) -> float | None:
    return None if x is None else x * 1e3


def plan_page(result: Any) -> Page:
    """The HTML page of a plan (a ``plan.PlanResult``, or its ``to_dict()`` form)."""
    res = result.to_dict() if hasattr(result, "to_dict") else result
    inp, steps, cands = res["inputs"], res["steps"], res["candidates"]
    rec = res["recommendation"]
    page = Page(f"Fleet plan: {inp['model']} · {inp['workload']} · {inp['rate_rps']:g} req/s",
                subtitle=f"SLO {inp['slo']} · GPUs {', '.join(inp['gpus'])} · weights "
                         f"{', '.join(inp['weight_dtypes'])} · KV {', '.join(inp['kv_dtypes'])} · seed {inp['seed']}")
    if rec:
        page.paragraph(f"Recommendation: {rec['replicas']} × {rec['key']} ({rec['active_replicas']} active + "
                       f"{rec['spare_replicas']} spare, {rec['gpus_total']} GPUs), ${rec['cost_per_hour']:.2f}/h, "
                       f"${rec['cost_per_million_tokens']:.3f} per 1M output tokens; simulated p95 TTFT "
                       f"{rec['ttft_p95_s'] * 1e3:.0f} ms, p95 TPOT {rec['tpot_p95_s'] * 1e3:.1f} ms.")
        if rec.get("headline"):
            page.paragraph(rec["headline"])
    else:
        page.paragraph("No configuration meets the SLO: " + steps["13_recommendation"].get("reason", ""))
    sim = [c for c in cands if c["verdict"] in ("meets-slo", "recommended")]
    shown = _plotted(sim) if sim else []
    ttft_slo, tpot_slo = _slo(res, "ttft"), _slo(res, "tpot")

    # 1
    p = steps["1_characterize"]
    page.heading("1 · Workload characterization")
    page.table(["", "mean", "p50", "p90", "p95", "p99", "max"],
               [[n.replace("_", " ")] + [p[n][k] for k in ("mean", "p50", "p90", "p95", "p99", "max")]
                for n in ("input_tokens", "output_tokens", "context_tokens")], caption="Lengths (tokens)")
    page.table(["quantity", "value"], [
        ["mean rate (req/s)", p["mean_rate_rps"]],
        [f"peak rate (req/s, p{p['peak_percentile']:g} of {p['peak_window_s']:g}-s windows)", p["peak_rate_rps"]],
        ["arrival process", f"{p['arrival_kind']} (burstiness {p['burstiness']:g})"],
        ["inter-arrival coefficient of variation", p["interarrival_cv"]],
        ["requests with a shared prefix", p["prefix_request_fraction"]],
        ["shared-prefix share of input tokens", p["prefix_token_fraction"]],
        ["SLO", ", ".join(f"{t['key']} ≤ {t['threshold_s'] * 1e3:g} ms" for t in p["slo"])]],
        caption=f"Arrivals over {p['duration_s']:g} s ({p['num_requests']} requests)")

    # 2-3
    page.heading("2–3 · Weights and KV cache per precision")
    dts = sorted(set(steps["2_weights"]) | set(steps["3_kv_cache"]))
    page.table(["dtype", "weights (whole model, GB)", "KV bytes per token"],
               [[d, _gb(steps["2_weights"].get(d, {}).get("weight_bytes")),
                 steps["3_kv_cache"].get(d, {}).get("kv_bytes_per_token")] for d in dts])

    # 4
    page.heading("4 · Candidates")
    counts: dict[str, int] = {}
    for c in cands:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    page.table(["verdict", "count"], sorted(counts.items()), caption=f"{len(cands)} candidates enumerated")
    rows = "".join(f"<tr><td>{_e(c['key'])}</td><td>{_e(c['verdict'])}</td><td>{_e(c['reason'] or '; '.join(c['notes']))}</td></tr>"
                   for c in cands)
    page.details("Every candidate with its verdict and reason",
                 f"<table><thead><tr><th>candidate</th><th>verdict</th><th>reason / notes</th></tr></thead>"
                 f"<tbody>{rows}</tbody></table>")

    # 5
    page.heading("5 · Memory budget per GPU")
    if shown:
        mems = [c["analytic"]["memory"] for c in shown]
        gb = 1e9
        page.figure(bar_chart([c["key"] for c in shown], {
            "weights": [m["weight_bytes"] / gb for m in mems],
            "activations": [m["activation_bytes"] / gb for m in mems],
            "runtime overhead": [m["overhead_bytes"] / gb for m in mems],
            "KV cache": [m["kv_bytes"] / gb for m in mems],
            "reserved (1 − utilization)": [(m["gpu_memory_bytes"] - m["usable_bytes"]) / gb for m in mems]},
            title="Memory per GPU", y_label="GB", horizontal=True, width=900,
            height=120 + 40 * len(shown)), "Per-GPU memory of each plotted candidate (perf.memory_budget).")
        page.table(["candidate", "KV capacity (tokens)", "max concurrency @ mean ctx", "@ p95 ctx"],
                   [[c["key"], c["analytic"]["kv_capacity_tokens"], c["analytic"]["max_concurrency_mean_ctx"],
                     c["analytic"]["max_concurrency_p95_ctx"]] for c in shown])

    # 6
    page.heading("6 · Roofline")
    if shown:
        page.figure(_roofline(shown, res), "Attainable FLOP/s = min(peak, intensity × HBM bandwidth) per GPU "
                    "(lines); decode at batch 1 and at the SLO batch, and a lone median prompt's prefill (points).")
        page.table(["candidate", "ridge (FLOP/byte)", "prefill of the median prompt (ms)", "prefill bound", "decode step b=1 (ms)",
                    "decode bound at max batch"],
                   [[c["key"], c["analytic"]["ridge_flop_per_byte"], _ms(c["analytic"]["prefill_s"]),
                     c["analytic"]["prefill_bound"], _ms(c["analytic"]["decode_step_b1_s"]),
                     c["analytic"]["curve"][-1]["bound"]] for c in shown])

    # 7
    page.heading("7 · Quantization effects (pending quality evidence)")
    simulated = {c["key"] for c in sim}
    q = sorted(steps["7_quantization"], key=lambda r: (r["key"] not in simulated, r["key"]))
    page.paragraph(f"{len(q)} quantized candidates compared with their bf16 twin; simulated ones first. "
                   "Speed and memory are modelled; quality is not, so every row is pending.")
    page.table(["candidate", "vs", "weights ×", "KV capacity ×", "decode step ×", "saturation ×", "status"],
               [[r["key"], r["baseline"], r["weight_bytes_ratio"], r["kv_capacity_ratio"],
                 r["decode_step_b1_ratio"], r["saturation_ratio"], "pending"] for r in q[:24]])

    # 8-9
    page.heading("8 · Operating point: latency–throughput")
    if shown:
        page.figure(line_chart([Series(name=c["key"], xs=[pt["output_tokens_per_s"] for pt in c["analytic"]["curve"]],
                                       ys=[pt["tpot_s"] * 1e3 for pt in c["analytic"]["curve"]]) for c in shown],
                               title="Decode: TPOT vs output throughput (batch 1 … max)", x_label="output tokens/s per replica",
                               y_label="TPOT (ms)", log_x=True,
                               hlines=[(tpot_slo * 1e3, "TPOT SLO")] if tpot_slo else ()),
                    "Analytic (perf model): one point per batch size.")
        page.table(["candidate", "largest batch within TPOT SLO", "λ at that batch (req/s)", "saturation λ (req/s)"],
                   [[c["key"], c["analytic"]["slo_batch"], c["analytic"]["slo_rate_rps"],
                     c["analytic"]["saturation_rps"]] for c in shown])
    page.heading("9 · Simulated per-replica SLO capacity")
    if shown:
        page.figure(line_chart([Series(name=c["key"], xs=[pr["rate_rps"] for pr in c["simulation"]["probes"]],
                                       ys=[pr["ttft_p95_s"] for pr in c["simulation"]["probes"]]) for c in shown],
                               title="One replica: simulated p95 TTFT vs offered rate", x_label="offered rate (req/s)",
                               y_label="p95 TTFT (s)", log_y=True,
                               hlines=[(ttft_slo, "TTFT SLO")] if ttft_slo else ()),
                    "Each point is one probe of the capacity search (same requests, arrivals scaled).")
    page.table(["candidate", "capacity (req/s)", "first failing rate", "probes", "sim wall (s)"],
               [[c["key"], c["capacity_rps"], c["simulation"]["upper_rps"], c["simulation"]["simulations"],
                 c["simulation"]["wall_s"]] for c in sorted(sim, key=lambda c: c["key"])])

    # 10-11
    page.heading("10 · Replicas")
    page.table(["candidate", "active", "spare", "total", "utilization", "warnings"],
               [[c["key"], c["sizing"]["active_replicas"], c["sizing"]["spare_replicas"], c["sizing"]["replicas"],
                 c["sizing"]["utilization"], "; ".join(c["sizing"]["warnings"])] for c in _by_cost(sim)])
    page.heading("11 · Cost")
    page.table(["candidate", "GPUs billed", "nodes", "$/h", "$/1M output tokens", "monthly on-demand",
                "reserved 1 yr", "reserved 3 yr", "spot"],
               [[c["key"], c["cost"]["packing"]["billed_gpus"],
                 ", ".join(f"{n['count']}×{n['gpus_per_node']}" for n in c["cost"]["packing"]["nodes"]),
                 c["cost"]["cost_per_hour_usd"], c["cost"]["cost_per_million_output_tokens_usd"],
                 *(c["cost"]["monthly_usd"][k] for k in ("on_demand", "reserved_1y", "reserved_3y", "spot"))]
                for c in _by_cost(sim)])
    if rec:
        page.paragraph(f"Price source: {rec['price_source']}. Reserved and spot tiers are on-demand × a published "
                       "ratio (docs/plan.md).")

    # 12
    page.heading("12 · Heterogeneous pools")
    h = steps["12_heterogeneous"]
    page.paragraph(h.get("verdict") or h.get("reason", ""))
    if h.get("applicable"):
        page.table(["pool", "candidate", "capacity (req/s)", "replicas", "$/h"],
                   [[pool, o["key"], o["capacity_rps"], o.get("replicas"), o.get("cost_per_hour_usd")]
                    for pool in ("short", "long") for o in h["options"][pool]],
                   caption=f"split at {h['threshold_tokens']} input tokens; long share {h['long_fraction']:.1%}")

    # 13
    r13 = steps["13_recommendation"]
    page.heading("13 · Recommendation")
    if sim:
        front = [c for c in sim if c.get("pareto")]
        front.sort(key=lambda c: c["cost"]["cost_per_hour_usd"])
        page.figure(scatter_chart([
            Series(name="candidates meeting the SLO", xs=[c["cost"]["cost_per_hour_usd"] for c in sim],
                   ys=[_ms(c.get("ttft_p95_s")) or math.nan for c in sim], kind="scatter"),
            Series(name="Pareto front", xs=[c["cost"]["cost_per_hour_usd"] for c in front],
                   ys=[_ms(c.get("ttft_p95_s")) or math.nan for c in front], kind="line",
                   labels=[c["key"] for c in front])],
            title="Cost vs p95 TTFT at the sized operating load", x_label="$/hour", y_label="p95 TTFT (ms)",
            log_y=True), "Lower-left is better; the front's points are labelled.")
    if rec:
        page.table(["field", "value"], [[k, _cell(k, v)] for k, v in rec.items() if k != "monthly_usd"])
    sens = r13.get("sensitivity") or []
    if sens and rec:
        base = [("plan", rec["ttft_p95_s"], rec["tpot_p95_s"])] + [(s["label"], s["ttft_p95_s"], s["tpot_p95_s"])
                                                                  for s in sens]
        if ttft_slo:
            page.figure(interval_chart([(n, t * 1e3, math.nan, math.nan) for n, t, _ in base if t is not None],
                                       title="Sensitivity: p95 TTFT of the chosen fleet", x_label="p95 TTFT (ms)",
                                       threshold=ttft_slo * 1e3, threshold_label="TTFT SLO", better="lower"))
        if tpot_slo:
            page.figure(interval_chart([(n, t * 1e3, math.nan, math.nan) for n, _, t in base if t is not None],
                                       title="Sensitivity: p95 TPOT of the chosen fleet", x_label="p95 TPOT (ms)",
                                       threshold=tpot_slo * 1e3, threshold_label="TPOT SLO", better="lower"))
        page.table(["scenario", "replicas", "rate (req/s)", "p95 TTFT (ms)", "p95 TPOT (ms)", "delivery", "SLO",
                    "replicas needed"],
                   [[s["label"], s["replicas"], s["rate_rps"], _ms(s["ttft_p95_s"]), _ms(s["tpot_p95_s"]),
                     s["delivery"], "met" if s["slo_met"] else "not met", s["replicas_needed"]] for s in sens])
    page.table(["claim", "status", "evidence"],
               [[c["claim"], c["status"].split(" ")[0], c["status"] + " — " + c["evidence"]]
                for c in r13.get("claims", [])], caption="Claims the plan rests on")
    search = steps["9_search"]
    page.paragraph(f"Search: {len(cands)} candidates, {search['simulated_candidates']} simulated, "
                   f"{search['simulations']} simulations, {res['timing']['wall_s']:.1f} s.")
    return page


def _cell(key: str, value: Any) -> Any:
    """A recommendation field as a table cell (lists and maps as short text)."""
    if key == "nodes":
        return ", ".join(f"{n['count']} × {n['gpus_per_node']}-GPU node" for n in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {'met' if v is True else 'missed' if v is False else v}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(map(str, value)) or "none"
    return value


def _by_cost(sim: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(sim, key=lambda c: (c["cost"]["cost_per_hour_usd"], c["key"]))


def _e(text: str) -> str:
    import html
    return html.escape(str(text))


def _roofline(shown: list[dict[str, Any]], res: dict[str, Any]) -> str:
    """Per-GPU roofs ``min(peak, I × bandwidth)`` in TFLOP/s and each candidate's
    decode (batch 1 and SLO batch) and prefill operating points on its GPU's roof."""
    series: list[Series] = []
    xs = [10 ** (i / 8) for i in range(-8, 33)]       # 0.1 … 10,000 FLOP/byte
    seen: set[tuple[str, str]] = set()
    for c in shown:
        a = c["analytic"]
        key = (c["gpu"], a["compute_dtype"])
        if key in seen:
            continue
        seen.add(key)
        series.append(Series(name=f"{c['gpu']} {a['compute_dtype']} roof", xs=xs, dashed=True,
                             ys=[min(a["peak_flops_per_s"], x * a["hbm_bytes_per_s"]) / 1e12 for x in xs]))
    pts_x, pts_y, labels = [], [], []
    for c in shown:
        a = c["analytic"]
        slo_pt = next((p for p in a["curve"] if p["batch"] >= a["slo_batch"]), a["curve"][-1])
        for x, lab in ((a["curve"][0]["intensity_flop_per_byte"], "decode b=1"),
                       (slo_pt["intensity_flop_per_byte"], f"decode b={slo_pt['batch']}"),
                       (a["prefill_intensity"], "prefill")):
            pts_x.append(x)
            pts_y.append(min(a["peak_flops_per_s"], x * a["hbm_bytes_per_s"]) / 1e12)
            labels.append(f"{c['key']} {lab}")
    series.append(Series(name="operating points", xs=pts_x, ys=pts_y, kind="scatter"))
    return line_chart(series, title="Roofline per GPU with the candidates' operating points",
                      x_label="operational intensity (FLOP/byte)", y_label="attainable TFLOP/s per GPU",
                      log_x=True, log_y=True, height=460)


def write_plan_report(res: Any, path: str | Path) -> Path:
    """Render the plan report to ``path``."""
    return write_html(plan_page(res), path)
