"""Event skipping against the step-by-step reference: every record's times agree to
1e-12 relative and the percentiles to 1e-11 (measured: ≤ 7e-15 and ≤ 1e-12; float
rounding only — the skipping is exact, docs/sim.md)."""

from __future__ import annotations

import random

import pytest

from servelab import metrics
from servelab.catalog import RequestSpec, generate_requests, get_gpu, get_model, get_workload
from servelab.perf import Deployment
from servelab.sim import AffineStepModel, SchedulerConfig, ReplicaSpec, SimConfig, simulate

KEYS = [(m, p) for m in ("ttft_s", "tpot_s", "e2e_s") for p in ("p50", "p95", "p99")]


REL_RECORD, REL_PERCENTILE = 1e-12, 1e-11


def assert_records_agree(skip: list, exact: list) -> None:
    """Same requests, statuses, replicas; every time equal to REL_RECORD."""
    a, b = {r.id: r for r in skip}, {r.id: r for r in exact}
    assert a.keys() == b.keys()
    for k, x in a.items():
        y = b[k]
        assert (x.status, x.replica) == (y.status, y.replica), k
        for f in ("start_s", "first_token_s", "finish_s"):
            u, v = getattr(x, f), getattr(y, f)
            assert (u is None) == (v is None), (k, f)
            if u is not None:
                assert u == pytest.approx(v, rel=REL_RECORD, abs=1e-12), (k, f, u, v)


def _agree(spec: ReplicaSpec, reqs: list[RequestSpec], router: str = "round_robin",
           stats: dict | None = None) -> dict:
    """Summaries of both modes (skip: False, exact: True) after checking they agree;
    ``stats`` receives the exact run's replica stats."""
    out, recs = {}, {}
    for exact in (False, True):
        res = simulate(SimConfig(replicas=(spec,), router=router, exact=exact), reqs)
        recs[exact] = res.records
        out[exact] = metrics.summarize(res.records)
        if exact and stats is not None:
            stats.update(res.replica_stats)
    assert_records_agree(recs[False], recs[True])
    for m, p in KEYS:
        a, b = out[False][m][p], out[True][m][p]
        assert a == pytest.approx(b, rel=REL_PERCENTILE), (m, p, a, b)
    assert out[False]["completed"] == out[True]["completed"]
    return out


def test_skip_vs_exact_real_perf_model_chat() -> None:
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))
    reqs = generate_requests(get_workload("chat"), rate_rps=30.0, duration_s=30.0, seed=1)
    spec = ReplicaSpec(deployment=dep, scheduler=SchedulerConfig(), count=2)
    out = _agree(spec, reqs, router="least_outstanding")
    assert out[False]["completed"] == len(reqs)


def test_skip_vs_exact_under_kv_pressure_and_prefix_sharing() -> None:
    rng = random.Random(7)
    t = 0.0
    reqs = []
    for i in range(800):
        t += rng.expovariate(25.0)
        g = rng.randrange(4) if rng.random() < 0.6 else -1
        reqs.append(RequestSpec(id=f"r{i}", arrival_s=t, input_tokens=rng.randint(300, 1500),
                                output_tokens=rng.randint(20, 400), prefix_group=g,
                                prefix_tokens=256 if g >= 0 else 0))
    # 2500 blocks = 40k tokens: forces preemptions at this load
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=2500, max_num_seqs=128),
                       step_model=AffineStepModel(per_prefill_token_s=1e-5))
    stats: dict = {}
    _agree(spec, reqs, stats=stats)
    assert stats["replica-0"]["num_preempted"] > 0


def _naive_reference(reqs: list[RequestSpec], model: AffineStepModel, max_seqs: int,
                     budget_tokens: int) -> dict[str, tuple[float, float]]:
    """A deliberately plain per-request step loop (no KV limits, FCFS, chunked prefill)
    that recomputes every context sum from scratch: (first token, finish) per request."""
    from servelab.perf import StepBatch

    pending = sorted(reqs, key=lambda r: r.arrival_s)
    waiting: list[dict] = []
    running: list[dict] = []
    out: dict[str, tuple[float, float]] = {}
    t = 0.0
    i = 0
    while i < len(pending) or waiting or running:
        while i < len(pending) and pending[i].arrival_s <= t:
            q = pending[i]
            waiting.append({"id": q.id, "L": q.input_tokens, "O": q.output_tokens, "done": 0,
                            "out": 0, "first": None})
            i += 1
        if not waiting and not running:
            t = pending[i].arrival_s
            continue
        budget = budget_tokens
        decode = [s for s in running if s["done"] >= s["L"]]
        budget -= len(decode)
        chunks = []
        for s in running:
            if s["done"] < s["L"] and budget > 0:
                n = min(s["L"] - s["done"], budget)
                chunks.append((s, n))
                budget -= n
        while waiting and budget > 0 and len(running) < max_seqs:
            s = waiting.pop(0)
            n = min(s["L"], budget)
            running.append(s)
            chunks.append((s, n))
            budget -= n
        ctx = sum(s["L"] + s["out"] - 1 for s in decode)
        t += model.step_time_s(StepBatch(tuple((n, s["done"]) for s, n in chunks), len(decode), ctx))
        for s in decode:
            s["out"] += 1
        for s, n in chunks:
            s["done"] += n
            if s["done"] >= s["L"]:
                s["out"] = 1
                s["first"] = t
        for s in list(running):
            if s["out"] >= s["O"]:
                running.remove(s)
                out[s["id"]] = (s["first"], t)
    return out


@pytest.mark.parametrize("exact", [False, True])
def test_engine_matches_naive_per_request_loop(exact: bool) -> None:
    rng = random.Random(3)
    t = 0.0
    reqs = []
    for i in range(300):
        t += rng.expovariate(20.0)
        reqs.append(RequestSpec(id=f"r{i}", arrival_s=t, input_tokens=rng.randint(1, 3000),
                                output_tokens=rng.randint(1, 200)))
    model = AffineStepModel(per_prefill_token_s=1e-5)
    want = _naive_reference(reqs, model, max_seqs=32, budget_tokens=2048)
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=100_000, max_num_seqs=32,
                                           max_num_batched_tokens=2048, enable_prefix_caching=False),
                       step_model=model)
    res = simulate(SimConfig(replicas=(spec,), exact=exact), reqs)
    for r in res.records:
        first, fin = want[r.id]
        assert r.first_token_s == pytest.approx(first, rel=1e-9, abs=1e-9), r.id
        assert r.finish_s == pytest.approx(fin, rel=1e-9, abs=1e-9), r.id


def test_token_times_materialized_identically_in_both_modes() -> None:
    rng = random.Random(9)
    reqs = [RequestSpec(id=f"r{i}", arrival_s=0.05 * i, input_tokens=rng.randint(10, 900),
                        output_tokens=rng.randint(1, 120)) for i in range(200)]
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=1500, max_num_seqs=24),
                       step_model=AffineStepModel())
    got = {}
    for exact in (False, True):
        res = simulate(SimConfig(replicas=(spec,), exact=exact, record_token_times=True), reqs)
        got[exact] = {r.id: r.token_times_s for r in res.records}
        for r in res.records:
            tt = r.token_times_s
            assert len(tt) == r.output_tokens
            assert tt[0] == r.first_token_s and tt[-1] == r.finish_s
            assert all(b > a for a, b in zip(tt, tt[1:]))
    for rid, tt in got[True].items():
        assert got[False][rid] == pytest.approx(tt, rel=1e-12)


def test_skip_vs_exact_with_priority_preemption_under_kv_pressure() -> None:
    """Priority preemption while KV is short: a waiting request that outranks a running one
    preempts it at the step boundary where the decoders' growth leaves it too few blocks; the
    event-skipping engine must reach the same boundaries as the step-by-step one."""
    from servelab.sim import AdmissionConfig

    rng = random.Random(11)
    t, reqs = 0.0, []
    for i in range(400):
        t += rng.expovariate(20.0)
        reqs.append(RequestSpec(id=f"r{i}", arrival_s=t, input_tokens=rng.randint(200, 900),
                                output_tokens=rng.randint(20, 300), priority=rng.randrange(3)))
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=600, max_num_seqs=64,
                                                 scheduling_policy="priority"),
                       step_model=AffineStepModel(per_prefill_token_s=1e-5))
    recs, pre = {}, {}
    for exact in (False, True):
        res = simulate(SimConfig(replicas=(spec,), admission=AdmissionConfig(priority_preemption=True),
                                 exact=exact), reqs)
        recs[exact] = res.records
        pre[exact] = res.replica_stats["replica-0"]["num_preempted"]
    assert pre[True] > 0, "the case must exercise preemption"
    assert pre[False] == pre[True]
    assert_records_agree(recs[False], recs[True])
