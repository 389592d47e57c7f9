"""The fleet event loop (``sim.cluster``) on tiny runs worked out by hand: the sampled
time series (fleet totals, per-replica series, KV usage inside a decode stretch), a
request joining a replica in the middle of a decode stretch, the end time of every kind
of rejection, faults on provisioning replicas and repeated retries, requests in transit
(per-request overhead) and the deployment a replica is built from.

Every step takes 1 s (``ConstantStepModel``); KV blocks hold 4 tokens and a step that
computes the token at position p (1-based, prompt first) holds ceil(p / 4) blocks for
that request. Expected values are derived in the comments from those rules and the
module docstring of ``sim.cluster`` (event order, admission order, sampling), never
read from a run.
"""

from __future__ import annotations

import pytest

from servelab.catalog import RequestSpec, get_gpu, get_model
from servelab.perf import Deployment, Efficiency
from servelab.sim import (
    AdmissionConfig,
    AutoscalerConfig,
    ConstantStepModel,
    Fault,
    ReplicaSpec,
    SchedulerConfig,
    SimConfig,
    simulate,
)

_STEP = ConstantStepModel(step_s=1.0)


def _sched(**kw) -> SchedulerConfig:
    base = {"block_size": 4, "num_kv_blocks": 16, "max_num_batched_tokens": 64, "max_num_seqs": 8,
            "enable_prefix_caching": False}
    return SchedulerConfig(**{**base, **kw})


def _cfg(*, count: int = 1, exact: bool = False, admission: AdmissionConfig | None = None,
         faults=(), autoscaler: AutoscalerConfig | None = None, **sched) -> SimConfig:
    return SimConfig(replicas=(ReplicaSpec(scheduler=_sched(**sched), count=count, step_model=_STEP),),
                     exact=exact, admission=admission or AdmissionConfig(), faults=tuple(faults),
                     autoscaler=autoscaler)


def _req(rid: str, t: float, n_in: int, n_out: int, **kw) -> RequestSpec:
    return RequestSpec(id=rid, arrival_s=t, input_tokens=n_in, output_tokens=n_out, **kw)


def _prefetch_spec() -> ReplicaSpec:
    """12 GPU blocks, DRAM 1 block at 1000 blocks/s, NVMe 50 blocks at 100 blocks/s after
    5 ms, prefetch with prefetch_wait; 10 ms steps."""
    from servelab.sim import KVTier
    from servelab.sim.tiering import KVPolicy

    dram = KVTier(name="dram", blocks=1, block_bytes=1.0, read_bytes_per_s=1000.0)
    nvme = KVTier(name="nvme", blocks=50, block_bytes=1.0, read_bytes_per_s=100.0, latency_s=0.005)
    pol = KVPolicy(prefetch=True, prefetch_wait=True)
    return ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=12, kv_tiers=(dram, nvme), kv_policy=pol),
                       step_model=ConstantStepModel(step_s=0.01))


def _by_id(res) -> dict:
    return {r.id: r for r in res.records}


# ----------------------------------------------------------------------------- time series
# Two replicas, one sequence each (max_num_seqs 1), round robin: a, c -> replica-0 and
# b, d -> replica-1 (all at t=0). Prompt 3, 2 outputs: the prefill (positions 1-3) and
# the decode (position 4) both fit in one block. Per replica:
#   [0,1] prefill first request, [1,2] decode it (done at 2), [2,3] prefill the second,
#   [3,4] decode it (done at 4).
# Samples every 1 s; a step ending at t is handled before the sample at t (step end <
# sample), arrivals at t before the sample too. The sample at 4 sees the fleet empty and
# all arrived, so it is the last one.
#   t      0  1  2  3  4
#   per replica: running 1 1 1 1 0, waiting 1 1 0 0 0, KV blocks 1 1 1 1 0 (of 16)
#   fleet: the sums of the two, KV the mean of the two.
@pytest.mark.parametrize("exact", [False, True])
def test_time_series_of_two_replicas_by_hand(exact) -> None:
    specs = [_req(x, 0.0, 3, 2) for x in "abcd"]
    res = simulate(_cfg(count=2, exact=exact, max_num_seqs=1), specs)
    ts = res.timeseries
    assert ts["t_s"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert ts["waiting"] == [2, 2, 0, 0, 0]
    assert ts["running"] == [2, 2, 2, 2, 0]
    assert ts["kv_usage"] == pytest.approx([1 / 16] * 4 + [0.0])
    assert ts["replicas"] == [2] * 5
    assert set(ts["per_replica"]) == {"replica-0", "replica-1"}
    for name in ("replica-0", "replica-1"):
        pr = ts["per_replica"][name]
        assert pr["t_s"] == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert pr["waiting"] == [1, 1, 0, 0, 0]
        assert pr["running"] == [1, 1, 1, 1, 0]
        assert pr["kv_usage"] == pytest.approx([1 / 16] * 4 + [0.0])
    r = _by_id(res)
    assert [r[x].finish_s for x in "abcd"] == [2.0, 2.0, 4.0, 4.0]


# One request, prompt 4, 12 outputs, 16 blocks: prefill [0,1] (positions 1-4: 1 block),
# then decode steps [t, t+1] for t = 1..11 computing position 4 + t, i.e. ceil((4+t)/4)
# blocks: t=1..4 -> 2, 5..8 -> 3, 9..11 -> 4; done at 12 (blocks freed, no prefix cache).
# Without exact mode the decodes run as one stretch from 1 to 12; a sample inside it must
# still report the blocks held at that moment, the same as the step-by-step engine.
@pytest.mark.parametrize("exact", [False, True])
def test_kv_usage_sampled_inside_a_decode_stretch(exact) -> None:
    res = simulate(_cfg(exact=exact), [_req("a", 0.0, 4, 12)])
    ts = res.timeseries
    assert ts["t_s"] == [float(t) for t in range(13)]
    blocks = [1] + [2] * 4 + [3] * 4 + [4] * 3 + [0]
    assert ts["kv_usage"] == pytest.approx([b / 16 for b in blocks])
    assert ts["running"] == [1] * 12 + [0]
    assert ts["per_replica"]["replica-0"]["kv_usage"] == pytest.approx([b / 16 for b in blocks])
    assert _by_id(res)["a"].finish_s == 12.0


# ----------------------------------------------------------------------------- mid-stretch join
# a: prompt 4, 3 outputs at t=0: prefill [0,1] (token 1), then two decode steps [1,2],
# [2,3] that the skipping engine plans as one stretch (a's tokens 2 and 3). b (prompt 4,
# 2 outputs) arrives at 1.5, in the first step of that stretch, and could join the batch:
# it joins at the next step boundary, 2, exactly as the step-by-step engine does:
#   [2,3] a decodes (token 3, done) + b prefills (first token 3); [3,4] b decodes, done.
@pytest.mark.parametrize("exact", [False, True])
def test_a_request_joins_a_two_step_stretch_at_the_next_boundary(exact) -> None:
    res = simulate(_cfg(exact=exact), [_req("a", 0.0, 4, 3), _req("b", 1.5, 4, 2)])
    r = _by_id(res)
    assert (r["a"].first_token_s, r["a"].finish_s) == (1.0, 3.0)
    assert (r["b"].start_s, r["b"].first_token_s, r["b"].finish_s) == (2.0, 3.0, 4.0)


# A step model whose decode steps take 1 s by ``step_time_s`` but whose affine shortcut
# claims 3 s: exact mode times every step with ``step_time_s`` (the reference, module
# docstring of sim.engine), so a (prompt 4, 3 outputs) ends at 1 + 1 + 1 = 3.
class _StepOnly:
    def step_time_s(self, batch) -> float:
        return 1.0

    def decode_affine(self, num_decode: int) -> tuple[float, float]:
        return (3.0, 0.0)


def test_exact_mode_times_every_step_with_step_time_s() -> None:
    cfg = SimConfig(replicas=(ReplicaSpec(scheduler=_sched(), step_model=_StepOnly()),), exact=True)
    res = simulate(cfg, [_req("a", 0.0, 4, 3)])
    (a,) = res.records
    assert (a.first_token_s, a.finish_s) == (1.0, 3.0)
    assert a.token_times_s is None


# ----------------------------------------------------------------------------- rejections
# Every admission refusal ends the request at the moment it arrived (record finish_s =
# arrival), and a refused request is no longer in flight: the sampling stops at the first
# sample with everything arrived and nothing in flight.
def test_queue_full_at_the_fleet_ends_at_arrival() -> None:
    # max_num_seqs 1, max_queue 1: a runs [0,1] prefill, [1,2] decode; b waits (fleet
    # waiting 1); c at 0.5 finds 1 >= max_queue -> rejected at 0.5. b: [2,3], [3,4].
    adm = AdmissionConfig(max_queue=1)
    res = simulate(_cfg(admission=adm, max_num_seqs=1),
                   [_req("a", 0.0, 4, 2), _req("b", 0.0, 4, 2), _req("c", 0.5, 4, 2)])
    r = _by_id(res)
    assert (r["c"].status, r["c"].reason, r["c"].finish_s) == ("rejected", "503 queue full", 0.5)
    assert r["c"].replica is None and r["c"].output_tokens == 0
    assert (r["b"].status, r["b"].finish_s) == ("ok", 4.0)
    assert res.timeseries["t_s"] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_queue_full_at_the_replica_ends_at_arrival() -> None:
    # max_waiting 1 on the replica: same timeline, c refused by the replica's queue at 0.5
    res = simulate(_cfg(max_num_seqs=1, max_waiting=1),
                   [_req("a", 0.0, 4, 2), _req("b", 0.0, 4, 2), _req("c", 0.5, 4, 2)])
    r = _by_id(res)
    assert (r["c"].status, r["c"].reason, r["c"].finish_s) == ("rejected", "503 queue full", 0.5)
    assert (r["b"].status, r["b"].finish_s) == ("ok", 4.0)
    assert res.timeseries["t_s"] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_request_that_never_fits_fails_at_arrival() -> None:
    # 16 blocks of 4 = 64 tokens of KV; 70 + 2 = 72 tokens can never fit -> "400 ..." at 0.25
    res = simulate(_cfg(), [_req("big", 0.25, 70, 2), _req("a", 0.0, 4, 2)])
    r = _by_id(res)
    assert (r["big"].status, r["big"].finish_s) == ("failed", 0.25)
    assert r["big"].reason == "400 request needs 72 tokens of KV; replica holds 64"
    assert (r["a"].status, r["a"].finish_s) == ("ok", 2.0)
    assert res.timeseries["t_s"] == [0.0, 1.0, 2.0]


# The only replica is killed at 0.5 (a fails there); b at 1.0 finds no ready replica and
# is rejected at 1.0. Sample at 0: a running (1 block of 16); at 1: nothing live, so the
# fleet KV usage is 0 by definition and no replica is ready; it is the last sample.
def test_no_ready_replica_ends_at_arrival_and_an_empty_fleet_samples_zero() -> None:
    res = simulate(_cfg(faults=[Fault(at_s=0.5)]), [_req("a", 0.0, 4, 4), _req("b", 1.0, 4, 2)])
    r = _by_id(res)
    assert (r["a"].status, r["a"].reason, r["a"].finish_s) == ("failed", "replica replica-0 killed", 0.5)
    assert (r["b"].status, r["b"].reason, r["b"].finish_s) == ("rejected", "503 no ready replica", 1.0)
    ts = res.timeseries
    assert ts["t_s"] == [0.0, 1.0]
    assert ts["kv_usage"] == pytest.approx([1 / 16, 0.0])
    assert ts["running"] == [1, 0] and ts["replicas"] == [1, 0]


# ----------------------------------------------------------------------------- faults
# Two replicas; a (prompt 4, 10 outputs) goes to replica-0 at 0. Kill replica-0 at 1.5
# with retry: a is sent again, to replica-1 (idle: prefill [1.5, 2.5]). Kill replica-1 at
# 2.5 (a fault before a step end at the same time) with retry: a is sent again, finds
# no ready replica, rejected at 2.5 after 2 retries. Samples at 0, 1, 2 (a in flight)
# and 3 (nothing in flight: the last one).
def test_two_retries_then_no_replica_left() -> None:
    faults = [Fault(at_s=1.5, replica=0, in_flight="retry"), Fault(at_s=2.5, replica=1, in_flight="retry")]
    res = simulate(_cfg(count=2, faults=faults), [_req("a", 0.0, 4, 10)])
    (a,) = res.records
    assert (a.status, a.reason, a.finish_s, a.retries) == ("rejected", "503 no ready replica", 2.5, 2)
    assert res.timeseries["t_s"] == [0.0, 1.0, 2.0, 3.0]
    assert [e for e in res.events if e[1] == "killed"] == [(1.5, "killed", "replica-0"), (2.5, "killed", "replica-1")]


# Scale to zero: replica-0 is killed at 0.5; a at 1.0 waits at the router and starts a
# cold start (replica-1, ready at 1 + 2 + 1 = 4). A fault aimed at replica-1 at 2.0 finds
# it still provisioning: ignored (only running replicas can be killed). a: prefill [4,5],
# done at 5.
def test_a_fault_on_a_provisioning_replica_is_ignored() -> None:
    auto = AutoscalerConfig(min_replicas=0, max_replicas=2, poll_interval_s=100.0,
                            provisioning_delay_s=2.0, model_load_delay_s=1.0)
    res = simulate(_cfg(autoscaler=auto, faults=[Fault(at_s=0.5, replica=0), Fault(at_s=2.0, replica="replica-1")]),
                   [_req("a", 1.0, 4, 1)])
    (a,) = res.records
    assert (a.status, a.replica, a.start_s, a.finish_s) == ("ok", "replica-1", 4.0, 5.0)
    assert [e for e in res.events if e[0] <= 5.0] == [
        (0.5, "killed", "replica-0"), (1.0, "cold_start", "replica-1"),
        (2.0, "fault_ignored", "replica-1"), (4.0, "ready", "replica-1")]


# ----------------------------------------------------------------------------- in transit
def _overhead_spec(overhead_s: float, count: int, **sched) -> ReplicaSpec:
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"),
                     efficiency=Efficiency(request_overhead_s=overhead_s))
    return ReplicaSpec(deployment=dep, step_model=_STEP, scheduler=_sched(**sched), count=count)


# Two replicas, 0.25 s per-request overhead, autoscaler polling every 1 s (min 1, no
# stabilization window). Round robin: r0 (t=0, 3 outputs) -> replica-0, enters at 0.25,
# prefill [0.25, 1.25]; r1 (t=0.9) -> replica-1, in transit until 1.15; r2 (t=0.95)
# -> replica-0, in transit until 1.2. The poll at 1.0 sees 0 waiting on both (ratio 0
# -> ceil(0) = 0, clamped to 1) and retires the newest, replica-1, idle (r1 is in no
# queue yet). At 1.15 r1 reaches a dead replica: routed again at 1.15, to replica-0,
# enters at 1.4. On replica-0: r2 (entered 1.2) joins at 1.25: [1.25, 2.25] r0 decodes,
# r2 prefills (done); r1 (entered 1.4, during a one-step plan) joins at 2.25:
# [2.25, 3.25] r0's last token and r1's prefill (both done). Samples at 0..3 (requests in
# flight) and 4 (the last one).
def test_a_request_in_transit_to_a_retired_replica_is_routed_again() -> None:
    auto = AutoscalerConfig(min_replicas=1, max_replicas=2, poll_interval_s=1.0, cooldown_s=0.0)
    cfg = SimConfig(replicas=(_overhead_spec(0.25, 2),), autoscaler=auto)
    res = simulate(cfg, [_req("r0", 0.0, 4, 3), _req("r1", 0.9, 4, 1), _req("r2", 0.95, 4, 1)])
    r = _by_id(res)
    assert (r["r0"].replica, r["r0"].start_s, r["r0"].finish_s) == ("replica-0", 0.25, 3.25)
    assert (r["r2"].replica, r["r2"].start_s, r["r2"].finish_s) == ("replica-0", 1.25, 2.25)
    r1 = r["r1"]
    assert (r1.status, r1.replica, r1.retries) == ("ok", "replica-0", 0)
    assert r1.dispatch_s == pytest.approx(1.15)
    assert (r1.start_s, r1.finish_s) == (2.25, 3.25)
    assert (1.0, "scale_down", "replica-1") in res.events and (1.0, "removed", "replica-1") in res.events
    assert res.timeseries["t_s"] == [0.0, 1.0, 2.0, 3.0, 4.0]


# In transit, then refused by the replica's own queue (max_waiting 1, one sequence at a
# time, 0.25 s overhead): a enters at 0.25 and runs [0.25, 1.25], [1.25, 2.25]; b enters at
# 0.25 and waits; c (sent at 0.5) reaches the engine at 0.75 and finds the queue full:
# rejected at 0.75 and out of flight. b: [2.25, 3.25], [3.25, 4.25]; last sample at 5.
def test_refused_on_entering_the_engine_ends_at_entry() -> None:
    cfg = SimConfig(replicas=(_overhead_spec(0.25, 1, max_num_seqs=1, max_waiting=1),))
    res = simulate(cfg, [_req("a", 0.0, 4, 2), _req("b", 0.0, 4, 2), _req("c", 0.5, 4, 2)])
    r = _by_id(res)
    assert (r["c"].status, r["c"].reason) == ("rejected", "503 queue full")
    assert r["c"].finish_s == pytest.approx(0.75)
    assert r["b"].finish_s == pytest.approx(4.25)
    assert res.timeseries["t_s"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


# ----------------------------------------------------------------------------- deployment
# A replica given only a deployment (no step model, no KV block count) takes its KV pool
# from the deployment's memory budget: capacity tokens // block size blocks. One request
# of 16 prompt tokens (block 16) holds one block: usage 1 / that count at the first sample.
def test_a_replica_built_from_its_deployment_alone() -> None:
    from servelab.perf import memory_budget

    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))
    blocks = memory_budget(dep).kv_capacity_tokens // 16
    cfg = SimConfig(replicas=(ReplicaSpec(deployment=dep, scheduler=SchedulerConfig(block_size=16)),))
    res = simulate(cfg, [_req("a", 0.0, 16, 2)])
    (a,) = res.records
    assert a.status == "ok" and a.first_token_s > 0.0
    assert res.timeseries["kv_usage"][0] == pytest.approx(1 / blocks)


# ----------------------------------------------------------------------------- event loop
# Progress is reported every 4096 heap events (arrivals are merged from the request list
# and not counted) as min(1, now / last arrival), and once more (1.0) by simulate.
# One request of N outputs arriving at 0.5 on an idle replica (2048 blocks: KV never
# short): prefill [0.5, 1.5], then one decode stretch to N + 0.5. Heap events: samples at
# 0, 1, ..., N + 1 (the sample at N + 1 is the first with nothing in flight) = N + 2, and
# two step ends: N + 4 events in all.
#   N = 4091: 4095 events, no report inside the run          -> [1.0]
#   N = 4092: 4096 events, one at the last event, 4093 / 0.5  -> [min(1, 8186) = 1.0, 1.0]
@pytest.mark.parametrize("n_out, seen_want", [(4091, [1.0]), (4092, [1.0, 1.0])])
def test_progress_every_4096_events(n_out, seen_want) -> None:
    seen: list[float] = []
    res = simulate(_cfg(num_kv_blocks=2048), [_req("a", 0.5, 4, n_out)], progress=seen.append)
    assert res.records[0].finish_s == n_out + 0.5
    assert len(res.timeseries["t_s"]) == n_out + 2
    assert seen == seen_want


# All arrivals at t=0: the horizon (last arrival) is 0 and no fraction of it can be
# reported, however many events the run has (4100 outputs: prefill [0,1], done at 4100,
# samples 0..4100 and two step ends: 4103 events).
def test_no_progress_inside_a_run_whose_arrivals_are_all_at_zero() -> None:
    seen: list[float] = []
    simulate(_cfg(num_kv_blocks=2048), [_req("a", 0.0, 4, 4100)], progress=seen.append)
    assert seen == [1.0]


# No requests at all: no horizon either. 4096 faults at 1.0 on replica 0 (the first kills
# it, the others find it dead) and the sample at 0 make 4097 heap events: still only the
# final 1.0.
def test_no_progress_inside_a_run_without_requests() -> None:
    seen: list[float] = []
    res = simulate(_cfg(faults=[Fault(at_s=1.0)] * 4096), [], progress=seen.append)
    assert seen == [1.0]
    assert res.events[0] == (1.0, "killed", "replica-0")
    assert res.events[1:] == [(1.0, "fault_ignored", "0")] * 4095


# Ties in time (fault < arrival < step end): the fault at 1.0 comes before a's step end
# at 1.0 (a fails, its token never arrives) and before b arriving at 1.0, which then
# finds no ready replica.
def test_a_fault_at_the_same_time_as_an_arrival_comes_first() -> None:
    res = simulate(_cfg(faults=[Fault(at_s=1.0)]), [_req("a", 0.0, 4, 1), _req("b", 1.0, 4, 1)])
    r = _by_id(res)
    assert (r["a"].status, r["a"].finish_s, r["a"].output_tokens) == ("failed", 1.0, 0)
    assert (r["b"].status, r["b"].reason, r["b"].finish_s) == ("rejected", "503 no ready replica", 1.0)


# Ties in time between an arrival and an event of the same priority (a request reaching
# its engine after the overhead): arrivals come first. Overhead 0.25, one sequence at a
# time, fleet queue limit 1: a (t=0) enters at 0.25 and runs [0.25, 1.25]; b (t=0.5)
# enters at 0.75 and waits; c arrives at 0.75 too, before b's entry: the fleet has nothing
# waiting yet (b is in transit, in no replica's queue), so c is admitted, enters at 1.0,
# and waits behind b: b [1.25, 2.25], c [2.25, 3.25].
def test_an_arrival_comes_before_an_engine_entry_at_the_same_time() -> None:
    cfg = SimConfig(replicas=(_overhead_spec(0.25, 1, max_num_seqs=1),),
                    admission=AdmissionConfig(max_queue=1))
    res = simulate(cfg, [_req("a", 0.0, 4, 1), _req("b", 0.5, 4, 1), _req("c", 0.75, 4, 1)])
    r = _by_id(res)
    assert [r[x].status for x in "abc"] == ["ok", "ok", "ok"]
    assert [r[x].finish_s for x in "abc"] == [1.25, 2.25, 3.25]


# ----------------------------------------------------------------------------- KV prefetch wake-up
# The fleet-loop prefetch case of test_sim_tier_policies (tiers: DRAM 1 block at 1000 B/s,
# NVMe 50 blocks at 100 B/s + 5 ms; blocks of 1 B; steps 0.01 s), now with the replica busy
# when the wake-up comes. a (t=0) leaves the 64-token prefix (4 blocks) cached; f (t=0.5,
# 190 tokens, 12 blocks) pushes it out: b0 to DRAM, b1-b3 to NVMe. c (t=0.9, 4 tokens, 40
# outputs) prefills [0.90, 0.91] and then decodes in one stretch. b (t=1.0) repeats the
# prefix with prefetch_wait: it is held until its prefetch ends at 1.0 + 0.005 + 3 · 0.01
# = 1.035, which falls in c's step [1.03, 1.04]: the stretch is cut there and b joins at
# 1.04, loading its 4 blocks at the DRAM rate (0.004 s): first token 1.04 + 0.004 + 0.01
# = 1.054. c's 40 steps of 0.01 s plus that one step's 0.004 s end at 0.9 + 0.4 + 0.004.
@pytest.mark.parametrize("exact", [False, True])
def test_prefetch_wake_up_cuts_a_busy_replicas_stretch(exact) -> None:
    spec = _prefetch_spec()
    reqs = [_req("a", 0.0, 64, 1, prefix_group=1, prefix_tokens=64), _req("f", 0.5, 190, 1),
            _req("c", 0.9, 4, 40), _req("b", 1.0, 80, 1, prefix_group=1, prefix_tokens=64)]
    res = simulate(SimConfig(replicas=(spec,), exact=exact), reqs)
    r = _by_id(res)
    assert res.replica_stats["replica-0"]["kv_tier_hit_tokens"] == {"dram": 16, "nvme": 48}
    assert r["b"].start_s == pytest.approx(1.04)
    assert r["b"].first_token_s == pytest.approx(1.054)
    assert r["c"].finish_s == pytest.approx(1.304)


# Two prefetches held at once on an idle replica. As above, plus a2 (t=0.1, the 32-token
# prefix of group 2: 2 blocks); f's 12 blocks push all 6 cached prefix blocks out, oldest
# first, each into DRAM (1 block) and the one there down to NVMe: b's 4 blocks end on
# NVMe, b2's 2 blocks one in DRAM and one on NVMe (hits: 16 DRAM tokens, 80 NVMe tokens).
# Prefetches run one after another: b's 4 NVMe blocks land at 1.0 + 0.005 + 4 · 0.01
# = 1.045 (wake-up: b starts, loads 4 blocks at the DRAM rate, first token 1.045 + 0.004
# + 0.01 = 1.059); b2's one NVMe block at 1.045 + 0.005 + 0.01 = 1.06. The replica is idle
# from 1.059: the second wake-up, scheduled when b's step started, starts b2 at 1.06
# (2 blocks at the DRAM rate: first token 1.06 + 0.002 + 0.01 = 1.072).
@pytest.mark.parametrize("exact", [False, True])
def test_a_second_held_prefetch_wakes_an_idle_replica(exact) -> None:
    spec = _prefetch_spec()
    reqs = [_req("a", 0.0, 64, 1, prefix_group=1, prefix_tokens=64),
            _req("a2", 0.1, 32, 1, prefix_group=2, prefix_tokens=32), _req("f", 0.5, 190, 1),
            _req("b", 1.0, 80, 1, prefix_group=1, prefix_tokens=64),
            _req("b2", 1.0, 40, 1, prefix_group=2, prefix_tokens=32)]
    res = simulate(SimConfig(replicas=(spec,), exact=exact), reqs)
    r = _by_id(res)
    assert res.replica_stats["replica-0"]["kv_tier_hit_tokens"] == {"dram": 16, "nvme": 80}
    assert (r["b"].start_s, r["b"].first_token_s) == (pytest.approx(1.045), pytest.approx(1.059))
    assert (r["b2"].start_s, r["b2"].first_token_s) == (pytest.approx(1.06), pytest.approx(1.072))


# ----------------------------------------------------------------------------- autoscaler at zero
# Scale to zero (min 0, max 2), polls every 1 s, stabilization window 1.5 s, cold start
# 0.75 s. replica-0 is killed at 0.1 (no request on it).
#   poll 1.0: no replica, nothing held -> recommendation 0: nothing happens.
#   1.5: a arrives, waits at the router, cold start of replica-1 (ready at 2.25).
#   poll 2.0: no replica, a held -> recommendation 1 (already provisioning: no scale-up).
#   2.25: replica-1 ready, a prefills [2.25, 3.25].
#   poll 3.0: 1 ready, 0 waiting -> 0; window (t > 1.5): max(1 at 2.0, 0) = 1: keep it.
#   poll 4.0: a done, 0 -> window (t > 2.5): max(0, 0) = 0: scale down, idle, removed.
def test_scale_to_zero_polls_without_a_replica() -> None:
    auto = AutoscalerConfig(min_replicas=0, max_replicas=2, poll_interval_s=1.0, cooldown_s=1.5,
                            provisioning_delay_s=0.75)
    res = simulate(_cfg(autoscaler=auto, faults=[Fault(at_s=0.1)]), [_req("a", 1.5, 4, 1)])
    (a,) = res.records
    assert (a.status, a.replica, a.start_s, a.finish_s) == ("ok", "replica-1", 2.25, 3.25)
    assert res.events == [(0.1, "killed", "replica-0"), (1.5, "cold_start", "replica-1"),
                          (2.25, "ready", "replica-1"), (4.0, "scale_down", "replica-1"),
                          (4.0, "removed", "replica-1")]


# ----------------------------------------------------------------------------- timeout in transit
# A 2 s per-request overhead and a 1 s client timeout: the request times out at 1.0 on
# its way to the engine, which never sees it: no start, no tokens; the engine stays idle.
def test_a_request_timing_out_in_transit_never_reaches_the_engine() -> None:
    cfg = SimConfig(replicas=(_overhead_spec(2.0, 1),), admission=AdmissionConfig(client_timeout_s=1.0))
    res = simulate(cfg, [_req("a", 0.0, 4, 3)])
    (a,) = res.records
    assert (a.status, a.finish_s, a.replica) == ("timed_out", 1.0, "replica-0")
    assert (a.start_s, a.first_token_s, a.output_tokens) == (None, None, 0)
    assert res.timeseries["running"] == [0, 0]
    assert res.timeseries["t_s"] == [0.0, 1.0]


# ----------------------------------------------------------------------------- token bucket
# 2 requests/s, bucket of 1 token (burst 1), starting full; a request every 0.25 s. The
# bucket gains 2 · 0.25 = 0.5 token between arrivals:
#   0.00 a: 1.0 -> take 1 -> 0.0        0.25 b: 0.5 < 1 -> 429
#   0.50 c: 1.0 -> take 1 -> 0.0        0.75 d: 0.5 < 1 -> 429
#   1.00 e: 1.0 -> admitted
def test_token_bucket_refills_at_the_rate_by_hand() -> None:
    adm = AdmissionConfig(rate_limit_rps=2.0, burst=1)
    specs = [_req(x, 0.25 * i, 4, 1) for i, x in enumerate("abcde")]
    res = simulate(_cfg(admission=adm), specs)
    r = _by_id(res)
    assert [r[x].status for x in "abcde"] == ["ok", "rejected", "ok", "rejected", "ok"]
    assert (r["b"].reason, r["b"].finish_s) == ("429 rate limited", 0.25)
    assert (r["d"].reason, r["d"].finish_s) == ("429 rate limited", 0.75)


# A prefetch wake-up at the same moment as a sample (both at 4.0) is ordered like any other
# event. Tiers as above but NVMe without latency at 1 B/s (1 s a block): b's 3 NVMe blocks
# land at 1.0 + 3 · 1 = 4.0, then b loads its 4 blocks at the DRAM rate: first token
# 4.0 + 0.004 + 0.01 = 4.014.
def test_a_wake_up_at_the_time_of_a_sample() -> None:
    from servelab.sim import KVTier
    from servelab.sim.tiering import KVPolicy

    dram = KVTier(name="dram", blocks=1, block_bytes=1.0, read_bytes_per_s=1000.0)
    nvme = KVTier(name="nvme", blocks=50, block_bytes=1.0, read_bytes_per_s=1.0, latency_s=0.0)
    pol = KVPolicy(prefetch=True, prefetch_wait=True, prefetch_deadline_s=10.0)
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=12, kv_tiers=(dram, nvme), kv_policy=pol),
                       step_model=ConstantStepModel(step_s=0.01))
    reqs = [_req("a", 0.0, 64, 1, prefix_group=1, prefix_tokens=64), _req("f", 0.5, 190, 1),
            _req("b", 1.0, 80, 1, prefix_group=1, prefix_tokens=64)]
    res = simulate(SimConfig(replicas=(spec,)), reqs)
    b = _by_id(res)["b"]
    assert (b.start_s, b.first_token_s) == (4.0, pytest.approx(4.014))
    assert 4.0 in res.timeseries["t_s"]


# A replica killed while a request waits there for its prefetch: the request is retried
# elsewhere and the wake-up scheduled for the dead replica does nothing. Two replicas,
# one sequence each, the tiers and steps (0.01 s) of the prefetch tests above; round
# robin: a, f, b -> replica-0 and x, y -> replica-1.
#   replica-0: a [0, 0.01] caches the prefix, f [0.5, 0.51] pushes it to the tiers; b
#     (t=1.0) is held for its prefetch (wake-up at 1.035).
#   replica-1: x (4 in, 100 out) [0.05, 1.05]; y (t=0.6) waits, then [1.05, 1.06].
#   1.01: replica-0 killed, b retried: replica-1 is the only one left; b waits behind y
#     (its prefix is in none of replica-1's tiers: plain prefill) and runs [1.06, 1.07].
@pytest.mark.parametrize("exact", [False, True])
def test_a_wake_up_for_a_killed_replica_does_nothing(exact) -> None:
    from servelab.sim import KVTier
    from servelab.sim.tiering import KVPolicy

    dram = KVTier(name="dram", blocks=1, block_bytes=1.0, read_bytes_per_s=1000.0)
    nvme = KVTier(name="nvme", blocks=50, block_bytes=1.0, read_bytes_per_s=100.0, latency_s=0.005)
    pol = KVPolicy(prefetch=True, prefetch_wait=True)
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=12, kv_tiers=(dram, nvme), kv_policy=pol,
                                                 max_num_seqs=1),
                       step_model=ConstantStepModel(step_s=0.01), count=2)
    reqs = [_req("a", 0.0, 64, 1, prefix_group=1, prefix_tokens=64), _req("x", 0.05, 4, 100),
            _req("f", 0.5, 190, 1), _req("y", 0.6, 4, 1),
            _req("b", 1.0, 80, 1, prefix_group=1, prefix_tokens=64)]
    res = simulate(SimConfig(replicas=(spec,), exact=exact,
                             faults=(Fault(at_s=1.01, replica=0, in_flight="retry"),)), reqs)
    r = _by_id(res)
    assert [r[k].status for k in "axfyb"] == ["ok"] * 5
    assert (r["y"].replica, r["y"].start_s) == ("replica-1", pytest.approx(1.05))
    b = r["b"]
    assert (b.replica, b.retries) == ("replica-1", 1)
    assert (b.start_s, b.first_token_s) == (pytest.approx(1.06), pytest.approx(1.07))
    assert res.events == [(1.01, "killed", "replica-0")]


# ----------------------------------------------------------------------------- P/D fault
# Prefill/decode fleet: p (1 s steps), d-0 and d-1 (0.125 s steps); KV link 128 B/s +
# 0.125 s, 16 B a token, so n tokens take 0.125 + n/8 s, one transfer at a time per
# prefill replica. a (24 in / 3 out): prefill [0, 1], transfer to d-0 [1, 4.125].
# b (2 in / 1 out, t=0.5): prefill [1, 2], then waits for the link, bound for d-1 (d-0
# already has a incoming). d-0 is killed at 2.5: a fails there, its transfer is dropped
# and the link starts b's at 2.5: [2.5, 2.875], one decode step -> first token 3.0.
def test_pd_killing_a_transfer_target_hands_the_link_to_the_next_transfer() -> None:
    from servelab.sim import DisaggConfig, KVLink

    s = _sched(num_kv_blocks=64, enable_prefix_caching=True)
    cfg = SimConfig(
        replicas=(ReplicaSpec(name="p", scheduler=s, step_model=_STEP),
                  ReplicaSpec(name="d", scheduler=s, count=2, step_model=ConstantStepModel(step_s=0.125))),
        disagg=DisaggConfig(prefill=0, decode=1, link=KVLink(name="t", bytes_per_s=128.0, latency_s=0.125),
                            kv_bytes_per_token=16.0),
        faults=(Fault(at_s=2.5, replica="d-0"),))
    res = simulate(cfg, [_req("a", 0.0, 24, 3), _req("b", 0.5, 2, 1)])
    r = _by_id(res)
    assert (r["a"].status, r["a"].reason, r["a"].finish_s) == ("failed", "replica d-0 killed", 2.5)
    assert (r["b"].status, r["b"].replica) == ("ok", "d-1")
    assert (r["b"].first_token_s, r["b"].finish_s) == (3.0, 3.0)


# ----------------------------------------------------------------------------- HPA rule
# One replica, one sequence at a time, n + 1 requests at t=0 (2 outputs each): one runs,
# n wait. The first poll (0.5 s) sees ratio = n / target. Tolerance 0.5: inside the band
# |r - 1| <= 0.5 (edges included) the recommendation is the current count, 1; the
# waiting count only falls afterwards, so no poll ever asks for more. Outside the band
# (r = 2): ceil(1 · 2) = 2, a scale-up at 0.5.
@pytest.mark.parametrize("n, target, scales_up", [(3, 2.0, False), (6, 5.0, False), (4, 2.0, True)])
def test_tolerance_band_of_the_autoscaler(n, target, scales_up) -> None:
    auto = AutoscalerConfig(metric="waiting", target=target, tolerance=0.5, poll_interval_s=0.5,
                            min_replicas=1, max_replicas=2)
    res = simulate(_cfg(autoscaler=auto, max_num_seqs=1), [_req(f"r{i}", 0.0, 4, 2) for i in range(n + 1)])
    ups = [e for e in res.events if e[1] == "scale_up"]
    assert ups == ([(0.5, "scale_up", "replica-1")] if scales_up else [])


# Stabilization window: polls at 1, 2, 3 s, window 2 s (polls at t > now - 2 count). Two
# replicas, one sequence each, 4 requests at t=0 (2 outputs), two per replica: at the
# poll at 1 each replica has one waiting (mean 1 = target: recommendation 2); at 2 and 3
# nothing waits (recommendation 0, clamped to 1). Poll 2: window {1: 2, 2: 1} -> 2, keep.
# Poll 3: window {2: 1, 3: 1} (the poll at exactly 3 - 2 = 1 is out) -> 1: the newest,
# replica-1, drains (busy until 4) and is removed at 4.
def test_stabilization_window_excludes_its_left_edge() -> None:
    auto = AutoscalerConfig(metric="waiting", target=1.0, poll_interval_s=1.0, cooldown_s=2.0,
                            min_replicas=1, max_replicas=2)
    res = simulate(_cfg(count=2, autoscaler=auto, max_num_seqs=1), [_req(f"r{i}", 0.0, 4, 2) for i in range(4)])
    assert res.events == [(3.0, "scale_down", "replica-1"), (4.0, "removed", "replica-1")]
    assert [r.finish_s for r in res.records] == [2.0, 2.0, 4.0, 4.0]


# A fault shrinks the fleet below the window's recommendation: three replicas, each with
# one running and one waiting request at the poll at 1 (mean 1 = target: keep 3);
# replica-2 is killed at 1.5 (its two requests fail). Later polls (window 10 s) keep the
# highest recommendation, 3, which is above the 2 ready replicas: no scale-down (and no
# scale-up either: the recommendations from 2 ready replicas are at most 2).
def test_no_scale_down_while_the_window_wants_more_than_are_ready() -> None:
    auto = AutoscalerConfig(metric="waiting", target=1.0, poll_interval_s=1.0, cooldown_s=10.0,
                            min_replicas=1, max_replicas=3)
    res = simulate(_cfg(count=3, autoscaler=auto, max_num_seqs=1, faults=[Fault(at_s=1.5, replica=2)]),
                   [_req(f"r{i}", 0.0, 4, 2) for i in range(6)])
    assert res.events == [(1.5, "killed", "replica-2")]
    assert [r.status for r in res.records] == ["ok", "ok", "failed", "ok", "ok", "failed"]
