"""Step 12: heterogeneous pools — long prompts on one pool, short on another.

The router splits requests by input length at a threshold T (the workload's p90 input
length, rounded up to a multiple of 64 tokens). Each pool serves a thinned stream of
the workload's arrivals (fraction f_long = P(input ≥ T), and 1 − f_long) and is sized
like a single pool (step 10, its own N+1 spare) at ``peak × fraction``. For the two
cheapest single-pool candidates, the per-replica SLO capacity on each pool's own
requests is searched by simulation (step 9) — the two in the recommendation's order
(cost, then p95 TTFT, then key). The best mix is the cheapest pool pair;
it "beats" the single pool when its $/hour is strictly lower than the best single
pool's.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from ..catalog import generate_requests
from ..scenario import build
from .evaluate import CandidateTask, evaluate_candidate
from .sizing import size_replicas

__all__ = ["plan_heterogeneous", "split_threshold"]

TOP_CANDIDATES = 2
MIN_FRACTION = 0.02   # a pool with fewer requests than this is not worth a spare replica


def split_threshold(p90_input_tokens: float) -> int:
    """The length threshold T: p90 input tokens rounded up to a multiple of 64."""
    return max(64, int(math.ceil(p90_input_tokens / 64.0)) * 64)


def plan_heterogeneous(*, req: Any, workload: Any, slo: Any, profile: Any,
                       evaluated: list[dict[str, Any]], deps: dict[str, Any],
                       gpus: dict[str, Any], runner: Any, schedulers: dict[str, Any],
                       scenarios: dict[str, Any],
                       tick: Callable[[str, int, int], None]) -> dict[str, Any]:
    """Plan a two-pool split; the result says whether it beats the best single pool."""
    if not evaluated:
        return {"applicable": False, "reason": "no single-pool candidate met the SLO", "_simulations": 0}
    thr = split_threshold(profile.input_tokens.p90)
    sample = generate_requests(workload, rate_rps=1.0, num_requests=5000, seed=req.search.seed)
    f_long = sum(r.input_tokens >= thr for r in sample) / len(sample)
    if not MIN_FRACTION <= f_long <= 1 - MIN_FRACTION:
        return {"applicable": False, "threshold_tokens": thr, "long_fraction": f_long,
                "reason": f"only {f_long:.1%} of requests are >= {thr} tokens", "_simulations": 0}
    def rank(r: dict[str, Any]) -> tuple[float, float, str]:   # the recommendation's order
        t = r.get("ttft_p95_s")
        return (r["cost"]["cost_per_hour_usd"], t if t is not None else math.inf, r["key"])
    top = sorted(evaluated, key=rank)[:TOP_CANDIDATES]
    pools = {"short": ((0, thr), 1.0 - f_long), "long": ((thr, 1 << 30), f_long)}
    peak = profile.peak_rate_rps
    tasks, meta = [], []
    for pool, (flt, frac) in pools.items():
        for r in top:
            tasks.append(CandidateTask(key=f"{pool}:{r['key']}", deployment=deps[r["key"]],
                                       workload=workload, slo=slo,
                                       start_rps=r["analytic"]["saturation_rps"], settings=req.search,
                                       input_filter=flt, scheduler=schedulers[r["key"]]))
            meta.append((pool, frac, r))
    results = runner.map(evaluate_candidate, tasks,
                         on_done=lambda i, _: tick("heterogeneous pools", i + 1, len(tasks)))
    options: dict[str, list[dict[str, Any]]] = {"short": [], "long": []}
    sims = 0
    out_mean = {"short": None, "long": None}
    lens = {"short": [r.output_tokens for r in sample if r.input_tokens < thr],
            "long": [r.output_tokens for r in sample if r.input_tokens >= thr]}
    for pool in out_mean:
        out_mean[pool] = sum(lens[pool]) / max(1, len(lens[pool]))
    for (pool, frac, r), ev in zip(meta, results):
        sims += ev.simulations
        opt: dict[str, Any] = {"key": r["key"], "capacity_rps": ev.capacity_rps, "error": ev.error}
        if ev.capacity_rps > 0:
            sz = size_replicas(peak_rate_rps=peak * frac, capacity_per_replica_rps=ev.capacity_rps,
                               headroom=req.headroom, spares=req.spares)
            c = build.fleet_cost(scenarios[r["key"]], replicas=sz.replicas,
                                 output_tokens_per_s=profile.mean_rate_rps * frac * out_mean[pool])
            opt.update(replicas=sz.replicas, gpus=c.packing.billed_gpus, cost_per_hour_usd=c.cost_per_hour_usd)
        options[pool].append(opt)
    best_single = min(r["cost"]["cost_per_hour_usd"] for r in evaluated)
    chosen = {p: min((o for o in opts if "cost_per_hour_usd" in o),
                     key=lambda o: (o["cost_per_hour_usd"], o["key"]), default=None)
              for p, opts in options.items()}
    result: dict[str, Any] = {"applicable": True, "threshold_tokens": thr, "long_fraction": f_long,
                              "options": options, "best_single_cost_per_hour_usd": best_single,
                              "_simulations": sims}
    if chosen["short"] is None or chosen["long"] is None:
        result.update(mix=None, beats_single=False,
                      verdict="no SLO-meeting configuration for one of the pools")
        return result
    mix_cost = chosen["short"]["cost_per_hour_usd"] + chosen["long"]["cost_per_hour_usd"]
    beats = mix_cost < best_single - 1e-9
    result.update(mix={"short": chosen["short"], "long": chosen["long"], "cost_per_hour_usd": mix_cost},
                  beats_single=beats,
                  verdict=(f"the two-pool mix (${mix_cost:.2f}/h) beats the best single pool "
                           f"(${best_single:.2f}/h) by {1 - mix_cost / best_single:.0%}" if beats else
                           f"the best single pool (${best_single:.2f}/h) is not beaten by the mix "
                           f"(${mix_cost:.2f}/h)" + (": each pool needs its own spare replica"
                                                     if req.spares > 0 else "")))
    return result
