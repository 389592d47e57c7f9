"""Step 9 for one candidate: simulated per-replica SLO capacity (runs in a worker).

For a candidate replica, one request list of ``max_requests`` requests is drawn once
from the workload at 1 req/s (seeded): arrivals, lengths, shared prefixes. A probe at
rate r replays the first ``n(r) = clamp(r · probe_duration_s, min_requests,
max_requests)`` of them with arrival times divided by r, through one simulated replica
(``servelab.sim``): the same requests at every rate, a window of about
``probe_duration_s`` seconds — several request lifetimes, so a rate the replica cannot
sustain shows as a growing queue rather than hiding in a short transient. A probe
passes when every SLO percentile target is met (``metrics.summarize(...)["slo_met"]``)
over all requests AND over the last quarter of arrivals (a queue still growing at the
end of a finite run fails there: steady state, not the empty start, decides), and at
least ``min_delivery`` of the requests completed. The arrival process —
Poisson or gamma bursts — is the workload's own, so bursts are part of every probe.

:func:`servelab.plan.capacity.search_capacity` brackets the highest passing rate
starting from the analytic saturation rate (SLO-independent), and one last probe at
the candidate's sized operating load (peak rate / active replicas, step 10) gives the
p95 latencies reported for it. Every probe's TTFT/TPOT percentiles are kept: they are the
simulated latency–throughput curve of the candidate.

Inputs and outputs are plain frozen dataclasses (picklable for process pools and Ray).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

from .capacity import search_capacity
from .sizing import size_replicas

__all__ = ["SearchSettings", "CandidateTask", "Probe", "CandidateEval", "evaluate_candidate", "base_requests",
           "scaled_requests", "simulate_replicas", "probe_summary"]


@dataclass(frozen=True, kw_only=True)
class SearchSettings:
    probe_duration_s: float = 45.0 # arrivals per probe span this long (within the bounds below)
    min_requests: int = 400        # requests per probe, at least (the same list's prefix)
    max_requests: int = 3000       # and at most
    seed: int = 0
    rel_tol: float = 0.08          # bisection stops when hi/lo <= 1 + rel_tol
    gallop_factor: float = 1.3
    max_evals: int = 14
    max_gallop_up: float = 10.0    # the search may rise to this × the analytic start rate
    min_rps: float = 0.02
    min_delivery: float = 0.99
    max_num_seqs: int = 256        # engine limits (vLLM defaults)
    max_num_batched_tokens: int = 8192


@dataclass(frozen=True, kw_only=True)
class CandidateTask:
    key: str
    deployment: Any                # perf.Deployment
    workload: Any                  # catalog.Workload
    slo: Any                       # catalog.SLO
    start_rps: float               # analytic saturation rate
    settings: SearchSettings
    peak_rate_rps: float | None = None   # fleet peak: sets the operating load per replica
    headroom: float = 1.1
    input_filter: tuple[int, int] | None = None   # keep requests with lo <= input < hi
    scheduler: Any = None          # sim.SchedulerConfig of the replica (scenario.build.replica_settings)


@dataclass(frozen=True, kw_only=True)
class Probe:
    rate_rps: float
    passed: bool
    ttft_p95_s: float | None
    tpot_p95_s: float | None
    e2e_p95_s: float | None
    delivery: float | None
    output_tokens_per_s: float | None


@dataclass(frozen=True, kw_only=True)
class CandidateEval:
    key: str
    capacity_rps: float
    upper_rps: float
    probes: tuple[Probe, ...] = ()
    operating: Probe | None = None
    simulations: int = 0
    wall_s: float = 0.0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["upper_rps"] = self.upper_rps if math.isfinite(self.upper_rps) else None
        return d


def scaled_requests(base: Sequence[Any], rate_rps: float) -> list[Any]:
    """``base`` (drawn at 1 req/s) with arrival times divided by ``rate_rps``."""
    return [dataclasses.replace(r, arrival_s=r.arrival_s / rate_rps) for r in base]


def base_requests(workload: Any, *, num_requests: int, seed: int,
                  input_filter: tuple[int, int] | None = None) -> list[Any]:
    """``num_requests`` requests of ``workload`` at 1 req/s; with ``input_filter`` the
    thinned stream of requests whose input length is in ``[lo, hi)`` (rescaled to 1 req/s)."""
    from ..catalog import generate_requests

    if input_filter is None:
        return generate_requests(workload, rate_rps=1.0, num_requests=num_requests, seed=seed)
    lo, hi = input_filter
    pool = generate_requests(workload, rate_rps=1.0, num_requests=num_requests * 20, seed=seed)
    kept = [r for r in pool if lo <= r.input_tokens < hi]
    if not kept:
        return []
    frac = len(kept) / len(pool)
    kept = kept[:num_requests]
    return [dataclasses.replace(r, arrival_s=r.arrival_s * frac) for r in kept]


def simulate_replicas(dep: Any, requests: Sequence[Any], *, settings: SearchSettings, count: int = 1,
                      router: str = "least_outstanding", faults: Sequence[Any] = (),
                      seed: int | None = None, scheduler: Any = None) -> Any:
    """One simulation of ``count`` identical replicas of ``dep`` run with ``scheduler``
    (``sim.SchedulerConfig``; default: the search settings' limits); returns the SimResult."""
    from ..sim import SchedulerConfig, ReplicaSpec, SimConfig, simulate

    if scheduler is None:
        scheduler = SchedulerConfig(max_num_seqs=settings.max_num_seqs,
                              max_num_batched_tokens=settings.max_num_batched_tokens)
    cfg = SimConfig(replicas=(ReplicaSpec(deployment=dep, scheduler=scheduler, count=count),),
                    router=router, faults=tuple(faults),
                    seed=settings.seed if seed is None else seed)
    return simulate(cfg, list(requests))


def probe_summary(result: Any, slo: Any, *, min_delivery: float, rate_rps: float) -> Probe:
    """Pass/fail and p95 latencies of one simulation."""
    from ..metrics import summarize

    s = summarize(result.records, duration_s=result.duration_s, slo=slo)
    met = s.get("slo_met") or {}
    delivery = s.get("delivery")
    passed = bool(met) and all(v is True for v in met.values()) and (delivery or 0.0) >= min_delivery
    if passed:
        # Steady state: the last quarter of arrivals must meet the SLO too, so a finite run
        # whose queue is still growing (rate above saturation) does not pass on its empty start.
        recs = sorted(result.records, key=lambda r: r.arrival_s)
        tail = recs[len(recs) * 3 // 4:]
        tail_met = summarize(tail, slo=slo).get("slo_met") or {}
        passed = all(v is True for v in tail_met.values())
    return Probe(rate_rps=rate_rps, passed=passed, ttft_p95_s=s["ttft_s"].get("p95"),
                 tpot_p95_s=s["tpot_s"].get("p95"), e2e_p95_s=s["e2e_s"].get("p95"),
                 delivery=delivery, output_tokens_per_s=s.get("throughput_tokens_per_s"))


def evaluate_candidate(task: CandidateTask) -> CandidateEval:
    """Capacity search and operating-point probe for one candidate (see module doc)."""
    t0 = time.perf_counter()
    st = task.settings
    base = base_requests(task.workload, num_requests=st.max_requests, seed=st.seed,
                         input_filter=task.input_filter)
    if not base:
        return CandidateEval(key=task.key, capacity_rps=0.0, upper_rps=math.inf,
                             error="no request of the workload falls in this length range")
    probes: dict[float, Probe] = {}

    def run(rate: float) -> Probe:
        if rate not in probes:
            n = min(len(base), max(st.min_requests, math.ceil(rate * st.probe_duration_s)),
                    st.max_requests)
            res = simulate_replicas(task.deployment, scaled_requests(base[:n], rate), settings=st,
                                    scheduler=task.scheduler)
            probes[rate] = probe_summary(res, task.slo, min_delivery=st.min_delivery, rate_rps=rate)
        return probes[rate]

    try:
        search = search_capacity(lambda r: run(r).passed, start_rps=task.start_rps,
                                 min_rps=st.min_rps, rel_tol=st.rel_tol,
                                 gallop_factor=st.gallop_factor, max_evals=st.max_evals,
                                 max_rps=task.start_rps * st.max_gallop_up)
        operating = None
        if task.peak_rate_rps and search.capacity_rps > 0:
            active = size_replicas(peak_rate_rps=task.peak_rate_rps,
                                   capacity_per_replica_rps=search.capacity_rps,
                                   headroom=task.headroom, spares=0).active_replicas
            operating = run(task.peak_rate_rps / active)
    except Exception as exc:   # a crash in one candidate is data, not the end of the plan
        return CandidateEval(key=task.key, capacity_rps=0.0, upper_rps=math.inf,
                             probes=tuple(probes.values()), simulations=len(probes),
                             wall_s=time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}")
    ordered = tuple(sorted(probes.values(), key=lambda p: p.rate_rps))
    return CandidateEval(key=task.key, capacity_rps=search.capacity_rps, upper_rps=search.upper_rps,
                         probes=ordered, operating=operating, simulations=len(probes),
                         wall_s=time.perf_counter() - t0)
