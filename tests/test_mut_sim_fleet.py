"""Tiny runs of the scheduler and the fleet worked out by hand (constant 1 s steps, a few
requests): recompute preemption, prefix-cache hits, the token bucket, the queue limit,
client timeouts, replica faults, the time-series gauges, the run summary and the
request state. Each expected number is derived in the comments from the documented
rules, not read from a run.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from servelab.catalog import RequestSpec
from servelab.errors import ConfigError
from servelab.sim import (
    AdmissionConfig,
    AutoscalerConfig,
    ConstantStepModel,
    Fault,
    KVTier,
    ReplicaEngine,
    ReplicaSpec,
    SchedulerConfig,
    SimConfig,
    SimRequest,
    simulate,
)
from servelab.sim.series import server_section_of
from servelab.sim.summary import summarize_result

_STEP = ConstantStepModel(step_s=1.0)


def _cfg(*, blocks: int = 64, count: int = 1, exact: bool = False, router: str = "round_robin",
         admission: AdmissionConfig | None = None, faults=(), **sched) -> SimConfig:
    s = SchedulerConfig(**{"block_size": 4, "num_kv_blocks": blocks, "max_num_batched_tokens": 64,
                           "max_num_seqs": 8, **sched})
    return SimConfig(replicas=(ReplicaSpec(scheduler=s, count=count, step_model=_STEP),), router=router,
                     exact=exact, admission=admission or AdmissionConfig(), faults=tuple(faults))


def _req(rid: str, t: float, n_in: int, n_out: int, **kw) -> RequestSpec:
    return RequestSpec(id=rid, arrival_s=t, input_tokens=n_in, output_tokens=n_out, **kw)


def _by_id(res) -> dict:
    return {r.id: r for r in res.records}


# ----------------------------------------------------------------------------- preemption
@pytest.mark.parametrize("exact", [True, False])
def test_recompute_preemption_by_hand(exact) -> None:
    """4 blocks of 4 tokens. a, b: 4 in / 8 out at t=0, budget 64. a's arrival starts a
    step on the idle replica at once; b (same instant) joins at the next step.
    step 1 [0,1]: a prefills (1 block) → 1 output.
    step 2 [1,2]: a ctx 4 → 2nd block; b prefills (1 block) → 3 used; a 2, b 1 (first at 2).
    step 3: b ctx 4 → 2nd block (4 used). steps 3–5: a → 5, b → 4 outputs (b: 7 tokens of KV).
    step 6 [5,6]: a ctx 8 needs a 3rd block, none free → the newest (b) is preempted: its
      one full block stays cached, its partial one is freed and a takes it. No admission in
      a step that preempted. a → 6.
    step 7 [6,7]: a → 7. b (prompt 4 + 4 = 8): block 0 is a hit, needs 2 − 1 = 1 more; a
      holds 3, the hit 1 → none free, b waits. step 8 [7,8]: a → 8, done at 8.
    step 9 [8,9]: b recomputes 8 − 4 = 4 tokens → its 5th token at 9; 6, 7, 8 at 10, 11, 12.
    Prefix cache: queried 4 + 4 + 8 tokens, hit 4 (b's block 0)."""
    res = simulate(_cfg(blocks=4, exact=exact), [_req("a", 0.0, 4, 8), _req("b", 0.0, 4, 8)])
    r = _by_id(res)
    assert r["a"].first_token_s == 1.0 and r["a"].finish_s == 8.0
    assert r["b"].first_token_s == 2.0 and r["b"].finish_s == 12.0
    assert r["b"].output_tokens == 8 and r["b"].start_s == 1.0
    st = res.replica_stats["replica-0"]
    assert st["num_preempted"] == 1
    assert st["prefix_cache_hit_rate"] == pytest.approx(4 / 16)
    assert res.duration_s == 12.0


@pytest.mark.parametrize("exact", [True, False])
def test_preemption_without_prefix_caching_recomputes_everything(exact) -> None:
    """As above without prefix caching: at step 7 b needs ceil(8/4) = 2 blocks, a holds 3 of 4
    → waits; a done at 8; step 9: b prefills 8 tokens → 5th token at 9; done at 12.
    Hit rate 0 (nothing is looked up or counted)."""
    res = simulate(_cfg(blocks=4, exact=exact, enable_prefix_caching=False),
                   [_req("a", 0.0, 4, 8), _req("b", 0.0, 4, 8)])
    r = _by_id(res)
    assert (r["a"].finish_s, r["b"].finish_s) == (8.0, 12.0)
    assert res.replica_stats["replica-0"]["prefix_cache_hit_rate"] == 0.0


def test_preempted_request_goes_to_the_front_of_the_queue() -> None:
    """3 blocks. a, b: 4 in / 6 out at 0 (b joins at step 2); c: 4 in / 1 out at 0.5.
    step 1 [0,1]: a prefills (1 block).
    step 2 [1,2]: a ctx 4 → 2nd block; b admitted (3rd block); c: no block left, waits.
    step 3 [2,3]: b ctx 4 needs a block, none free → b (newest) preempted, its full block 0
      stays cached; b goes to the FRONT of the queue, ahead of c. No admission. a → 3.
    steps 4, 5: b (prompt 4 + 1 = 5): hit block 0, needs 1 more, none free → waits, and c
      behind it waits too (head of line). a → 4, 5.
    step 6 [5,6]: a ctx 8 needs a block: b's cached block 0 is evicted. a → 6, done at 6.
    step 7 [6,7]: b (no hit now, 2 blocks) then c (1 block) admitted; c done at 7; b's 2nd
      token at 7, then 3..6 at 8..11."""
    res = simulate(_cfg(blocks=3, exact=True),
                   [_req("a", 0.0, 4, 6), _req("b", 0.0, 4, 6), _req("c", 0.5, 4, 1)])
    r = _by_id(res)
    assert r["a"].finish_s == 6.0
    assert r["c"].start_s == 6.0 and r["c"].finish_s == 7.0
    assert r["b"].first_token_s == 2.0 and r["b"].finish_s == 11.0
    assert res.replica_stats["replica-0"]["num_preempted"] == 1


# ----------------------------------------------------------------------------- prefix cache
@pytest.mark.parametrize("exact", [True, False])
def test_group_prefix_hit_by_hand(exact) -> None:
    """Group 0 shares 8 tokens (2 blocks of 4). a: 12 in / 1 out at 0 → computes 12,
    registers the 2 group blocks. b: same group, 12 in / 2 out at 5: lookup (12 − 1) // 4
    = 2 blocks → 2 hits → 8 cached tokens, prefills 4. c: other group 1 at 5: no hit.
    Hit rate 8 / 36."""
    specs = [_req("a", 0.0, 12, 1, prefix_group=0, prefix_tokens=8),
             _req("b", 5.0, 12, 2, prefix_group=0, prefix_tokens=8),
             _req("c", 5.0, 12, 1, prefix_group=1, prefix_tokens=8)]
    res = simulate(_cfg(exact=exact), specs)
    r = _by_id(res)
    assert r["a"].cached_tokens == 0 and r["b"].cached_tokens == 8 and r["c"].cached_tokens == 0
    assert r["a"].finish_s == 1.0 and r["b"].first_token_s == 6.0 and r["b"].finish_s == 7.0
    assert res.replica_stats["replica-0"]["prefix_cache_hit_rate"] == pytest.approx(8 / 36)


def test_prefix_hit_never_covers_the_whole_prompt() -> None:
    """A prompt of exactly the shared 8 tokens: the lookup stops at (8 − 1) // 4 = 1 block
    (the last token is always computed) → 4 cached tokens."""
    specs = [_req("a", 0.0, 8, 1, prefix_group=0, prefix_tokens=8),
             _req("b", 5.0, 8, 1, prefix_group=0, prefix_tokens=8)]
    r = _by_id(simulate(_cfg(), specs))
    assert r["b"].cached_tokens == 4


def test_conversation_turn_reuses_the_previous_turn() -> None:
    """Conversation 3: turn 1 has 6 in / 3 out (KV after it: 6 + 3 − 1 = 8 tokens → 2 full
    blocks registered at finish). Turn 2 at t=10: 14 in → lookup (14 − 1) // 4 = 3 blocks,
    2 hit → 8 cached tokens."""
    specs = [_req("t1", 0.0, 6, 3, conversation=3), _req("t2", 10.0, 14, 1, conversation=3)]
    r = _by_id(simulate(_cfg(), specs))
    assert r["t2"].cached_tokens == 8


def test_offload_tier_brings_a_prefix_back_with_its_load_time() -> None:
    """GPU 4 blocks, DRAM tier 8 blocks, 1 ms latency + 0.25 s per block.
    a (group 0, 8 shared of 9 in, 1 out) at 0 → done at 1, group blocks g0, g1 cached.
    x (12 in / 1 out, no group) at 2: needs 3 blocks + ... free_uncached 2 → evicts g1 then
      g0?  free: 4 blocks, a left 2 cached + 2 uncached; x takes 2 uncached + 1 evicted (the
      LRU one: a released tail first → g1 is LRU) → g1 goes to DRAM. x done at 3.
    b (group 0, 9 in, 1 out) at 5: GPU hit g0 (1 block), DRAM hit g1 (1 block) → loaded:
      step = 1 s + 0.001 + 0.25 → first token at 6.251; 8 cached tokens; DRAM hit 4 tokens."""
    tier = KVTier(name="dram", blocks=8, block_bytes=0.25, read_bytes_per_s=1.0, latency_s=0.001)
    s = SchedulerConfig(block_size=4, num_kv_blocks=4, max_num_batched_tokens=64, max_num_seqs=8,
                        kv_tiers=(tier,))
    cfg = SimConfig(replicas=(ReplicaSpec(scheduler=s, step_model=_STEP),))
    specs = [_req("a", 0.0, 9, 1, prefix_group=0, prefix_tokens=8), _req("x", 2.0, 12, 1),
             _req("b", 5.0, 9, 1, prefix_group=0, prefix_tokens=8)]
    res = simulate(cfg, specs)
    r = _by_id(res)
    assert r["x"].finish_s == 3.0
    assert r["b"].cached_tokens == 8
    assert r["b"].finish_s == pytest.approx(6.251)
    st = res.replica_stats["replica-0"]
    assert st["kv_tier_hit_tokens"] == {"dram": 4} and st["cpu_kv_hit_tokens"] == 4


# ----------------------------------------------------------------------------- admission
def test_token_bucket_by_hand() -> None:
    """1 token/s, burst 2, bucket full at start. Arrivals 0, 0, 0, 0.5, 1.5, 2.0, 2.2:
    2→1 ok, 1→0 ok, 0 rejected, 0.5 rejected, 0.5+1=1.5 ok → 0.5, 0.5+0.5=1.0 ok → 0,
    0.2 rejected."""
    times = [0.0, 0.0, 0.0, 0.5, 1.5, 2.0, 2.2]
    specs = [_req(f"r{i}", t, 4, 1) for i, t in enumerate(times)]
    res = simulate(_cfg(admission=AdmissionConfig(rate_limit_rps=1.0, burst=2.0)), specs)
    got = [rec.status for rec in sorted(res.records, key=lambda x: int(x.id[1:]))]
    assert got == ["ok", "ok", "rejected", "rejected", "ok", "ok", "rejected"]
    rej = [rec for rec in res.records if rec.status == "rejected"]
    assert all(rec.reason == "429 rate limited" and rec.finish_s == rec.arrival_s for rec in rej)


def test_bucket_size_default() -> None:
    assert AdmissionConfig(rate_limit_rps=5.0).bucket_size == 5.0
    assert AdmissionConfig(rate_limit_rps=0.5).bucket_size == 1.0
    assert AdmissionConfig(rate_limit_rps=0.5, burst=3.0).bucket_size == 3.0
    assert AdmissionConfig().bucket_size == 1.0


def test_fleet_queue_limit_by_hand() -> None:
    """max_queue 1, max_num_seqs 1, 1 s steps. a (4/2) at 0 runs; b at 0.1 waits (1 in
    queue); c at 0.2 → 503; a done at 2, b runs 2..4; d at 2.5 → queue empty → waits, ok."""
    specs = [_req("a", 0.0, 4, 2), _req("b", 0.1, 4, 2), _req("c", 0.2, 4, 2), _req("d", 2.5, 4, 1)]
    res = simulate(_cfg(max_num_seqs=1, admission=AdmissionConfig(max_queue=1)), specs)
    r = _by_id(res)
    assert [r[k].status for k in "abcd"] == ["ok", "ok", "rejected", "ok"]
    assert r["c"].reason == "503 queue full"
    assert r["b"].start_s == 2.0 and r["b"].finish_s == 4.0 and r["d"].finish_s == 5.0


def test_replica_max_waiting_and_too_large_requests() -> None:
    specs = [_req("a", 0.0, 4, 2), _req("b", 0.1, 4, 2), _req("c", 0.2, 4, 2), _req("big", 0.3, 400, 1)]
    res = simulate(_cfg(max_num_seqs=1, max_waiting=1), specs)
    r = _by_id(res)
    assert [r[k].status for k in ("a", "b", "c", "big")] == ["ok", "ok", "rejected", "failed"]
    assert r["c"].reason == "503 queue full"
    assert r["big"].reason.startswith("400 request needs 401 tokens of KV")
    assert r["big"].replica is None


def test_client_timeout_by_hand() -> None:
    """Timeout 2.5 s. a: 4 in / 10 out at 0 (tokens at 1, 2, 3, …) → timed out at 2.5.
    b: 4 in / 1 out at 0 → done at 1 (< 2.5), ok. c arrives at 3.0 (4/1) and runs at once:
    a's blocks were freed at the step boundary → done at 4."""
    specs = [_req("a", 0.0, 4, 10), _req("b", 0.0, 4, 1), _req("c", 3.0, 4, 1)]
    res = simulate(_cfg(admission=AdmissionConfig(client_timeout_s=2.5)), specs)
    r = _by_id(res)
    assert r["a"].status == "timed_out" and r["a"].finish_s == 2.5
    assert r["a"].reason == "client timeout after 2.5 s"
    assert r["a"].first_token_s == 1.0
    assert r["b"].status == "ok" and r["c"].status == "ok" and r["c"].finish_s == 4.0


@pytest.mark.parametrize("exact", [True, False])
def test_timed_out_request_leaves_the_batch_at_the_next_step(exact) -> None:
    """One sequence at a time, timeout 2.5 s. a: 4 in / 10 out at 0 holds the only slot;
    it times out at 2.5 and is dropped at the step boundary 3. c (4 in / 1 out, at 2.75,
    deadline 5.25) then runs [3, 4]. Samples every 1 s cover the run to its last event (4)."""
    res = simulate(_cfg(max_num_seqs=1, exact=exact, admission=AdmissionConfig(client_timeout_s=2.5)),
                   [_req("a", 0.0, 4, 10), _req("c", 2.75, 4, 1)])
    r = _by_id(res)
    assert r["a"].status == "timed_out" and r["a"].finish_s == 2.5
    assert r["c"].status == "ok" and r["c"].start_s == 3.0 and r["c"].finish_s == 4.0
    assert res.timeseries["t_s"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert res.timeseries["running"] == [1, 1, 1, 1, 0]     # a arrives before the sample at 0
    st = res.replica_stats["replica-0"]
    assert st["waiting"] == 0 and st["running"] == 0 and st["kv_usage_perc"] == 0.0


def test_second_fault_on_a_dead_replica_is_ignored_and_status_stays_failed() -> None:
    """replica-0 killed at 1.5 (a fails there); the fault at 2 finds it dead. a's client
    timeout (10 s) must not turn its 'failed' into 'timed_out'."""
    res = simulate(_cfg(count=2, faults=[Fault(at_s=1.5, replica=0), Fault(at_s=2.0, replica="replica-0")],
                        admission=AdmissionConfig(client_timeout_s=10.0)),
                   [_req("a", 0.0, 4, 4), _req("b", 0.0, 4, 4)])
    r = _by_id(res)
    assert r["a"].status == "failed" and r["a"].finish_s == 1.5
    assert r["b"].status == "ok"
    assert [e for e in res.events if e[1] in ("killed", "fault_ignored")] == [
        (1.5, "killed", "replica-0"), (2.0, "fault_ignored", "replica-0")]


@pytest.mark.parametrize("mode, status", [("fail", "failed"), ("retry", "ok")])
def test_fault_kills_a_replica_by_hand(mode, status) -> None:
    """Two replicas, round robin: a → replica-0, b → replica-1, both 4 in / 4 out at 0.
    replica-0 killed at 1.5: a (1 token so far) fails at 1.5, or is sent again: the only
    replica left is replica-1 (b running) → a restarts at 1.5 and joins b's batch:
    b's step [1,2] is in flight; a arrives mid-step and joins at 2: first token at 3,
    tokens at 4, 5, 6 → done at 6 (4 outputs). b unaffected: done at 4."""
    res = simulate(_cfg(count=2, exact=True, faults=[Fault(at_s=1.5, replica=0, in_flight=mode)]),
                   [_req("a", 0.0, 4, 4), _req("b", 0.0, 4, 4)])
    r = _by_id(res)
    assert r["a"].status == status
    assert r["b"].status == "ok" and r["b"].finish_s == 4.0 and r["b"].replica == "replica-1"
    if mode == "fail":
        assert r["a"].finish_s == 1.5 and r["a"].reason == "replica replica-0 killed"
        assert r["a"].retries == 0
    else:
        assert r["a"].retries == 1 and r["a"].replica == "replica-1"
        assert r["a"].first_token_s == 3.0 and r["a"].finish_s == 6.0
    assert ("killed" in [e[1] for e in res.events])


def test_fault_on_a_missing_replica_is_ignored() -> None:
    res = simulate(_cfg(faults=[Fault(at_s=0.5, replica="nope")]), [_req("a", 0.0, 4, 2)])
    assert _by_id(res)["a"].status == "ok"
    assert (0.5, "fault_ignored", "nope") in res.events


def test_no_ready_replica_rejects() -> None:
    cfg = SimConfig(replicas=(ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=8), count=0,
                                          step_model=_STEP),))
    r = simulate(cfg, [_req("a", 0.0, 4, 1)]).records[0]
    assert r.status == "rejected" and r.reason == "503 no ready replica"


def _zero(max_queue=None, timeout=None) -> SimConfig:
    a = AutoscalerConfig(min_replicas=0, max_replicas=2, provisioning_delay_s=3.0,
                         model_load_delay_s=2.0, poll_interval_s=100.0)
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    return SimConfig(replicas=(ReplicaSpec(scheduler=s, count=0, step_model=_STEP),), autoscaler=a,
                     admission=AdmissionConfig(max_queue=max_queue, client_timeout_s=timeout))


def test_scale_to_zero_router_queue_limit_and_timeouts() -> None:
    """Cold start 5 s. max_queue 2: a (0) and b (0.5) wait at the router, c (1) is refused
    ("503 queue full"). Timeout 5.25 s: the replica is ready at 5 and runs a and b [5,6];
    a times out at 5.25 and b at 5.75 while that step runs. d (4 in / 1 out, at 5.5) joins
    at the next step [6,7] → done at 7 (deadline 10.75)."""
    res = simulate(_zero(max_queue=2, timeout=5.25),
                   [_req("a", 0.0, 4, 1), _req("b", 0.5, 4, 1), _req("c", 1.0, 4, 1), _req("d", 5.5, 4, 1)])
    r = _by_id(res)
    assert r["c"].status == "rejected" and r["c"].reason == "503 queue full" and r["c"].finish_s == 1.0
    assert r["a"].status == "timed_out" and r["a"].finish_s == 5.25 and r["a"].start_s == 5.0
    assert r["b"].status == "timed_out" and r["b"].finish_s == 5.75
    assert r["d"].status == "ok" and r["d"].finish_s == 7.0
    assert [e[1] for e in res.events].count("cold_start") == 1


def test_scale_to_zero_request_timed_out_while_held_is_skipped() -> None:
    """Timeout 2 s, cold start 5 s: a (0) times out at 2 while waiting at the router; b
    (arrives at 4.5, deadline 6.5) is dispatched when the replica is ready at 5 → done at 6."""
    res = simulate(_zero(timeout=2.0), [_req("a", 0.0, 4, 1), _req("b", 4.5, 4, 1)])
    r = _by_id(res)
    assert r["a"].status == "timed_out" and r["a"].finish_s == 2.0 and r["a"].replica is None
    assert r["b"].status == "ok" and r["b"].finish_s == 6.0


def test_scale_to_zero_cold_start_by_hand() -> None:
    """min 0 replicas, provisioning 3 s + load 2 s: a at 1.0 starts a replica at once,
    ready at 6 → a (4 in / 2 out) first token at 7, done at 8."""
    a = AutoscalerConfig(min_replicas=0, max_replicas=2, provisioning_delay_s=3.0,
                         model_load_delay_s=2.0, poll_interval_s=100.0)
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    cfg = SimConfig(replicas=(ReplicaSpec(scheduler=s, count=0, step_model=_STEP),), autoscaler=a)
    res = simulate(cfg, [_req("a", 1.0, 4, 2)])
    r = res.records[0]
    assert r.status == "ok" and r.first_token_s == 7.0 and r.finish_s == 8.0
    assert (1.0, "cold_start", "replica-0") in res.events and (6.0, "ready", "replica-0") in res.events
    assert [e[1] for e in res.events].count("cold_start") == 1


# ----------------------------------------------------------------------------- gauges
def test_timeseries_gauges_by_hand() -> None:
    """Samples every 1 s from 0. a: 8 in / 3 out at 0.5 on 16 blocks of 4: prefill
    [0.5,1.5] (2 blocks), decodes [1.5,2.5] (ctx 8 → 3rd block at its start), [2.5,3.5].
    Sample at 0: nothing. At 1, 2, 3: 1 running; KV 2/16 at 1, 3/16 at 2 and 3."""
    cfg = SimConfig(replicas=(ReplicaSpec(scheduler=SchedulerConfig(
        block_size=4, num_kv_blocks=16, max_num_batched_tokens=64, max_num_seqs=8), step_model=_STEP),),
        timeseries_interval_s=1.0)
    res = simulate(cfg, [_req("a", 0.5, 8, 3)])
    ts = res.timeseries
    assert ts["t_s"][:4] == [0.0, 1.0, 2.0, 3.0]
    assert ts["running"][:4] == [0, 1, 1, 1]
    assert ts["waiting"][:4] == [0, 0, 0, 0]
    assert ts["replicas"][:4] == [1, 1, 1, 1]
    assert ts["kv_usage"][:4] == pytest.approx([0.0, 2 / 16, 3 / 16, 3 / 16])
    sec = server_section_of(ts)
    assert sec["source"] == "simulator"
    assert set(sec["series"]) == {"running", "waiting", "kv_usage", "replicas"}
    assert sec["t_s"] == ts["t_s"] and sec["series"]["running"] == ts["running"]


def test_server_section_of_empty() -> None:
    assert server_section_of(None) is None
    assert server_section_of({}) is None
    assert server_section_of({"t_s": []}) is None
    got = server_section_of({"t_s": [0.0, 1.0], "running": [1, 2], "other": [5, 5]})
    assert got["series"] == {"running": [1.0, 2.0]}


def test_summarize_result_sums_tier_hits_over_replicas() -> None:
    result = SimpleNamespace(
        records=[], duration_s=10.0, events=[(1.0, "ready", "r1")],
        replica_stats={"r0": {"kv_tier_hit_tokens": {"dram": 16, "nvme": 4}},
                       "r1": {"kv_tier_hit_tokens": {"dram": 8}}, "r2": {}})
    s = summarize_result(result, engine="vllm")
    assert s["sim"]["kv_tier_hit_tokens"] == {"dram": 24, "nvme": 4}
    assert s["sim"]["makespan_s"] == 10.0 and s["sim"]["engine"] == "vllm"
    assert s["sim"]["events"] == [[1.0, "ready", "r1"]]
    assert s["sim"]["replicas"] is result.replica_stats


def test_summarize_result_window_divides_throughput() -> None:
    """4 requests of 4 in / 10 out at 0: r0 starts alone [0,1] (the others arrive while
    that step runs), its 10th token at 10; r1..r3 prefill [1,2], 10th token at 11.
    40 output tokens over the 11 s makespan; over a given 20 s window 2 tokens/s."""
    res = simulate(_cfg(), [_req(f"r{i}", 0.0, 4, 10) for i in range(4)])
    assert res.duration_s == 11.0
    a = summarize_result(res)
    b = summarize_result(res, window_s=20.0)
    assert a["throughput_tokens_per_s"] == pytest.approx(40 / 11)
    assert b["throughput_tokens_per_s"] == pytest.approx(2.0)
    assert a["sim"]["makespan_s"] == b["sim"]["makespan_s"] == 11.0


# ----------------------------------------------------------------------------- request state
def test_sim_request_initial_state_and_reset() -> None:
    spec = _req("x", 2.5, 7, 0, priority=3)
    r = SimRequest(spec, 5)
    assert (r.rid, r.idx, r.input, r.target, r.priority, r.arrival_s) == ("x", 5, 7, 1, 3, 2.5)
    assert r.prompt_len == 7 and r.outputs == r.computed == 0 and r.state == 0
    assert r.start_s is r.first_token_s is r.finish_s is None and r.token_times is None
    assert r.replica is None and r.dispatch_s is None and r.retries == 0 and not r.remote
    r.token_times = [1.0]
    r.outputs, r.computed, r.prompt_len, r.state, r.shared = 3, 9, 10, 2, [1]
    r.start_s, r.first_token_s, r.recompute, r.cached_tokens = 1.0, 2.0, True, 4
    r.reset()
    assert r.prompt_len == 7 and r.outputs == r.computed == 0 and r.state == 0
    assert r.shared == [] and r.chain == [] and r.registered == 0 and r.token_times == []
    assert r.start_s is None and r.first_token_s is None and not r.recompute and r.cached_tokens == 0
    assert SimRequest(_req("y", 0.0, 3, 5), 0).target == 5


# ----------------------------------------------------------------------------- config errors
@pytest.mark.parametrize("kw, words", [
    ({"max_num_seqs": 0}, "max_num_seqs must be > 0, got 0"),
    ({"max_num_batched_tokens": 4, "max_num_seqs": 8}, "max_num_batched_tokens (4) must be >= max_num_seqs (8)"),
    ({"block_size": 0}, "block_size must be > 0"),
    ({"num_kv_blocks": 0}, "num_kv_blocks must be > 0"),
    ({"max_waiting": -1}, "max_waiting must be >= 0"),
    ({"scheduling_policy": "lifo"}, "unknown scheduling_policy 'lifo'"),
    ({"preemption": "swap"}, "unknown preemption 'swap'"),
    ({"num_speculative_tokens": -1}, "num_speculative_tokens >= 0"),
    ({"spec_acceptance_rate": 1.5}, "spec_acceptance_rate"),
    ({"spec_draft_cost": -0.1}, "spec_draft_cost"),
    ({"max_loras": -1}, "max_loras and lora_load_s must be >= 0"),
    ({"lora_load_s": -1.0}, "max_loras and lora_load_s must be >= 0"),
    ({"kv_tiers": (KVTier(name="a", blocks=1), KVTier(name="a", blocks=2))}, "unique"),
])
def test_scheduler_config_errors_name_the_value(kw, words) -> None:
    with pytest.raises(ConfigError, match=None) as e:
        SchedulerConfig(**kw)
    assert words in str(e.value)


def test_scheduler_config_limits_are_accepted() -> None:
    SchedulerConfig(max_num_seqs=8, max_num_batched_tokens=8, max_waiting=0,
                    spec_acceptance_rate=1.0, num_speculative_tokens=0)
    SchedulerConfig(spec_acceptance_rate=0.0, max_loras=0, lora_load_s=0.0, spec_draft_cost=0.0)
    SchedulerConfig(scheduling_policy="priority")


@pytest.mark.parametrize("k, a, want", [
    (0, 0.9, 1.0), (3, 1.0, 4.0), (3, 0.0, 1.0), (2, 0.5, 1.75), (4, 0.8, (1 - 0.8 ** 5) / 0.2),
])
def test_spec_tokens_per_step(k, a, want) -> None:
    """E = 1 + α + … + α^k (geometric series)."""
    c = SchedulerConfig(num_speculative_tokens=k, spec_acceptance_rate=a)
    assert c.spec_tokens_per_step == pytest.approx(want, rel=1e-12)


def test_kv_tier_errors_and_load_time() -> None:
    assert KVTier(name="d", blocks=4, block_bytes=6.0, read_bytes_per_s=3.0).load_s_per_block == 2.0
    for kw, words in (({"name": "", "blocks": 1}, "name must not be empty"),
                      ({"name": "d", "blocks": -1}, "must be >= 0"),
                      ({"name": "d", "blocks": 1, "block_bytes": -1.0}, "must be >= 0"),
                      ({"name": "d", "blocks": 1, "latency_s": -1.0}, "must be >= 0"),
                      ({"name": "d", "blocks": 1, "read_bytes_per_s": 0.0}, "read_bytes_per_s must be > 0")):
        with pytest.raises(ConfigError) as e:
            KVTier(**kw)
        assert words in str(e.value)
    KVTier(name="d", blocks=0, block_bytes=0.0, latency_s=0.0)
    c = SchedulerConfig(kv_tiers=(KVTier(name="a", blocks=0), KVTier(name="b", blocks=3)))
    assert [t.name for t in c.offload_tiers()] == ["b"]


def test_fleet_config_errors() -> None:
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=8), step_model=_STEP)
    cases = [
        (lambda: SimConfig(replicas=(spec,), router="random"), "unknown router 'random'"),
        (lambda: SimConfig(replicas=()), "replicas is empty"),
        (lambda: SimConfig(replicas=(spec,), timeseries_interval_s=0.0), "timeseries_interval_s must be > 0"),
        (lambda: SimConfig(replicas=(spec,), autoscaler=AutoscalerConfig(template=1)), "template 1"),
        (lambda: ReplicaSpec(count=-1, scheduler=SchedulerConfig(num_kv_blocks=8), step_model=_STEP),
         "count must be >= 0"),
        (lambda: ReplicaSpec(step_model=_STEP), "needs step_model and scheduler.num_kv_blocks"),
        (lambda: ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=8)), "needs step_model"),
        (lambda: AdmissionConfig(max_queue=-1), "max_queue must be >= 0"),
        (lambda: AdmissionConfig(rate_limit_rps=0.0), "rate_limit_rps must be > 0"),
        (lambda: AdmissionConfig(burst=float("nan")), "burst must be > 0"),
        (lambda: AdmissionConfig(client_timeout_s=-1.0), "client_timeout_s must be > 0"),
        (lambda: AutoscalerConfig(metric="cpu"), "unknown autoscaler metric 'cpu'; known: waiting, kv_usage, running"),
        (lambda: AutoscalerConfig(target=0.0), "target must be > 0"),
        (lambda: AutoscalerConfig(poll_interval_s=0.0), "poll_interval_s must be > 0"),
        (lambda: AutoscalerConfig(min_replicas=-1), "min_replicas"),
        (lambda: AutoscalerConfig(min_replicas=3, max_replicas=2), "3..2"),
        (lambda: AutoscalerConfig(min_replicas=0, max_replicas=0), "max_replicas >= 1"),
        (lambda: AutoscalerConfig(cooldown_s=-1.0), "cooldown_s must be >= 0"),
        (lambda: AutoscalerConfig(provisioning_delay_s=-1.0), "provisioning_delay_s must be >= 0"),
        (lambda: AutoscalerConfig(model_load_delay_s=-1.0), "model_load_delay_s must be >= 0"),
        (lambda: Fault(at_s=1.0, action="stop"), "unknown fault action 'stop'"),
        (lambda: Fault(at_s=1.0, in_flight="drop"), "unknown in_flight 'drop'"),
    ]
    for make, words in cases:
        with pytest.raises(ConfigError) as e:
            make()
        assert words in str(e.value), (words, str(e.value))
    SimConfig(replicas=(spec,), autoscaler=AutoscalerConfig(template=0, min_replicas=0, max_replicas=1,
                                                           cooldown_s=0.0))
    AdmissionConfig(max_queue=0)
