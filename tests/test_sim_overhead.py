"""Efficiency.request_overhead_s in the simulator: the engine sees each request that
long after the router sent it, so its first token (and its end) come that much later."""

from __future__ import annotations

import dataclasses

import pytest

from servelab import metrics
from servelab.catalog import (
    RequestSpec,
    generate_requests,
    get_gpu,
    get_model,
    get_workload,
)
from servelab.perf import Deployment, Efficiency, StepModel
from servelab.perf.answers import ttft_s
from servelab.sim import (
    AdmissionConfig,
    ConstantStepModel,
    SchedulerConfig,
    Fault,
    ReplicaSpec,
    SimConfig,
    simulate,
)

OVERHEAD_S = 0.25


def _dep(overhead_s: float) -> Deployment:
    return Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"),
                      efficiency=Efficiency(request_overhead_s=overhead_s))


def _spec(overhead_s: float, count: int = 1) -> ReplicaSpec:
    # one sequence at a time, every step 1 s: times are easy to compute by hand
    return ReplicaSpec(deployment=_dep(overhead_s), step_model=ConstantStepModel(step_s=1.0),
                       scheduler=SchedulerConfig(num_kv_blocks=1000, max_num_seqs=1), count=count)


def _reqs(times: list[float], out: int = 2) -> list[RequestSpec]:
    return [RequestSpec(id=f"r{i}", arrival_s=t, input_tokens=16, output_tokens=out)
            for i, t in enumerate(times)]


@pytest.mark.parametrize("exact", [False, True])
def test_hand_computed_timeline(exact: bool) -> None:
    # r0 (t=0) reaches the engine at 0.25: prefill 0.25-1.25 (first token), decode
    # 1.25-2.25 (end). r1 (t=0.1) reaches it at 0.35, waits for the only slot:
    # prefill 2.25-3.25, decode 3.25-4.25. Without the overhead: 1, 2, 3, 4.
    ttft = {}
    for overhead, first, finish, start in ((OVERHEAD_S, (1.25, 3.25), (2.25, 4.25), (0.25, 2.25)),
                                           (0.0, (1.0, 3.0), (2.0, 4.0), (0.0, 2.0))):
        res = simulate(SimConfig(replicas=(_spec(overhead),), exact=exact), _reqs([0.0, 0.1]))
        r0, r1 = res.records
        assert (r0.status, r1.status) == ("ok", "ok")
        assert (r0.first_token_s, r1.first_token_s) == pytest.approx(first, abs=1e-12)
        assert (r0.finish_s, r1.finish_s) == pytest.approx(finish, abs=1e-12)
        assert (r0.start_s, r1.start_s) == pytest.approx(start, abs=1e-12)
        assert (r0.dispatch_s, r1.dispatch_s) == pytest.approx((0.0, 0.1), abs=1e-12)   # router's time
        ttft[overhead] = r0.first_token_s - r0.arrival_s
    # the lone first request's TTFT grows by exactly the overhead
    assert ttft[OVERHEAD_S] - ttft[0.0] == pytest.approx(OVERHEAD_S, abs=1e-12)


def test_timeout_while_in_transit() -> None:
    # deadline 0.2 < overhead 0.25: the request never reaches the engine
    cfg = SimConfig(replicas=(_spec(OVERHEAD_S),), admission=AdmissionConfig(client_timeout_s=0.2))
    (rec,) = simulate(cfg, _reqs([0.0])).records
    assert rec.status == "timed_out"
    assert rec.finish_s == pytest.approx(0.2)
    assert rec.start_s is None and rec.first_token_s is None


@pytest.mark.parametrize("policy", ["fail", "retry"])
def test_replica_killed_while_request_in_transit(policy: str) -> None:
    # r0 is routed to replica-0 at t=0 (round robin) and killed with it at t=0.1,
    # before it reaches the engine (0.25). retry: it goes to replica-1 at 0.1, reaches
    # its engine at 0.35: first token 1.35, end 2.35.
    cfg = SimConfig(replicas=(_spec(OVERHEAD_S, count=2),),
                    faults=(Fault(at_s=0.1, replica=0, in_flight=policy),))
    (rec,) = simulate(cfg, _reqs([0.0])).records
    if policy == "fail":
        assert rec.status == "failed" and rec.finish_s == pytest.approx(0.1)
    else:
        assert rec.status == "ok" and rec.retries == 1
        assert (rec.first_token_s, rec.finish_s) == pytest.approx((1.35, 2.35))


def test_lone_request_matches_perf_ttft_with_overhead() -> None:
    # the real perf model: a lone 2000-token prompt's simulated TTFT is the analytic
    # one (perf.answers.ttft_s, which adds request_overhead_s), i.e. 20 ms above the
    # same deployment without the overhead
    base = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))
    ttfts = []
    for o in (0.0, 0.020):
        dep = dataclasses.replace(base, efficiency=dataclasses.replace(base.efficiency,
                                                                       request_overhead_s=o))
        req = [RequestSpec(id="a", arrival_s=0.0, input_tokens=2000, output_tokens=4)]
        (rec,) = simulate(SimConfig(replicas=(ReplicaSpec(deployment=dep),)), req).records
        assert rec.first_token_s - rec.arrival_s == pytest.approx(ttft_s(StepModel(dep), 2000), rel=1e-9)
        ttfts.append(rec.first_token_s)
    assert ttfts[1] - ttfts[0] == pytest.approx(0.020, abs=1e-12)


def test_skip_vs_exact_agree_with_overhead() -> None:
    dep = _dep(0.015)
    reqs = generate_requests(get_workload("chat"), rate_rps=20.0, duration_s=40.0, seed=3)
    from test_sim_exact import REL_PERCENTILE, assert_records_agree

    out, recs = {}, {}
    for exact in (False, True):
        res = simulate(SimConfig(replicas=(ReplicaSpec(deployment=dep, count=2),),
                                 router="least_outstanding", exact=exact), reqs)
        recs[exact] = res.records
        out[exact] = metrics.summarize(res.records)
    assert_records_agree(recs[False], recs[True])
    for m in ("ttft_s", "tpot_s", "e2e_s"):
        for p in ("p50", "p95", "p99"):
            assert out[False][m][p] == pytest.approx(out[True][m][p], rel=REL_PERCENTILE), (m, p)
    assert out[False]["completed"] == out[True]["completed"] == len(reqs)
    # every TTFT includes the overhead
    assert out[False]["ttft_s"]["p50"] > 0.015
