"""The fleet planner: the 13 steps in order, returning a typed :class:`~.result.PlanResult`.

Steps (docs/plan.md has the equations and sources):

1. characterize the workload (:mod:`.characterize`);
2–3. weight bytes per weight dtype, KV bytes per token per KV dtype (perf model);
4. enumerate candidates and screen them (:mod:`.candidates`);
5–8. memory budget, roofline and latency–throughput curve per candidate
   (:mod:`.analytic`), quantization comparisons, and an analytic pre-screen: a
   candidate whose batch-1 decode step already exceeds the TPOT target, or whose lone
   median prompt exceeds the TTFT target, cannot meet the SLO at any rate;
9. simulated per-replica SLO capacity (:mod:`.evaluate`) in fixed-size waves ordered by
   a cost lower bound; a candidate whose lower bound exceeds ``prune_factor`` × the best
   cost found is not simulated (branch and bound; deterministic for any ``jobs``);
10. replicas with headroom and N+1 (:mod:`.sizing`); 11. cost (:mod:`servelab.scenario.cost`);
12. heterogeneous pools (:mod:`.hetero`); 13. Pareto front, chosen plan validated by a
   fleet simulation, sensitivity and claims (:mod:`.recommend`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..catalog import generate_requests, get_gpu, get_workload, list_gpus
from ..errors import ConfigError
from ..perf import Deployment, get_engine
from ..scenario import build, dump_scenario
from ..perf.memory import kv_bytes_per_token, weight_bytes_total
from ..perf.quant import KV_DTYPES
from .analytic import analyze
from .candidates import enumerate_candidates, screen_candidate
from .characterize import characterize
from ..perf.band import confidence_factor
from ..scenario.cost import pack_replicas
from .evaluate import CandidateTask, evaluate_candidate
from .executor import TaskRunner
from .hetero import plan_heterogeneous
from .recommend import recommend
from .request import PlanRequest, base_scenario
from .result import PlanResult, PlanSteps
from .sizing import size_replicas

__all__ = ["plan", "Progress", "default_kv_dtypes"]

Progress = Callable[[str, int, int], None]


def default_kv_dtypes(weight_dtypes: tuple[str, ...]) -> tuple[str, ...]:
    """KV dtypes when none are given: the weight dtypes that are also KV dtypes; a list
    of weight-only formats (int8, int4) keeps the KV cache in bf16, as vLLM's
    ``kv_cache_dtype="auto"`` keeps it in the model dtype for AWQ/GPTQ checkpoints."""
    return tuple(w for w in weight_dtypes if w in KV_DTYPES) or ("bf16",)


def _slo_threshold(slo: Any, metric: str) -> float | None:
    vals = [t.threshold_s for t in slo.targets if t.metric == metric]
    return min(vals) if vals else None


def _cost_lower_bound(row: dict[str, Any], gpu: Any, req: PlanRequest, peak: float, slack: float,
                      base: Any) -> float:
    """$/h of the fewest replicas that could carry the peak if a replica sustained
    ``slack`` × its analytic saturation rate (the branch-and-bound bound of step 9)."""
    ub = row["analytic"]["saturation_rps"] * slack
    active = max(1, math.ceil(round(peak * req.headroom / ub, 9)))
    pk = pack_replicas(replicas=active + req.spares, gpus_per_replica=row["num_gpus"],
                       node_sizes=base.prices.node_sizes, max_node_gpus=gpu.gpus_per_node)
    return pk.billed_gpus * (base.prices.gpu_hour_usd or gpu.price_per_hour_usd)


def _auto_pps(weights: dict[str, float], gpus: list[Any]) -> tuple[int, ...]:
    """PP 1, plus PP 2 (two nodes per replica) when the smallest weights exceed the usable
    memory (90 %) of one whole node of some GPU considered."""
    smallest = min(weights.values())
    if any(smallest > 0.9 * g.memory_bytes * g.gpus_per_node for g in gpus):
        return (1, 2)
    return (1,)


def _quantization(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Step 7: each quantized candidate against its bf16/bf16 twin (same GPU and parallelism)."""
    by_shape = {(r["gpu"], r["tp"], r["pp"], r["ep"], r["weight_dtype"], r["kv_dtype"]): r for r in rows}
    out = []
    for r in rows:
        if (r["weight_dtype"], r["kv_dtype"]) == ("bf16", "bf16") or not r.get("analytic"):
            continue
        base = by_shape.get((r["gpu"], r["tp"], r["pp"], r["ep"], "bf16", "bf16"))
        if not base or not base.get("analytic"):
            continue
        a, b = r["analytic"], base["analytic"]

        def ratio(x: float | None, y: float | None) -> float | None:
            return (x / y) if x and y else None
        out.append({
            "key": r["key"], "baseline": base["key"],
            "weight_bytes_ratio": ratio(a["weight_bytes_model"], b["weight_bytes_model"]),
            "kv_capacity_ratio": ratio(a["kv_capacity_tokens"], b["kv_capacity_tokens"]),
            "decode_step_b1_ratio": ratio(a["decode_step_b1_s"], b["decode_step_b1_s"]),
            "saturation_ratio": ratio(a["saturation_rps"], b["saturation_rps"]),
            "status": "pending (needs quality evidence: accuracy of the quantized model)",
        })
    return out


def _step_tables(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Compact per-candidate views of steps 5, 6, 8, 10 and 11 (details stay in ``candidates``)."""
    mem, roof, op, sizing, cost = {}, {}, {}, {}, {}
    for r in rows:
        a = r.get("analytic")
        if a and a.get("feasible"):
            mem[r["key"]] = {**a["memory"], "kv_capacity_tokens": a["kv_capacity_tokens"],
                             "max_concurrency_mean_ctx": a["max_concurrency_mean_ctx"],
                             "max_concurrency_p95_ctx": a["max_concurrency_p95_ctx"]}
            last = a["curve"][-1] if a["curve"] else {}
            roof[r["key"]] = {"ridge_flop_per_byte": a["ridge_flop_per_byte"],
                              "prefill_s": a["prefill_s"], "prefill_bound": a["prefill_bound"],
                              "decode_step_b1_s": a["decode_step_b1_s"],
                              "decode_bound_at_max_batch": last.get("bound"),
                              "compute_dtype": a["compute_dtype"]}
            op[r["key"]] = {"slo_batch": a["slo_batch"], "slo_rate_rps": a["slo_rate_rps"],
                            "saturation_rps": a["saturation_rps"]}
        if "sizing" in r:
            sizing[r["key"]] = r["sizing"]
            cost[r["key"]] = r["cost"]
    return {"memory": mem, "roofline": roof, "operating_point": op, "replicas": sizing, "cost": cost}


@dataclass(kw_only=True)
class _Screened:
    """Steps 4–8 for every candidate: rows (all of them), and for the viable ones their
    deployment, one-replica scenario and simulator settings."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    deps: dict[str, Deployment] = field(default_factory=dict)
    scens: dict[str, Any] = field(default_factory=dict)
    schedulers: dict[str, Any] = field(default_factory=dict)
    calibrated: list[str] = field(default_factory=list)


def _screen(cands: list[Any], *, req: PlanRequest, base: Any, model: Any, prof: Any, slo: Any,
            gpu_by_name: dict[str, Any], peak: float, tick: Progress) -> _Screened:
    """Memory, roofline and analytic pre-screen of each candidate (steps 5–8; module docstring)."""
    out = _Screened()
    rows, deps, scens, schedulers, calibrated = out.rows, out.deps, out.scens, out.schedulers, out.calibrated
    tpot_thr, ttft_thr = _slo_threshold(slo, "tpot"), _slo_threshold(slo, "ttft")
    for i, c in enumerate(cands):
        tick("analytic model", i, len(cands))
        gpu = gpu_by_name[c.gpu]
        row: dict[str, Any] = {**c.to_dict(), "verdict": "", "reason": "", "notes": []}
        rows.append(row)
        scr = screen_candidate(c, model=model, gpu=gpu)
        row["notes"] = list(scr.notes)
        if not scr.feasible:
            row.update(verdict="infeasible", reason=scr.reason)
            continue
        use_cal = req.calibration is not None and c.gpu == req.calibration_gpu
        # size at the requested edge of the published-residual band (servelab.perf.band);
        # a user calibration replaces the model's efficiencies and carries no such band
        band = None if use_cal else confidence_factor(gpu, get_engine(base.engine.profile).name,
                                                      moe=model.moe is not None, confidence=req.confidence)
        try:
            csc = build.derive(base, gpu=c.gpu, tp=c.tp, pp=c.pp, ep=c.ep, weight_dtype=c.weight_dtype,
                               kv_dtype=c.kv_dtype, calibration=base.calibration if use_cal else None,
                               step_time_factor=band["factor"] if band else 1.0)
            dep = build.deployment(csc, cal=None)
        except ConfigError as exc:
            row.update(verdict="infeasible", reason=str(exc))
            continue
        if use_cal:
            dep = dataclasses.replace(dep, efficiency=req.calibration)
            row["notes"] = row["notes"] + [
                f"efficiency from the calibration file (fitted on {req.calibration_gpu})"]
            calibrated.append(c.key)
        else:
            row["band"] = band
        try:
            a = analyze(dep, in_mean=prof.input_tokens.mean, in_p50=prof.input_tokens.p50,
                        out_mean=prof.output_tokens.mean, ctx_p95=prof.context_tokens.p95,
                        tpot_slo_s=tpot_thr, cached_fraction=prof.cacheable_token_fraction)
        except ConfigError as exc:
            row.update(verdict="infeasible", reason=str(exc))
            continue
        row["notes"] = sorted(set(row["notes"]) | set(a.notes))
        row["analytic"] = a.to_dict()
        if not a.feasible:
            row.update(verdict="infeasible", reason=a.reason)
            continue
        if tpot_thr is not None and a.decode_step_b1_s > tpot_thr:
            row.update(verdict="hopeless", reason=f"a decode step at batch 1 takes "
                       f"{a.decode_step_b1_s * 1e3:.1f} ms > TPOT target {tpot_thr * 1e3:.0f} ms")
            continue
        if ttft_thr is not None and a.prefill_s > ttft_thr:
            row.update(verdict="hopeless", reason=f"a lone median prompt takes {a.prefill_s:.2f} s "
                       f"to prefill > TTFT target {ttft_thr:.2f} s")
            continue
        row["cost_lower_bound_per_hour"] = _cost_lower_bound(row, gpu, req, peak, req.ub_slack, base)
        deps[c.key] = dep
        scens[c.key] = csc
        schedulers[c.key] = build.replica_settings(csc, dep)
    tick("analytic model", len(cands), len(cands))
    return out


def _simulate_waves(viable: list[dict[str, Any]], *, runner: Any, req: PlanRequest, scr: _Screened,
                    workload: Any, slo: Any, peak: float, out_tokens_per_s: float,
                    gpu_by_name: dict[str, Any], base: Any, tick: Progress) -> tuple[list[dict[str, Any]], int, float]:
    """Steps 9–11: simulated SLO capacity in waves ordered by the cost lower bound, branch
    and bound on cost; replicas and cost of each candidate that meets the SLO. Returns the
    evaluated rows, the number of simulations and the final upper-bound slack."""
    st = req.search
    deps, scens, schedulers = scr.deps, scr.scens, scr.schedulers
    best = math.inf
    n_sims = 0
    evaluated: list[dict[str, Any]] = []
    queue = list(viable)
    done_count = 0
    slack = req.ub_slack
    while queue:
        # The bound's slack grows with the largest simulated/analytic capacity ratio
        # seen so far (x 1.1), so a workload the analytic rate underestimates
        # (e.g. heavy prefix reuse) cannot prune a candidate that would win.
        for r in queue:
            r["cost_lower_bound_per_hour"] = _cost_lower_bound(r, gpu_by_name[r["gpu"]], req, peak, slack, base)
        queue.sort(key=lambda r: (r["cost_lower_bound_per_hour"], r["key"]))
        wave: list[dict[str, Any]] = []
        while queue and len(wave) < req.wave_size:
            r = queue.pop(0)
            if r["cost_lower_bound_per_hour"] > req.prune_factor * best:
                r.update(verdict="pruned", reason=(
                    f"cost lower bound ${r['cost_lower_bound_per_hour']:.2f}/h exceeds "
                    f"{req.prune_factor:g} x the best simulated plan (${best:.2f}/h)"))
                done_count += 1
                continue
            wave.append(r)
        if not wave:
            continue
        tasks = [CandidateTask(key=r["key"], deployment=deps[r["key"]], workload=workload,
                               slo=slo, start_rps=r["analytic"]["saturation_rps"], settings=st,
                               peak_rate_rps=peak, headroom=req.headroom, scheduler=schedulers[r["key"]])
                 for r in wave]

        def _done(i: int, res: Any, base: int = done_count) -> None:
            tick("simulate candidates", base + i + 1, len(viable))
        results = runner.map(evaluate_candidate, tasks, on_done=_done)
        done_count += len(wave)
        tick("simulate candidates", done_count, len(viable))
        for r, ev in zip(wave, results):
            n_sims += ev.simulations
            r["simulation"] = ev.to_dict()
            if ev.error:
                r.update(verdict="error", reason=ev.error)
                continue
            if ev.capacity_rps <= 0:
                low = min((p["rate_rps"] for p in r["simulation"]["probes"]), default=st.min_rps)
                r.update(verdict="no-capacity", reason=(
                    f"no simulated rate down to {low:.3g} req/s meets the SLO"))
                continue
            a = r["analytic"]
            gpu = gpu_by_name[r["gpu"]]
            sz = size_replicas(peak_rate_rps=peak, capacity_per_replica_rps=ev.capacity_rps,
                               headroom=req.headroom, spares=req.spares,
                               saturation_rate_rps=a["saturation_rps"])
            cost = build.fleet_cost(scens[r["key"]], output_tokens_per_s=out_tokens_per_s,
                                    replicas=sz.replicas)
            op = ev.operating
            if not math.isfinite(ev.upper_rps):
                r["notes"] = r["notes"] + [f"capacity search reached its cap ({st.max_gallop_up:g} x the "
                                           "analytic rate): the capacity is a lower bound"]
            r.update(verdict="meets-slo", reason="", capacity_rps=ev.capacity_rps,
                     sizing=sz.to_dict(), cost=cost.to_dict(),
                     ttft_p95_s=op.ttft_p95_s if op else None,
                     tpot_p95_s=op.tpot_p95_s if op else None,
                     operating_rate_rps=op.rate_rps if op else None)
            evaluated.append(r)
            best = min(best, cost.cost_per_hour_usd)
            slack = max(slack, 1.1 * ev.capacity_rps / a["saturation_rps"])

    return evaluated, n_sims, slack


def plan(req: PlanRequest, *, progress: Progress | None = None) -> PlanResult:
    """Run the 13 steps for ``req``; see the module docstring."""
    t_start = time.perf_counter()
    tick = progress or (lambda stage, done, total: None)
    base = base_scenario(req)
    model = build.load_model(base.model)
    wl0 = get_workload(base.workload)
    rate = build.rate_rps(base)
    if rate <= 0:
        raise ConfigError(f"rate must be > 0 req/s, got {rate}")
    slo = build.slo(base)
    if not slo.targets:
        raise ConfigError(f"no SLO given and workload {wl0.name!r} has none; pass e.g. "
                          "--slo ttft_p95=2s,tpot_p95=50ms")
    workload = build.workload(base)
    st = req.search
    engine = get_engine(base.engine.profile)
    if req.calibration is not None and not req.calibration_gpu:
        raise ConfigError("a calibration needs the GPU it was fitted on (calibration_gpu) to "
                          "know which candidates it describes")

    # 1. characterize
    tick("characterize", 0, 1)
    reqs = generate_requests(workload, rate_rps=rate, duration_s=req.characterize_s, seed=st.seed)
    prof = characterize(reqs, workload_name=workload.name, arrival_kind=workload.arrival.kind,
                        burstiness=workload.arrival.burstiness, slo_targets=slo.targets,
                        duration_s=req.characterize_s, window_s=req.peak_window_s,
                        percentile=req.peak_percentile)
    peak = prof.peak_rate_rps
    out_tokens_per_s = rate * prof.output_tokens.mean
    tick("characterize", 1, 1)

    # 2-3. footprints
    kv_dtypes = req.kv_dtypes or default_kv_dtypes(req.weight_dtypes)
    weights = {w: weight_bytes_total(model, w) for w in req.weight_dtypes}
    kv = {k: kv_bytes_per_token(model, k) for k in kv_dtypes}

    # 4-8. candidates, screening, analytic model
    gpus = list({g.name: g for g in (get_gpu(n) for n in req.gpus)}.values()) if req.gpus else list_gpus()
    gpu_by_name = {g.name: g for g in gpus}
    pps = req.pps or _auto_pps(weights, gpus)
    cands = enumerate_candidates(model=model, gpus=gpus, weight_dtypes=req.weight_dtypes,
                                 kv_dtypes=kv_dtypes, tps=req.tps, pps=pps)
    scr = _screen(cands, req=req, base=base, model=model, prof=prof, slo=slo, gpu_by_name=gpu_by_name,
                  peak=peak, tick=tick)
    rows, deps, scens, schedulers, calibrated = scr.rows, scr.deps, scr.scens, scr.schedulers, scr.calibrated

    # 9-11. simulate in waves ordered by the cost lower bound
    viable = sorted((r for r in rows if r["key"] in deps),
                    key=lambda r: (r["cost_lower_bound_per_hour"], r["key"]))
    with TaskRunner(req.executor, req.jobs) as runner:
        evaluated, n_sims, slack = _simulate_waves(
            viable, runner=runner, req=req, scr=scr, workload=workload, slo=slo, peak=peak,
            out_tokens_per_s=out_tokens_per_s, gpu_by_name=gpu_by_name, base=base, tick=tick)

        # 12. heterogeneous pools; 13. recommendation (both simulate, through the runner)
        hetero = plan_heterogeneous(req=req, workload=workload, slo=slo, profile=prof,
                                    evaluated=evaluated, deps=deps, gpus=gpu_by_name, schedulers=schedulers,
                                    scenarios=scens,
                                    runner=runner, tick=tick) if req.heterogeneous else \
            {"applicable": False, "reason": "disabled"}
        rec = recommend(req=req, workload=workload, slo=slo, profile=prof, evaluated=evaluated,
                        deps=deps, scenarios=scens, schedulers=schedulers, rows=rows, runner=runner,
                        tick=tick, rate=rate,
                        out_tokens_per_s=out_tokens_per_s, gpus=gpu_by_name)
        n_sims += rec.pop("_simulations", 0) + hetero.pop("_simulations", 0)

    rows.sort(key=lambda r: r["key"])
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    steps_tables = _step_tables(rows)
    return PlanResult(
        inputs={"model": model.name, "workload": workload.name, "rate_rps": rate,
                "engine": engine.name, "engine_profile": engine.to_dict(),
                "confidence": req.confidence,
                "calibration": None if req.calibration is None else {
                    **(req.calibration_info or {}), "gpu": req.calibration_gpu,
                    "rule": (f"calibrated efficiency applied to candidates on "
                             f"{req.calibration_gpu} only; candidates on other GPUs use the "
                             f"{engine.name} engine profile"),
                    "applied_to": calibrated},
                "slo": slo.as_text() if hasattr(slo, "as_text") else str(slo),
                "gpus": [g.name for g in gpus], "weight_dtypes": list(req.weight_dtypes),
                "kv_dtypes": list(kv_dtypes), "tps": list(req.tps), "pps": list(pps),
                "headroom": req.headroom, "spares": req.spares, "node_sizes": list(base.prices.node_sizes),
                "seed": st.seed, "search": dataclasses.asdict(st), "prune_factor": req.prune_factor,
                "ub_slack": req.ub_slack, "ub_slack_final": slack,
                "scenario": dump_scenario(base)},
        recommendation=rec["recommendation"],
        candidates=rows,
        steps=PlanSteps(
            characterize=prof.to_dict(),
            weights={w: {"weight_bytes": b} for w, b in weights.items()},
            kv_cache={k: {"kv_bytes_per_token": b} for k, b in kv.items()},
            candidates={"total": len(rows), "by_verdict_before_simulation": {
                "infeasible": sum(r["verdict"] == "infeasible" for r in rows),
                "hopeless": sum(r["verdict"] == "hopeless" for r in rows),
                "viable": len(viable)}},
            memory=steps_tables["memory"], roofline=steps_tables["roofline"],
            quantization=_quantization(rows), operating_point=steps_tables["operating_point"],
            search={"simulated_candidates": sum("simulation" in r for r in rows),
                    "simulations": n_sims, "verdicts": counts},
            replicas=steps_tables["replicas"], cost=steps_tables["cost"],
            heterogeneous=hetero,
            recommendation={k: v for k, v in rec.items() if k != "recommendation"}),
        wall_s=time.perf_counter() - t_start,
    )
