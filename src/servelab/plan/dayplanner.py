"""``plan_day``: the fleet-day plan of :mod:`.dayplan` for every pool of a fleet-day file.

Steps per pool: simulated replica capacity (the planner's search, pools in parallel),
Little's-law autoscaler target from one more simulation, hourly replicas, capacity mix,
then (optionally) simulations of ``sim_hours`` of the day for hourly SLO attainment
(:mod:`.dayrun`, sharded by pool and, for the schedule, by hour):

* ``schedule``: each hour as a fixed fleet of the plan's replicas for that hour (what a
  scheduled scaler that acts a lead time ahead runs), from a 300 s warm-up on the curve;
* ``autoscaler``: the hours in one run with the plan's HPA settings, after a warm-up of
  lead time + cooldown + 300 s (a simulation starts empty).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..errors import ConfigError
from .dayplan import (HOURS, PoolPlan, best_reserved, growth_within, hourly_demand, lead_time_s,
                      morning_ramp, replicas_per_hour, shared_reserved)
from .evaluate import CandidateTask, SearchSettings, base_requests, evaluate_candidate, scaled_requests, \
    simulate_replicas

__all__ = ["DayPlanResult", "plan_day", "day_scenario", "hourly_slo"]

Progress = Callable[[str, int, int], None]
SIM_MODES = ("both", "schedule", "autoscaler")
# A fixed fleet's hour starts 300 s earlier on the curve so its queues are in steady
# state when the hour begins (several request lifetimes of every shipped workload).
SCHEDULE_WARMUP_S = 300.0


@dataclass(kw_only=True)
class DayPlanResult:
    fleet: str
    pools: list[PoolPlan]
    totals: dict[str, float]
    sharing: dict[str, Any]
    prices: dict[str, Any]
    simulated_hours: float
    simulated_from_hour: int = 0
    warmup_s: float = 0.0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"fleet": self.fleet, "pools": [p.to_dict() for p in self.pools], "totals": self.totals,
                "sharing": self.sharing, "prices": self.prices, "simulated_hours": self.simulated_hours,
                "simulated_from_hour": self.simulated_from_hour, "warmup_s": self.warmup_s,
                "wall_s": self.wall_s, "notes": self.notes}


def _start_rps(sc: Any, dep: Any, workload: Any, slo: Any) -> float:
    """The analytic saturation rate of one replica (the capacity search's start)."""
    from ..catalog import generate_requests
    from .analytic import analyze
    from .characterize import characterize

    reqs = generate_requests(workload, rate_rps=1.0, num_requests=2000, seed=sc.seed)
    prof = characterize(reqs, workload_name=workload.name, arrival_kind=workload.arrival.kind,
                        burstiness=workload.arrival.burstiness, slo_targets=slo.targets,
                        duration_s=max(1.0, reqs[-1].arrival_s), window_s=10.0, percentile=99.0)
    tpot = [t.threshold_s for t in slo.targets if t.metric == "tpot"]
    a = analyze(dep, in_mean=prof.input_tokens.mean, in_p50=prof.input_tokens.p50,
                out_mean=prof.output_tokens.mean, ctx_p95=prof.context_tokens.p95,
                tpot_slo_s=min(tpot) if tpot else None, cached_fraction=prof.cacheable_token_fraction)
    if not a.feasible:
        raise ConfigError(f"{sc.model} on {sc.gpu} TP{sc.tp}: {a.reason}")
    return a.saturation_rps


def _choose_configuration(pool: Any, sc: Any, st: SearchSettings, *, executor: str,
                          jobs: int | None) -> tuple[Any, str]:
    """The planner's recommended GPU/TP/precisions for the pool at its curve's peak rate."""
    from ..scenario import build
    from .planner import plan
    from .request import PlanRequest

    peak = build.rate_curve(build.derive(sc, duration_s=HOURS * 3600.0)).peak_rps()
    flat = build.derive(sc, rate_curve=None, rate_rps=peak)
    s = pool.search
    res = plan(PlanRequest(scenario=flat, gpus=s.gpus, tps=s.tps, weight_dtypes=s.weight_dtypes, search=st,
                           heterogeneous=False, sensitivity=False, executor=executor, jobs=jobs,
                           fleet_duration_s=60.0))
    rec = res.recommendation
    if rec is None:
        raise ConfigError(f"pool {pool.name!r}: no configuration among GPUs {list(s.gpus)}, TP {list(s.tps)}, "
                          f"weights {list(s.weight_dtypes)} meets the SLO at the peak {peak:.3g} req/s")
    n = sum(r.get("verdict") in ("meets-slo", "recommended") for r in res.candidates)
    note = (f"configuration chosen by the planner at the peak {peak:.3g} req/s: {rec.key} "
            f"(cheapest of {n} candidates meeting the SLO)")
    return build.derive(sc, gpu=rec.gpu, tp=rec.tp, pp=rec.pp, ep=rec.ep, weight_dtype=rec.weight_dtype,
                        kv_dtype=rec.kv_dtype), note


def _curve_end_s(sc: Any) -> float:
    """Length of the scenario's whole rate curve (before its run window), s."""
    from ..catalog import ratecurve as rc

    c = sc.rate_curve
    if c.kind == "diurnal":
        return c.days * rc.DAY_S
    if c.kind == "table":
        return len(c.rates_rps) * c.step_s
    if c.kind == "points":
        return max(t for t, _ in c.points)
    counts, step = rc.read_counts_csv(c.file or "")
    return len(counts) * step


def _mean_e2e_s(dep: Any, workload: Any, scheduler: Any, rate: float, settings: SearchSettings) -> float:
    n = min(settings.max_requests, max(settings.min_requests, math.ceil(rate * settings.probe_duration_s)))
    base = base_requests(workload, num_requests=n, seed=settings.seed)
    res = simulate_replicas(dep, scaled_requests(base, rate), settings=settings, scheduler=scheduler)
    e2e = [r.finish_s - r.arrival_s for r in res.records if r.status == "ok" and r.finish_s is not None]
    return sum(e2e) / len(e2e) if e2e else 0.0


def day_scenario(sc: Any, *, start_h: float, hours: float, replicas: int,
                 autoscaler: dict[str, Any] | None, warmup_s: float = 0.0) -> Any:
    """The pool's scenario for ``hours`` of its day curve from hour ``start_h``, preceded by
    ``warmup_s`` of the curve (a simulation starts empty: without a warm-up the autoscaler's
    first polls see an idle fleet and scale it in just before the load arrives). A one-day
    diurnal curve is extended to two days so the warm-up before hour 0 is the previous evening."""
    from ..scenario import build

    curve = sc.rate_curve.model_dump(mode="json")
    start = curve.get("start_s", 0.0) + start_h * 3600.0 - warmup_s
    if start < 0:
        if curve["kind"] != "diurnal":
            raise ConfigError(f"a warm-up of {warmup_s:g} s before curve time {start + warmup_s:g} s needs a "
                              "diurnal curve (periodic); start later or use no warm-up")
        start += 86400.0 * math.ceil(-start / 86400.0)
    if curve["kind"] == "diurnal":
        curve["days"] = max(curve.get("days", 1.0), math.ceil((start + warmup_s + hours * 3600.0) / 86400.0))
    curve["start_s"] = start
    return build.derive(sc, duration_s=warmup_s + hours * 3600.0, replicas=replicas, autoscaler=autoscaler,
                        router="least-outstanding", rate_curve=curve)


def hourly_slo(records: Sequence[Any], slo: Any, hours: float, start_h: int = 0,
               warmup_s: float = 0.0) -> list[dict[str, Any]]:
    """Per hour of arrivals after ``warmup_s`` (labelled from ``start_h``): requests, delivery,
    p95 TTFT/TPOT and whether every SLO target was met with delivery >= 99 %."""
    from ..metrics import summarize

    buckets: list[list[Any]] = [[] for _ in range(max(1, math.ceil(hours - 1e-9)))]
    for r in records:
        h = math.floor((r.arrival_s - warmup_s) / 3600.0)
        if 0 <= h < len(buckets):
            buckets[h].append(r)
    out = []
    for h, recs in enumerate(buckets):
        if not recs:
            out.append({"hour": (start_h + h) % HOURS, "requests": 0, "slo_met": None})
            continue
        s = summarize(recs, slo=slo)
        met = s.get("slo_met") or {}
        out.append({"hour": (start_h + h) % HOURS, "requests": len(recs), "delivery": s.get("delivery"),
                    "ttft_p95_s": s["ttft_s"].get("p95"), "tpot_p95_s": s["tpot_s"].get("p95"),
                    "slo_met": all(v is True for v in met.values()) and (s.get("delivery") or 0) >= 0.99,
                    "targets": met})
    return out


def plan_day(fleet: Any, scenarios: Sequence[Any], *, settings: SearchSettings | None = None,
             sim_hours: float = 0.0, sim_start_h: int = 0, sim_mode: str = "both", executor: str = "local", jobs: int | None = None,
             progress: Progress | None = None) -> DayPlanResult:
    """The fleet-day plan (module docstrings of :mod:`.dayplan` and this module)."""
    from ..catalog import get_gpu
    from ..scenario import build
    from ..scenario.cost import pack_replicas
    from .dayrun import simulate_day
    from .executor import TaskRunner

    t0 = time.perf_counter()
    tick = progress or (lambda stage, done, total: None)
    st = settings or SearchSettings()
    auto = fleet.autoscaler
    pr = fleet.prices
    lead = lead_time_s(auto)
    warmup = lead + auto.cooldown_s + 300.0     # the fleet settles before the reported hours
    if sim_mode not in SIM_MODES:
        raise ConfigError(f"unknown simulation mode {sim_mode!r}; valid: {', '.join(SIM_MODES)}")
    if not 0 <= sim_hours <= HOURS or not 0 <= sim_start_h < HOURS:
        raise ConfigError(f"sim_hours must be in [0, {HOURS}] and sim_start_h in [0, {HOURS}), "
                          f"got {sim_hours} and {sim_start_h}")
    prep = []
    chosen: dict[str, str] = {}
    for pool, sc in zip(fleet.pools, scenarios):
        if pool.search is not None:
            tick(f"choose a configuration for {pool.name}", 0, 1)
            sc, chosen[pool.name] = _choose_configuration(pool, sc, st, executor=executor, jobs=jobs)
        whole = _curve_end_s(sc)
        if whole < sc.rate_curve.start_s + HOURS * 3600.0 - 1e-6:
            raise ConfigError(f"pool {pool.name!r}: its rate curve covers {whole:g} s from curve time "
                              f"{sc.rate_curve.start_s:g} s; a day plan needs {HOURS * 3600:g} s")
        day = build.derive(sc, duration_s=HOURS * 3600.0)
        curve = build.rate_curve(day)
        dep = build.deployment(sc)
        wl = build.workload(sc)
        slo = build.slo(sc)
        if not slo.targets:
            raise ConfigError(f"pool {pool.name!r}: no SLO (give the scenario an slo)")
        scheduler = build.replica_settings(sc, dep)
        prep.append((pool, sc, curve, dep, wl, slo, scheduler, _start_rps(sc, dep, wl, slo)))
    tick("capacity search", 0, len(prep))
    tasks = [CandidateTask(key=p.name, deployment=dep, workload=wl, slo=slo, start_rps=start, settings=st,
                           scheduler=scheduler) for p, _sc, _c, dep, wl, slo, scheduler, start in prep]
    with TaskRunner(executor, jobs) as runner:
        evals = runner.map(evaluate_candidate, tasks, on_done=lambda i, _r: tick("capacity search", i + 1, len(prep)))
    plans: list[PoolPlan] = []
    sim_pools: list[tuple[str, Any]] = []
    for (pool, sc, curve, dep, wl, slo, scheduler, _start), ev in zip(prep, evals):
        if ev.error or ev.capacity_rps <= 0:
            raise ConfigError(f"pool {pool.name!r}: no simulated rate meets the SLO {slo.as_text()} on "
                              f"{sc.model}/{sc.gpu}/TP{sc.tp} ({ev.error or 'capacity 0'})")
        c = ev.capacity_rps
        dem = hourly_demand(curve, lead_s=lead, cooldown_s=auto.cooldown_s)
        n = replicas_per_hour(dem.need_rps, capacity_rps=c, headroom=fleet.headroom, spares=fleet.spares)
        gpr = sc.tp * sc.pp
        max_node = get_gpu(sc.gpu).gpus_per_node

        def billed(k: int, gpr: int = gpr, max_node: int = max_node, sc: Any = sc) -> int:
            return pack_replicas(replicas=k, gpus_per_replica=gpr, node_sizes=sc.prices.node_sizes,
                                 max_node_gpus=max_node).billed_gpus if k > 0 else 0
        g = [billed(k) for k in n]
        p = build.price_per_gpu_hour(sc)
        flex = p * (pr.spot_fraction if pool.spot else 1.0)
        r_star, mix = best_reserved(n, reserved_price=billed(1) * pr.reserved_fraction * p,
                                    flex_price=billed(1) * flex)
        # cost in billed GPUs (packing can round replicas up to whole instances)
        mix = HOURS * billed(r_star) * pr.reserved_fraction * p + sum(
            max(0, billed(k) - billed(r_star)) for k in n) * flex
        costs = {"reserved_only": HOURS * billed(max(n)) * pr.reserved_fraction * p,
                 "on_demand_only": sum(g) * p, "mix": mix}
        growth = growth_within(curve, lead)
        c_t = c / (fleet.headroom * growth)
        w = _mean_e2e_s(dep, wl, scheduler, c_t, st)
        if not w > 0:
            raise ConfigError(f"pool {pool.name!r}: no request completed in the simulation at "
                              f"{c_t:.3g} req/s that measures the mean latency for the autoscaler target")
        target = c_t * w
        autoscaler = {"metric": "running", "target": round(target, 3), "min_replicas": max(1, r_star),
                      "max_replicas": max(n), "poll_interval_s": auto.poll_interval_s,
                      "provisioning_delay_s": auto.provisioning_delay_s,
                      "model_load_delay_s": auto.model_load_delay_s, "cooldown_s": auto.cooldown_s}
        ramp = morning_ramp(n)
        ramp_d = None
        if ramp is not None:
            first = ramp[0] * 3600.0 - lead
            ramp_d = {"first_hour": ramp[0], "last_hour": ramp[1], "from_replicas": n[ramp[0] - 1],
                      "to_replicas": n[ramp[1]], "request_first_scale_up_at_s": first % (HOURS * 3600.0),
                      "lead_time_s": lead}
        spot_replicas = max(0, max(n) - r_star) if pool.spot else 0
        concurrent_reclaims = spot_replicas * pr.spot_interruptions_per_month / 730.0 * lead / 3600.0
        idle = sum((k - m / c) * gpr for k, m in zip(n, dem.mean_rps))
        out_tok = sum(dem.requests) * wl.output_len.expected
        notes = [chosen[pool.name]] if pool.name in chosen else []
        if pool.spot:
            notes.append(f"spot above the reserved baseline: at most {spot_replicas} spot replicas, expected "
                         f"concurrent reclaims {concurrent_reclaims:.2g} (covered by {fleet.spares} spare)")
        plans.append(PoolPlan(
            name=pool.name, model=sc.model, gpu=sc.gpu,
            shape=f"TP{sc.tp}" + (f" PP{sc.pp}" if sc.pp > 1 else "") + f" {sc.weight_dtype}/kv-{sc.kv_dtype}",
            gpus_per_replica=gpr, priority=pool.priority, spot=pool.spot, capacity_rps=c,
            lead_time_s=lead, growth_in_lead=growth, replicas_per_hour=n, gpus_per_hour=g,
            mean_rps=list(dem.mean_rps), requests_per_day=sum(dem.requests), output_tokens_per_day=out_tok,
            on_demand_gpu_hour_usd=p, price_source=build.price_source(sc), reserved_replicas=r_star,
            costs_per_day_usd=costs,
            mix_detail={"reserved_gpus": billed(r_star), "flex": "spot" if pool.spot else "on-demand",
                        "flex_gpu_hours": sum(max(0, billed(k) - billed(r_star)) for k in n),
                        "concurrent_reclaims": concurrent_reclaims},
            autoscaler=autoscaler, gpu_hours_idle=idle, ramp=ramp_d, notes=notes))
        if sim_hours > 0 and sim_mode in ("autoscaler", "both"):
            sim_pools.append((pool.name, day_scenario(sc, start_h=sim_start_h, hours=sim_hours,
                                                      replicas=n[sim_start_h - 1], autoscaler=autoscaler,
                                                      warmup_s=warmup)))
        if sim_hours > 0 and sim_mode in ("schedule", "both"):
            for h in range(sim_start_h, sim_start_h + math.ceil(sim_hours - 1e-9)):
                sim_pools.append((f"{pool.name}@{h % HOURS:02d}", day_scenario(
                    sc, start_h=h, hours=min(1.0, sim_start_h + sim_hours - h), replicas=n[h % HOURS],
                    autoscaler=None, warmup_s=SCHEDULE_WARMUP_S)))
    if sim_pools:
        tick("simulate the day", 0, len(sim_pools))
        run = simulate_day(sim_pools, executor=executor, jobs=jobs,
                           on_done=lambda i, total: tick("simulate the day", i + 1, total))
        by_pool: dict[str, list[Any]] = {}
        for r in run.records:
            by_pool.setdefault(r.extra["pool"], []).append(r)
        for p, (_pool, sc, *_rest) in zip(plans, prep):
            slo_p = build.slo(sc)
            if sim_mode in ("autoscaler", "both"):
                p.hourly_sim["autoscaler"] = hourly_slo(by_pool.get(p.name, []), slo_p, sim_hours, sim_start_h,
                                                        warmup)
            if sim_mode in ("schedule", "both"):
                rows = []
                for h in range(sim_start_h, sim_start_h + math.ceil(sim_hours - 1e-9)):
                    key = f"{p.name}@{h % HOURS:02d}"
                    row = hourly_slo(by_pool.get(key, []), slo_p, 1.0, h % HOURS, SCHEDULE_WARMUP_S)[0]
                    rows.append({**row, "replicas": p.replicas_per_hour[h % HOURS]})
                p.hourly_sim["schedule"] = rows
    totals = {k: sum(p.costs_per_day_usd[k] for p in plans) for k in ("reserved_only", "on_demand_only", "mix")}
    tokens = sum(p.output_tokens_per_day for p in plans)
    totals.update({"output_tokens_per_day": tokens, "requests_per_day": sum(p.requests_per_day for p in plans),
                   "mix_per_million_tokens_usd": totals["mix"] / (tokens / 1e6) if tokens else math.inf,
                   "gpu_hours_idle": sum(p.gpu_hours_idle for p in plans),
                   "gpu_hours_provisioned": sum(sum(p.gpus_per_hour) for p in plans)})
    sharing = shared_reserved(plans, reserved_fraction=pr.reserved_fraction, spot_fraction=pr.spot_fraction)
    return DayPlanResult(fleet=fleet.name, pools=plans, totals=totals, sharing=sharing,
                         prices=pr.model_dump(), simulated_hours=sim_hours,
                         simulated_from_hour=sim_start_h, warmup_s=warmup if sim_pools else 0.0, wall_s=time.perf_counter() - t0)
