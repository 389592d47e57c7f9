"""Step 13: Pareto front, the chosen plan (validated by a fleet simulation), its
sensitivity and the claims it rests on.

* Pareto front over the candidates that met the SLO: minimize $/hour and the p95 TTFT
  simulated at each candidate's sized operating load.
* Chosen plan: the cheapest ($/hour; ties → lower p95 TTFT, then key). Its whole fleet
  (N+spares replicas, least-outstanding router) is simulated at the mean rate under
  the workload's arrival process; if that misses an SLO, a replica is added and the
  fleet re-simulated (at most ``MAX_EXTRA`` times) — the plan says so.
* Sensitivity (each re-simulates the chosen fleet): rate × 1.5; input context × 2
  (and the capacity re-searched to give the replicas it would need); one replica
  killed a quarter into the run (its in-flight requests retried).
* Claims: what the plan asserts, each "supported (simulation)", "rejected
  (simulation)" or "pending (needs measurement)".
"""

from __future__ import annotations

import math
from typing import Any, Callable

from ..scenario import build, dump_scenario
from .evaluate import CandidateTask, evaluate_candidate
from .fleet import FleetTask, run_fleet, scale_context
from .pareto import pareto_front
from .result import Recommendation
from .sizing import size_replicas

__all__ = ["recommend", "run_task", "MAX_EXTRA"]

MAX_EXTRA = 3
RATE_FACTOR = 1.5
CONTEXT_FACTOR = 2.0


def run_task(task: Any) -> Any:
    """Dispatch one planner task (capacity search or fleet run) — picklable entry point."""
    return run_fleet(task) if isinstance(task, FleetTask) else evaluate_candidate(task)


def _lat(x: float | None) -> float:
    return x if x is not None else math.inf


def recommend(*, req: Any, workload: Any, slo: Any, profile: Any, evaluated: list[dict[str, Any]],
              deps: dict[str, Any], scenarios: dict[str, Any], schedulers: dict[str, Any],
              rows: list[dict[str, Any]], runner: Any,
              tick: Callable[[str, int, int], None], rate: float, out_tokens_per_s: float,
              gpus: dict[str, Any]) -> dict[str, Any]:
    if not evaluated:
        return {"recommendation": None, "pareto": [], "sensitivity": [], "claims": [],
                "reason": _no_plan_reason(rows), "_simulations": 0}
    pts = [(r["cost"]["cost_per_hour_usd"], _lat(r.get("ttft_p95_s"))) for r in evaluated]
    front = [evaluated[i]["key"] for i in pareto_front(pts)]
    for r in evaluated:
        r["pareto"] = r["key"] in front
    chosen = min(evaluated, key=lambda r: (r["cost"]["cost_per_hour_usd"], _lat(r.get("ttft_p95_s")), r["key"]))
    dep = deps[chosen["key"]]
    csc = scenarios[chosen["key"]]
    st = req.search
    dur = csc.duration_s
    replicas = chosen["sizing"]["replicas"]
    sims = 0
    adjustments = []
    tick("validate fleet", 0, 1)
    for extra in range(MAX_EXTRA + 1):
        fleet_sc = build.derive(csc, replicas=replicas)
        fleet = run_fleet(FleetTask(label="plan", scenario=fleet_sc, deployment=dep,
                                    min_delivery=st.min_delivery))
        sims += 1
        if fleet.slo_met or extra == MAX_EXTRA:
            break
        adjustments.append(f"fleet of {replicas} missed the SLO in simulation "
                           f"(p95 TTFT {_fmt(fleet.ttft_p95_s)}, TPOT {_fmt(fleet.tpot_p95_s)}); "
                           f"added a replica")
        replicas += 1
    tick("validate fleet", 1, 1)
    # the same fleet with step times at the two edges of the chosen candidate's error band
    edges: dict[str, Any] = {}
    band = chosen.get("band")
    if band is not None:
        for edge, f in (("optimistic", band["lo_factor"]), ("expected", 1.0), ("pessimistic", band["hi_factor"])):
            if abs(f - band["factor"]) < 1e-12:
                edges[edge] = fleet
                continue
            esc = build.derive(fleet_sc, step_time_factor=f)
            edges[edge] = run_fleet(FleetTask(label=edge, scenario=esc, deployment=build.deployment(esc),
                                              min_delivery=st.min_delivery))
            sims += 1
    cost = build.fleet_cost(fleet_sc, output_tokens_per_s=out_tokens_per_s)
    pk = cost.packing
    chosen["verdict"] = "recommended"

    sensitivity: list[dict[str, Any]] = []
    if req.sensitivity:
        wl2 = scale_context(workload, CONTEXT_FACTOR)
        md = st.min_delivery
        tasks: list[Any] = [
            FleetTask(label=f"rate x{RATE_FACTOR:g}", deployment=dep, min_delivery=md,
                      scenario=build.derive(fleet_sc, rate_rps=rate * RATE_FACTOR)),
            FleetTask(label=f"context x{CONTEXT_FACTOR:g}", deployment=dep, min_delivery=md,
                      scenario=fleet_sc, context_factor=CONTEXT_FACTOR),
            FleetTask(label="one replica lost", deployment=dep, min_delivery=md,
                      scenario=build.derive(fleet_sc, faults=[{"at_s": dur / 4, "replica": 0,
                                                               "in_flight": "retry"}])),
            CandidateTask(key=f"context x{CONTEXT_FACTOR:g}:{chosen['key']}", deployment=dep, workload=wl2,
                          slo=slo, start_rps=chosen["analytic"]["saturation_rps"] / CONTEXT_FACTOR,
                          settings=st, scheduler=schedulers[chosen["key"]]),
        ]
        res = runner.map(run_task, tasks, on_done=lambda i, _: tick("sensitivity", i + 1, len(tasks)))
        sims += sum(1 for t in res[:3]) + res[3].simulations
        cap2 = res[3].capacity_rps
        need = {
            f"rate x{RATE_FACTOR:g}": size_replicas(
                peak_rate_rps=profile.peak_rate_rps * RATE_FACTOR,
                capacity_per_replica_rps=chosen["capacity_rps"], headroom=req.headroom,
                spares=req.spares).replicas,
            f"context x{CONTEXT_FACTOR:g}": (size_replicas(
                peak_rate_rps=profile.peak_rate_rps, capacity_per_replica_rps=cap2, headroom=req.headroom,
                spares=req.spares).replicas if cap2 > 0 else None),
            "one replica lost": replicas if res[2].slo_met else None,
        }
        for outcome in res[:3]:
            d = outcome.to_dict()
            d["replicas_needed"] = need[outcome.label]
            sensitivity.append(d)
        sensitivity[1]["capacity_per_replica_rps"] = cap2

    # Replicas added because the fleet missed the SLO carry load: they are active, and
    # the spare count stays the sizing policy's; utilization follows the active count.
    active = chosen["sizing"]["active_replicas"] + len(adjustments)
    util = chosen["sizing"]["utilization"] * chosen["sizing"]["active_replicas"] / active
    rec = Recommendation(**{
        "key": chosen["key"], "gpu": chosen["gpu"], "tp": chosen["tp"], "pp": chosen["pp"],
        "ep": chosen["ep"], "weight_dtype": chosen["weight_dtype"], "kv_dtype": chosen["kv_dtype"],
        "replicas": replicas, "active_replicas": active,
        "spare_replicas": replicas - active,
        "gpus_total": pk.billed_gpus, "nodes": pk.to_dict()["nodes"],
        "cost_per_hour": cost.cost_per_hour_usd,
        "cost_per_million_tokens": cost.cost_per_million_output_tokens_usd,
        "monthly_usd": cost.monthly_usd, "price_source": cost.price_source,
        "capacity_per_replica_rps": chosen["capacity_rps"], "peak_rate_rps": profile.peak_rate_rps,
        "utilization": util,
        "ttft_p95_s": fleet.ttft_p95_s, "tpot_p95_s": fleet.tpot_p95_s, "e2e_p95_s": fleet.e2e_p95_s,
        "delivery": fleet.delivery, "slo_met": fleet.slo_met, "slo_per_target": fleet.per_target,
        "warnings": list(chosen["sizing"]["warnings"]) + adjustments,
        "notes": chosen["notes"],
        # The validated fleet as a scenario: `servelab simulate --scenario` re-runs it exactly.
        "scenario": dump_scenario(fleet_sc),
        # the error band it was sized at, the GPU count at each edge, the headline
        **_band_summary(chosen, req, profile, replicas, cost.price_source, edges),
    })
    return {"recommendation": rec, "pareto": front, "fleet_validation": fleet.to_dict(),
            "sensitivity": sensitivity, "claims": _claims(rec, fleet, sensitivity, slo, rate),
            "_simulations": sims}


def _band_summary(chosen: dict[str, Any], req: Any, profile: Any, replicas: int,
                  price_source: str, edges: dict[str, Any]) -> dict[str, Any]:
    """The chosen candidate's error band, the GPU count at each edge of it and the headline.

    The plan was sized with step times × ``band.factor``. At another edge the step times
    scale by ``f_edge / factor``; the per-replica capacity is taken to scale inversely
    (an approximation: capacity at an SLO is not exactly proportional to step speed), and
    the replicas are re-sized with the same headroom and spares — not re-simulated. The
    recommended fleet itself is re-simulated at every edge (``edges``): its p95 latencies
    and whether it meets the SLO there are exact within the model."""
    band = chosen.get("band")
    g = chosen["tp"] * chosen["pp"]
    confidence = getattr(req, "confidence", "expected")
    if band is None:      # user calibration: its own efficiencies, no published band
        return {"band": None, "confidence": confidence, "calibrated": True,
                "gpus_by_confidence": None,
                "headline": f"{replicas} × {chosen['key']} · efficiencies from the calibration file · "
                            f"price: {price_source}"}
    counts = {}
    for edge, f in (("optimistic", band["lo_factor"]), ("expected", 1.0), ("pessimistic", band["hi_factor"])):
        cap = chosen["capacity_rps"] * band["factor"] / f
        counts[edge] = size_replicas(peak_rate_rps=profile.peak_rate_rps, capacity_per_replica_rps=cap,
                                     headroom=req.headroom, spares=req.spares).replicas * g
    status = (f"calibrated on {band['n_rows']} held-out rows ({band['key']})" if band["calibrated"]
              else f"UNCALIBRATED GPU for this kind ({band['key']}: fewer than 5 held-out rows; default band)")
    headline = (f"{replicas} × {chosen['key']} sized at the {confidence} edge of its band "
                f"(step times ×{band['lo_factor']:.2f}–×{band['hi_factor']:.2f}; GPUs optimistic "
                f"{counts['optimistic']} / expected {counts['expected']} / pessimistic {counts['pessimistic']}, "
                f"approximate) · {status} · price: {price_source}")
    fleet_edges = {e: {"ttft_p95_s": f.ttft_p95_s, "tpot_p95_s": f.tpot_p95_s, "slo_met": f.slo_met}
                   for e, f in edges.items()}
    if fleet_edges:
        headline += " · this fleet meets the SLO at the " + ", ".join(
            f"{e} edge: {'yes' if v['slo_met'] else 'NO'}" for e, v in fleet_edges.items())
    return {"band": band, "confidence": confidence, "calibrated": band["calibrated"],
            "gpus_by_confidence": counts, "fleet_at_band_edges": fleet_edges, "headline": headline}


def _no_plan_reason(rows: list[dict[str, Any]]) -> str:
    """Why there is no plan: simulated candidates all missed, or none was simulated."""
    if any("simulation" in r for r in rows):
        return "no candidate meets the SLO at any simulated rate"
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.get("verdict", "?")] = counts.get(r.get("verdict", "?"), 0) + 1
    parts = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    return (f"no candidate reached simulation ({parts or 'none enumerated'}): see step 4 for "
            f"each reason")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else (f"{x * 1e3:.0f} ms" if x < 1 else f"{x:.2f} s")


def _claims(rec: Recommendation, fleet: Any, sens: list[dict[str, Any]], slo: Any,
            rate: float) -> list[dict[str, Any]]:
    slo_text = slo.as_text() if hasattr(slo, "as_text") else str(slo)
    fleet_name = f"{rec.replicas} x {rec.key}"
    claims = [{
        "claim": f"{fleet_name} meets {slo_text} at {rate:g} req/s",
        "status": "supported (simulation)" if fleet.slo_met else "rejected (simulation)",
        "evidence": f"fleet simulation: p95 TTFT {_fmt(fleet.ttft_p95_s)}, p95 TPOT "
                    f"{_fmt(fleet.tpot_p95_s)}, delivery {fleet.delivery}",
    }]
    for s in sens:
        claims.append({
            "claim": f"{fleet_name} still meets {slo_text} with {s['label']}",
            "status": "supported (simulation)" if s["slo_met"] else "rejected (simulation)",
            "evidence": f"p95 TTFT {_fmt(s['ttft_p95_s'])}, p95 TPOT {_fmt(s['tpot_p95_s'])}, "
                        f"delivery {s['delivery']}; replicas needed: {s['replicas_needed']}",
        })
    if rec.weight_dtype not in ("bf16", "fp16") or rec.kv_dtype not in ("bf16", "fp16"):
        claims.append({
            "claim": f"{rec.weight_dtype} weights / {rec.kv_dtype} KV cache keep the model's quality",
            "status": "pending (needs measurement: quality evaluation of the quantized model)",
            "evidence": "none in servelab: the simulation models speed and memory only",
        })
    claims.append({
        "claim": f"the perf model's step times hold for {rec.gpu} TP{rec.tp}",
        "status": "pending (needs measurement: servelab bench against a real server on this GPU)",
        "evidence": "the roofline model's calibration error is stated in docs/perf.md",
    })
    return claims
