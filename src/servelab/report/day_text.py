"""The fleet-day plan as Markdown: cost per day for each capacity mix, replicas hour by
hour, autoscaler settings, the morning ramp, GPU pool sharing and simulated hourly SLO."""

from __future__ import annotations

import math
import sys
from typing import Any

__all__ = ["day_plan_markdown", "shard_bar", "shard_updater"]


def _clock(s: float) -> str:
    s = s % 86400.0
    return f"{int(s // 3600):02d}:{int(s % 3600 // 60):02d}"


def _usd(x: float) -> str:
    return f"${x:,.0f}" if abs(x) >= 100 else f"${x:,.2f}"


def day_plan_markdown(d: dict[str, Any]) -> str:
    """``DayPlanResult.to_dict()`` as a Markdown report."""
    t = d["totals"]
    pr = d["prices"]
    out = [f"# Fleet-day plan: {d['fleet']}", "",
           f"{t['requests_per_day']:,.0f} requests/day (expected), {t['output_tokens_per_day'] / 1e9:,.2f} B output "
           f"tokens/day. Reserved at {pr['reserved_fraction']:.1%} and spot at {pr['spot_fraction']:.1%} of "
           f"on-demand ({pr['source']}).", "",
           "## Cost per day", "",
           "| pool | model | GPU × shape | capacity/replica | reserved-only | on-demand-only | chosen mix | "
           "$/1M tokens (mix) | GPU-h idle |",
           "|---|---|---|---|---|---|---|---|---|"]
    for p in d["pools"]:
        c = p["costs_per_day_usd"]
        out.append(f"| {p['name']} | {p['model']} | {p['gpu']} {p['shape']} | {p['capacity_rps']:.2f} req/s | "
                   f"{_usd(c['reserved_only'])} | {_usd(c['on_demand_only'])} | **{_usd(c['mix'])}** | "
                   f"{p['cost_per_million_tokens_usd']:.3f} | {p['gpu_hours_idle']:.0f} |")
    out.append(f"| **fleet** | | | | {_usd(t['reserved_only'])} | {_usd(t['on_demand_only'])} | "
               f"**{_usd(t['mix'])}** | {t['mix_per_million_tokens_usd']:.3f} | {t['gpu_hours_idle']:.0f} "
               f"of {t['gpu_hours_provisioned']:.0f} |")
    out += ["", "Chosen mix per pool: reserved baseline + on-demand (or spot where the pool tolerates reclaim) "
            "above it. GPU-h idle: provisioned GPU-hours beyond the hourly mean rate / SLO capacity "
            "(headroom, spares, whole replicas and the lead-time margin).", ""]
    for p in d["pools"]:
        m = p["mix_detail"]
        a = p["autoscaler"]
        out += [f"## {p['name']} — {p['model']} on {p['gpu']} {p['shape']}", "",
                f"* mix: {p['reserved_replicas']} replicas reserved ({m['reserved_gpus']} GPUs, 24 h), "
                f"{m['flex_gpu_hours']} GPU-hours {m['flex']} above it; on-demand "
                f"{_usd(p['on_demand_gpu_hour_usd'])}/GPU-h ({p['price_source']})",
                f"* autoscaler: metric `{a['metric']}` target {a['target']:g} per replica, min {a['min_replicas']}, "
                f"max {a['max_replicas']}, poll {a['poll_interval_s']:g} s, provisioning "
                f"{a['provisioning_delay_s']:g} s + model load {a['model_load_delay_s']:g} s, cooldown "
                f"{a['cooldown_s']:g} s",
                f"* lead time {p['lead_time_s']:g} s; demand grows at most ×{p['growth_in_lead']:.3f} within it"]
        r = p["ramp"]
        if r:
            out.append(f"* ramp (longest rise of replicas): {r['from_replicas']} → {r['to_replicas']} replicas from "
                       f"{r['first_hour']:02d}:00 to {r['last_hour'] + 1:02d}:00; request the first scale-up by "
                       f"**{_clock(r['request_first_scale_up_at_s'])}** ({r['lead_time_s']:g} s ahead)")
        out += [f"* {n}" for n in p["notes"]]
        out += ["", "| hour | " + " | ".join(f"{h:02d}" for h in range(24)) + " |",
                "|---|" + "---|" * 24,
                "| req/s | " + " | ".join(f"{x:.0f}" if x >= 10 else f"{x:.1f}" for x in p["mean_rps"]) + " |",
                "| replicas | " + " | ".join(str(x) for x in p["replicas_per_hour"]) + " |", ""]
        titles = {"schedule": "Simulated hours, fixed fleet of the planned replicas (scheduled scaling)",
                  "autoscaler": "Simulated hours, the autoscaler above (after a warm-up of "
                                f"{d.get('warmup_s', 0):g} s)"}
        for mode, hours in p["hourly_sim"].items():
            out += [f"{titles[mode]}:", "",
                    "| hour | replicas | requests | delivery | p95 TTFT | p95 TPOT | SLO met |",
                    "|---|---|---|---|---|---|---|"]
            for h in hours:
                reps = h.get("replicas", "")
                if not h["requests"]:
                    out.append(f"| {h['hour']:02d} | {reps} | 0 | | | | |")
                    continue
                miss = [k for k, v in (h.get("targets") or {}).items() if v is False]
                ok = "yes" if h["slo_met"] else "**no**" + (f" ({', '.join(miss)})" if miss else "")
                out.append(f"| {h['hour']:02d} | {reps} | {h['requests']:,} | {h['delivery']:.3f} | "
                           f"{_ms(h['ttft_p95_s'])} | {_ms(h['tpot_p95_s'])} | {ok} |")
            out.append("")
    if d["sharing"]:
        out += ["## Sharing GPU pools", ""]
        for gpu, s in d["sharing"].items():
            verdict = "sharing wins" if s["sharing_wins"] else "separate pools are as cheap"
            out.append(f"* {gpu}: {', '.join(s['pools'])} sharing {s['reserved_gpus']} reserved GPUs cost "
                       f"{_usd(s['cost_per_day_usd'])}/day vs {_usd(s['separate_cost_per_day_usd'])}/day separately "
                       f"({s['separate_reserved_gpus']} reserved GPUs): {verdict}, "
                       f"{_usd(s['saving_per_day_usd'])}/day; each move of a reserved GPU between models "
                       "costs a model load")
        out.append("")
    return "\n".join(out)


def _ms(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x * 1e3:.0f} ms" if x < 10 else f"{x:.1f} s"


def shard_bar():  # noqa: ANN202 - rich progress or None
    """One bar per shard: simulated hours of its horizon, requests done (stderr, terminals only)."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("{task.completed:5.2f}/{task.total:.2f} h"),
                    TextColumn("{task.fields[reqs]}"), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=False)


def shard_updater(bar):  # noqa: ANN001, ANN202
    ids: dict[str, int] = {}

    def update(states: list) -> None:
        for st in states:
            if st.label not in ids:
                ids[st.label] = bar.add_task(st.label, total=1.0, reqs="")
            total_h = st.horizon_s / 3600.0 if st.horizon_s > 0 else 1.0
            bar.update(ids[st.label], completed=st.sim_s / 3600.0 if st.horizon_s > 0 else 0.0, total=total_h,
                       reqs=f"{st.done:,}/{st.total:,} requests" if st.total else "starting")
    return update
