"""Fleet behaviour on hand-built arrivals: admission, timeouts, autoscaler, faults, routing."""

from __future__ import annotations

from collections import Counter

import pytest

from servelab.catalog import RequestSpec
from servelab.errors import ConfigError
from servelab.sim import (
    AdmissionConfig,
    AffineStepModel,
    AutoscalerConfig,
    ConstantStepModel,
    SchedulerConfig,
    Fault,
    ReplicaSpec,
    SimConfig,
    simulate,
)


def _reqs(times: list[float], inp: int = 16, out: int = 1, **kw) -> list[RequestSpec]:
    return [RequestSpec(id=f"r{i}", arrival_s=t, input_tokens=inp, output_tokens=out, **kw)
            for i, t in enumerate(times)]


def _one_at_a_time(step_s: float = 1.0, count: int = 1, **engine_kw) -> tuple[ReplicaSpec, ...]:
    eng = SchedulerConfig(num_kv_blocks=1000, max_num_seqs=1, **engine_kw)
    return (ReplicaSpec(scheduler=eng, step_model=ConstantStepModel(step_s=step_s), count=count),)


def _by_id(res) -> dict:
    return {r.id: r for r in res.records}


def test_bounded_queue_rejects_exactly_the_excess() -> None:
    # r0 runs at once (1 s service); r1, r2 wait (bound 2); r3, r4 find the queue full.
    cfg = SimConfig(replicas=_one_at_a_time(), admission=AdmissionConfig(max_queue=2))
    res = simulate(cfg, _reqs([0.0, 0.1, 0.2, 0.3, 0.4, 1.5]))
    rec = _by_id(res)
    assert {k for k, r in rec.items() if r.status == "rejected"} == {"r3", "r4"}
    assert rec["r3"].reason == "503 queue full"
    # r5 arrives at 1.5: r1 started at 1.0, only r2 waits -> admitted
    assert rec["r5"].status == "ok"
    assert [rec[f"r{i}"].finish_s for i in (0, 1, 2, 5)] == pytest.approx([1.0, 2.0, 3.0, 4.0])


def test_replica_max_waiting_rejects_like_503() -> None:
    cfg = SimConfig(replicas=_one_at_a_time(max_waiting=1))
    res = simulate(cfg, _reqs([0.0, 0.1, 0.2]))
    assert [r.status for r in res.records] == ["ok", "ok", "rejected"]
    assert res.records[2].reason == "503 queue full"


def test_token_bucket() -> None:
    # rate 1/s, burst 2: full bucket at t=0 admits two; third at 0 and one at 0.5 are
    # rejected; at 1.0 the bucket holds 0.5 + 0.5 = 1 -> admitted; at 2.5 it holds 1.5.
    cfg = SimConfig(replicas=_one_at_a_time(step_s=0.01),
                    admission=AdmissionConfig(rate_limit_rps=1.0, burst=2))
    res = simulate(cfg, _reqs([0.0, 0.0, 0.0, 0.5, 1.0, 2.5]))
    assert [r.status for r in res.records] == ["ok", "ok", "rejected", "rejected", "ok", "ok"]
    assert res.records[2].reason == "429 rate limited"


def test_client_timeouts() -> None:
    # 3 output tokens at 1 s per step: r0 0..3 s; r1 would run 3..6 s; timeout 4 s.
    cfg = SimConfig(replicas=_one_at_a_time(), admission=AdmissionConfig(client_timeout_s=4.0))
    res = simulate(cfg, _reqs([0.0, 0.0, 0.0], out=3))
    rec = _by_id(res)
    assert rec["r0"].status == "ok" and rec["r0"].finish_s == pytest.approx(3.0)
    for rid in ("r1", "r2"):
        assert rec[rid].status == "timed_out" and rec[rid].finish_s == pytest.approx(4.0)


def test_autoscaler_reaction_time_is_poll_plus_provisioning_plus_load() -> None:
    a = AutoscalerConfig(metric="waiting", target=1.0, poll_interval_s=10.0,
                         provisioning_delay_s=30.0, model_load_delay_s=20.0, cooldown_s=0.0,
                         min_replicas=1, max_replicas=2)
    # a burst at t=12: queue builds; the first poll after it is t=20
    cfg = SimConfig(replicas=_one_at_a_time(), autoscaler=a)
    times = [12.0 + 0.01 * i for i in range(200)] + [60.0 + 0.5 * i for i in range(40)]
    res = simulate(cfg, _reqs(times))
    ups = [e for e in res.events if e[1] == "scale_up"]
    ready = [e for e in res.events if e[1] == "ready"]
    assert ups[0][0] == pytest.approx(20.0)
    assert ready[0][0] == pytest.approx(20.0 + 30.0 + 20.0)
    assert len(ups) == 1                       # max_replicas = 2
    served = Counter(r.replica for r in res.records)
    assert set(served) == {"replica-0", "replica-1"}
    # nothing reaches the new replica before it is ready
    assert min(r.dispatch_s for r in res.records if r.replica == "replica-1") >= 70.0
    assert res.timeseries["replicas"][int(69)] == 1 and res.timeseries["replicas"][71] == 2


def test_autoscaler_cooldown_and_scale_down() -> None:
    a = AutoscalerConfig(metric="running", target=0.5, poll_interval_s=5.0, cooldown_s=100.0,
                         min_replicas=1, max_replicas=3)
    cfg = SimConfig(replicas=_one_at_a_time(count=2), autoscaler=a)
    res = simulate(cfg, _reqs([0.0, 300.0]))
    downs = [e for e in res.events if e[1] == "scale_down"]
    # idle fleet at the first poll -> one replica drained; nothing more (min 1)
    assert [d[0] for d in downs] == [5.0]


@pytest.mark.parametrize("mode", ["fail", "retry"])
def test_fault_injection_loses_no_record(mode: str) -> None:
    model = AffineStepModel()
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=5000), step_model=model, count=2)
    cfg = SimConfig(replicas=(spec,), router="round_robin",
                    faults=(Fault(at_s=5.0, replica=0, in_flight=mode),))  # type: ignore[arg-type]
    reqs = _reqs([0.05 * i for i in range(400)], inp=200, out=100)
    res = simulate(cfg, reqs)
    assert sorted(r.id for r in res.records) == sorted(r.id for r in reqs)
    st = Counter(r.status for r in res.records)
    killed = [e for e in res.events if e[1] == "killed"]
    assert killed == [(5.0, "killed", "replica-0")]
    if mode == "fail":
        assert st["failed"] > 0 and st["ok"] + st["failed"] == 400
        assert all(r.replica == "replica-0" for r in res.records if r.status == "failed")
    else:
        assert st == {"ok": 400}
        retried = [r for r in res.records if r.retries]
        assert retried and all(r.replica == "replica-1" for r in retried)
    assert all(r.dispatch_s is None or r.dispatch_s < 5.0 or r.replica == "replica-1"
               for r in res.records)


def test_prefix_router_keeps_groups_together() -> None:
    model = AffineStepModel()
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=20000), step_model=model, count=4)
    reqs = [RequestSpec(id=f"r{i}", arrival_s=0.02 * i, input_tokens=600, output_tokens=20,
                        prefix_group=i % 3, prefix_tokens=512) for i in range(400)]
    hit = {}
    for router in ("round_robin", "prefix"):
        res = simulate(SimConfig(replicas=(spec,), router=router), reqs)
        hit[router] = sum(r.cached_tokens for r in res.records) / sum(r.input_tokens for r in res.records)
        if router == "prefix":
            groups = {}
            for r, q in zip(res.records, reqs):
                groups.setdefault(q.prefix_group, set()).add(r.replica)
            assert all(len(v) == 1 for v in groups.values())
    # prefix routing: each group pays its 512-token prefix once (3 misses of 400);
    # round robin spreads every group over all 4 replicas (12 misses)
    assert hit["prefix"] == pytest.approx(397 * 512 / (400 * 600))
    assert hit["round_robin"] == pytest.approx(388 * 512 / (400 * 600))


def test_least_outstanding_balances() -> None:
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=5000, max_num_seqs=1),
                       step_model=ConstantStepModel(step_s=1.0), count=2)
    res = simulate(SimConfig(replicas=(spec,), router="least_outstanding"),
                   _reqs([0.0, 0.0, 0.0, 0.0]))
    assert Counter(r.replica for r in res.records) == {"replica-0": 2, "replica-1": 2}


def test_priority_preemption() -> None:
    eng = SchedulerConfig(num_kv_blocks=1000, max_num_seqs=1, scheduling_policy="priority")
    spec = ReplicaSpec(scheduler=eng, step_model=ConstantStepModel(step_s=1.0))
    reqs = [RequestSpec(id="low", arrival_s=0.0, input_tokens=16, output_tokens=10, priority=1),
            RequestSpec(id="high", arrival_s=2.5, input_tokens=16, output_tokens=2, priority=0)]
    res = simulate(SimConfig(replicas=(spec,), admission=AdmissionConfig(priority_preemption=True)), reqs)
    rec = _by_id(res)
    # high joins at the step boundary t=3, runs 2 steps; low resumes (recomputes) after
    assert rec["high"].first_token_s == pytest.approx(4.0) and rec["high"].finish_s == pytest.approx(5.0)
    assert rec["low"].status == "ok" and rec["low"].finish_s > rec["high"].finish_s
    assert res.replica_stats["replica-0"]["num_preempted"] == 1


def test_config_errors_name_valid_values() -> None:
    with pytest.raises(ConfigError, match="round_robin"):
        SimConfig(replicas=_one_at_a_time(), router="random")
    with pytest.raises(ConfigError, match="kv_usage"):
        AutoscalerConfig(metric="gpu")  # type: ignore[arg-type]


def test_heterogeneous_replicas() -> None:
    fast = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=1000, max_num_seqs=1),
                       step_model=ConstantStepModel(step_s=0.01), name="fast")
    slow = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=1000, max_num_seqs=1),
                       step_model=ConstantStepModel(step_s=0.05), name="slow")
    res = simulate(SimConfig(replicas=(fast, slow), router="least_outstanding"),
                   _reqs([0.02 * i for i in range(300)], out=2))
    served = Counter(r.replica for r in res.records)
    assert set(served) == {"fast-0", "slow-0"}
    # service 20 ms vs 100 ms: the fast replica takes most of a 50 req/s stream
    assert served["fast-0"] > 3 * served["slow-0"]
    assert all(r.status == "ok" for r in res.records)


def test_public_api_is_all() -> None:
    import servelab.sim as sim

    required = {"SchedulerConfig", "ReplicaSpec", "AdmissionConfig", "AutoscalerConfig", "Fault",
                "SimConfig", "simulate", "SimResult", "ReplicaEngine", "StepOutcome"}
    assert required <= set(sim.__all__)
    assert all(hasattr(sim, name) for name in sim.__all__)
    public = {n for n in dir(sim) if not n.startswith("_")} - {
        "cluster", "config", "engine", "fakes", "kv", "router", "request", "scheduler", "series", "summary",
        "annotations", "tiering", "tier_sched", "disagg", "pd_fleet"}
    assert public == set(sim.__all__)


def test_progress_reports_fraction_and_empty_input() -> None:
    seen: list[float] = []
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=5000), step_model=AffineStepModel())
    res = simulate(SimConfig(replicas=(spec,)), _reqs([0.001 * i for i in range(5_000)], out=2),
                   progress=seen.append)
    assert seen and seen[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in seen)
    assert seen == sorted(seen)
    assert res.meta.kind == "simulate" and res.meta.complete
    empty = simulate(SimConfig(replicas=(spec,)), [])
    assert empty.records == [] and empty.duration_s == 0.0
