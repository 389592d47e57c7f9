"""Less travelled paths of the fleet worked out by hand: KV prefetch (with and without
holding the request), per-request overhead in transit, P/D timeouts and faults during a
KV transfer, and the small helpers of the disaggregation and tier policy modules.
Times are chosen as binary fractions so the hand values are exact in floating point.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from servelab.catalog import RequestSpec
from servelab.errors import ConfigError
from servelab.sim import (
    AdmissionConfig,
    AffineStepModel,
    ConstantStepModel,
    DisaggConfig,
    Fault,
    KVLink,
    KVPolicy,
    KVTier,
    ReplicaEngine,
    ReplicaSpec,
    SchedulerConfig,
    SimConfig,
    link_for,
    simulate,
    transfer_s,
)
from servelab.sim.tiering import PolicyBlockPool, best_restore, restore_s

_ONE = ConstantStepModel(step_s=1.0)
_COST = [(0.1, 0.01), (0.5, 0.2)]       # (s per block, latency) of tier 0 and tier 1


def _req(rid, t, n_in, n_out, **kw) -> RequestSpec:
    return RequestSpec(id=rid, arrival_s=t, input_tokens=n_in, output_tokens=n_out, **kw)


# ----------------------------------------------------------------------------- prefetch
_A = KVTier(name="A", blocks=1, block_bytes=0.125, read_bytes_per_s=1.0, latency_s=0.0078125)
_B = KVTier(name="B", blocks=8, block_bytes=0.5, read_bytes_per_s=1.0, latency_s=0.0625)


def _prefetch_run(wait: bool, deadline: float | None = None):
    """GPU 4 blocks of 4; tier A holds 1 block, B 8. g (group 0: 8 shared tokens of 9) at 0
    → its 2 group blocks cached at 1 (LRU: g1, g0). f (15 in / 1 out, no group) at 2 takes
    the 2 free blocks and evicts g1 → A, then g0 → A, pushing g1 down to B: A = [g0],
    B = [g1]. r (group 0, 9 in / 1 out) at 5: g0 in A, g1 in B → one block to prefetch
    from B: data starts at 5 + 0.0625, lands at 5.0625 + 0.5 = 5.5625."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=4, max_num_batched_tokens=64, max_num_seqs=8,
                        kv_tiers=(_A, _B),
                        kv_policy=KVPolicy(prefetch=True, prefetch_wait=wait, prefetch_deadline_s=deadline))
    cfg = SimConfig(replicas=(ReplicaSpec(scheduler=s, step_model=_ONE),))
    specs = [_req("g", 0.0, 9, 1, prefix_group=0, prefix_tokens=8), _req("f", 2.0, 15, 1),
             _req("r", 5.0, 9, 1, prefix_group=0, prefix_tokens=8)]
    res = simulate(cfg, specs)
    return {x.id: x for x in res.records}, res.replica_stats["replica-0"]


def test_prefetch_without_waiting_loads_from_where_blocks_are() -> None:
    """r is admitted at 5 at once (nothing landed yet): g0 from A (0.0078125 + 0.125), g1
    from B (0.0625 + 0.5) → 5 + 1 + 0.6953125."""
    r, st = _prefetch_run(wait=False)
    assert r["f"].finish_s == 3.0
    assert r["r"].cached_tokens == 8
    assert r["r"].finish_s == 5 + 1 + 0.0078125 + 0.125 + 0.0625 + 0.5
    assert st["kv_tier_hit_tokens"] == {"A": 4, "B": 4}
    assert st["kv_prefetched_blocks"] == 0


def test_prefetch_wait_holds_the_request_until_its_blocks_land() -> None:
    """With prefetch_wait r stays out of the queue until 5.5625 (the replica is woken then);
    both blocks now load at A's rate: 0.0078125 + 2 · 0.125 → 5.5625 + 1 + 0.2578125."""
    r, st = _prefetch_run(wait=True)
    assert r["r"].start_s == 5.5625
    assert r["r"].finish_s == 5.5625 + 1 + 0.0078125 + 0.25
    assert st["kv_prefetched_blocks"] == 1


def test_prefetch_deadline_stops_the_wait() -> None:
    """Deadline 0.25 s after arrival: the copy stops at 5.25 with nothing landed
    ((5.25 − 5.0625) / 0.5 < 1 block); r joins at 5.25 and loads from A and B."""
    r, st = _prefetch_run(wait=True, deadline=0.25)
    assert r["r"].start_s == 5.25
    assert r["r"].finish_s == 5.25 + 1 + 0.0078125 + 0.125 + 0.0625 + 0.5
    assert st["kv_prefetched_blocks"] == 0


def test_prefetch_deadline_before_the_data_starts_skips_it() -> None:
    """Deadline 0.03125 s < B's latency 0.0625: no prefetch at all, r runs at 5."""
    r, _st = _prefetch_run(wait=True, deadline=0.03125)
    assert r["r"].start_s == 5.0


def test_prefetch_channel_is_fifo() -> None:
    """Engine level: two queued requests of the same group, both needing g1 from B. The
    first copy runs [0.0625, 0.5625]; the second starts when the channel is free: data at
    0.5625 + 0.0625 = 0.625."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=4, max_num_batched_tokens=64, max_num_seqs=1,
                        kv_tiers=(_A, _B), kv_policy=KVPolicy(prefetch=True))
    e = ReplicaEngine(None, s, step_model=_ONE)
    chain = e._chain(_probe(), 2)
    e.pool.tiers[0][chain[0]] = None
    e.pool.tiers[1][chain[1]] = None
    e.add(_req("x", 0.0, 9, 1, prefix_group=0, prefix_tokens=8), 0.0)
    e.add(_req("y", 0.0, 9, 1, prefix_group=0, prefix_tokens=8), 0.0)
    x, y = list(e.waiting_q)
    assert x.pf == (0.0625, 0.5, 1, float("inf"))
    assert y.pf == (0.625, 0.5, 1, float("inf"))


def _probe():
    """A request of group 0 (its chain names the group's blocks)."""
    from servelab.sim import SimRequest
    return SimRequest(_req("probe", 0.0, 9, 1, prefix_group=0, prefix_tokens=8), 0)


# ----------------------------------------------------------------------------- overhead
def _overhead_cfg(**adm) -> SimConfig:
    dep = SimpleNamespace(efficiency=SimpleNamespace(request_overhead_s=0.5))
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    return SimConfig(replicas=(ReplicaSpec(deployment=dep, scheduler=s, step_model=_ONE),),
                     admission=AdmissionConfig(**adm))


def test_request_overhead_delays_entry_not_dispatch() -> None:
    """0.5 s per request between router and engine. a at 0 enters at 0.5 → done 1.5;
    b at 0.25 enters at 0.75 (step running) → joins at 1.5 → done 2.5."""
    res = simulate(_overhead_cfg(), [_req("a", 0.0, 4, 1), _req("b", 0.25, 4, 1)])
    r = {x.id: x for x in res.records}
    assert r["a"].dispatch_s == 0.0 and r["a"].start_s == 0.5 and r["a"].finish_s == 1.5
    assert r["b"].dispatch_s == 0.25 and r["b"].start_s == 1.5 and r["b"].finish_s == 2.5


def test_timeout_in_transit_never_reaches_the_engine() -> None:
    res = simulate(_overhead_cfg(client_timeout_s=0.25), [_req("a", 0.0, 4, 1), _req("b", 1.0, 4, 1)])
    r = {x.id: x for x in res.records}
    assert r["a"].status == "timed_out" and r["a"].finish_s == 0.25 and r["a"].start_s is None
    assert r["b"].status == "timed_out" and r["b"].finish_s == 1.25 and r["b"].start_s is None
    assert r["a"].replica == "replica-0" and r["a"].dispatch_s == 0.0


def test_fault_in_transit_fails_the_request() -> None:
    cfg = _overhead_cfg()
    cfg = SimConfig(replicas=cfg.replicas, faults=(Fault(at_s=0.25, replica=0),))
    r = simulate(cfg, [_req("a", 0.0, 4, 1)]).records[0]
    assert r.status == "failed" and r.finish_s == 0.25 and r.reason == "replica replica-0 killed"


# ----------------------------------------------------------------------------- P/D paths
def _pd(**adm) -> SimConfig:
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    return SimConfig(
        replicas=(ReplicaSpec(name="p", scheduler=s, step_model=_ONE),
                  ReplicaSpec(name="d", scheduler=s, count=2, step_model=ConstantStepModel(step_s=0.125))),
        disagg=DisaggConfig(prefill=0, decode=1, link=KVLink(name="t", bytes_per_s=128.0, latency_s=0.125),
                            kv_bytes_per_token=16.0),
        admission=AdmissionConfig(**adm))


def test_pd_timeout_during_a_transfer_frees_the_link() -> None:
    """Transfer of n tokens: 0.125 + n/8 s. a (24 in / 3 out) at 0: prefill [0,1], transfer
    [1, 4.125] → client timeout 2.5 cuts it at 2.5. b (2 in / 1 out) at 0.5: prefill [1,2],
    its transfer waits for the link; a's cancellation starts it at 2.5 → [2.5, 2.875], to
    d-1 (d-0 had a incoming when b was sent) → one 0.125 s step → done at 3.0 (< 3.0
    deadline? b's deadline is 0.5 + 2.5 = 3.0: it ends at the same instant, and a request's
    last step ends before its timeout fires at an equal time)."""
    res = simulate(_pd(client_timeout_s=2.5), [_req("a", 0.0, 24, 3), _req("b", 0.5, 2, 1)])
    r = {x.id: x for x in res.records}
    assert r["a"].status == "timed_out" and r["a"].finish_s == 2.5
    assert r["b"].replica == "d-1" and r["b"].first_token_s == 3.0


def test_pd_decode_replica_killed_during_a_transfer() -> None:
    """a (24 in) is on its way to d-0 ([1, 4.125]) when d-0 is killed at 2: a fails then.
    b (2 in / 1 out, at 0.5) prefills [1,2]; at 2 the only live decode replica is d-1:
    transfer [2, 2.375], one step → done at 2.5."""
    cfg = _pd()
    cfg = SimConfig(replicas=cfg.replicas, disagg=cfg.disagg, faults=(Fault(at_s=2.0, replica="d-0"),))
    res = simulate(cfg, [_req("a", 0.0, 24, 3), _req("b", 0.5, 2, 1)])
    r = {x.id: x for x in res.records}
    assert r["a"].status == "failed" and r["a"].finish_s == 2.0 and r["a"].reason == "replica d-0 killed"
    assert r["b"].status == "ok" and r["b"].replica == "d-1" and r["b"].finish_s == 2.5


def test_pd_with_no_decode_replica_left() -> None:
    cfg = _pd()
    cfg = SimConfig(replicas=cfg.replicas, disagg=cfg.disagg,
                    faults=(Fault(at_s=0.5, replica="d-0"), Fault(at_s=0.5, replica="d-1")))
    r = simulate(cfg, [_req("a", 0.0, 4, 2)]).records[0]
    assert r.status == "failed" and r.reason == "503 no ready decode replica" and r.finish_s == 1.0


# ----------------------------------------------------------------------------- helpers
def test_link_for_messages_and_catalog_rates() -> None:
    with pytest.raises(ConfigError) as e:
        link_for("warp")
    assert str(e.value) == "unknown KV link 'warp'; known: nvlink, ib-ndr, ib-hdr, roce-400, roce-200, pcie"
    with pytest.raises(ConfigError) as e:
        link_for("pcie", SimpleNamespace(name="toy"))          # no pcie rate at all
    assert str(e.value) == ("GPU 'toy' has no pcie rate in the catalog; choose another link "
                            "(nvlink, ib-ndr, ib-hdr, roce-400, roce-200, pcie) or give gb_per_s")
    tiny = link_for("pcie", SimpleNamespace(name="slow", pcie_bytes_per_s=0.5))
    assert tiny.bytes_per_s == 0.5 and tiny.name == "pcie"
    assert link_for("ib-ndr").name == "ib-ndr"


def test_transfer_s_tp_of_specs_without_a_tp() -> None:
    cfg = DisaggConfig(link=KVLink(name="x", bytes_per_s=100.0), kv_bytes_per_token=10.0)
    bare = SimpleNamespace()                                   # no deployment attribute
    no_tp = SimpleNamespace(deployment=SimpleNamespace(tp=None))
    four = SimpleNamespace(deployment=SimpleNamespace(tp=4))
    assert transfer_s(cfg, bare, four, 10) == 1.0              # min(1, 4) = 1
    assert transfer_s(cfg, no_tp, four, 10) == 1.0
    assert transfer_s(cfg, four, four, 10) == 0.25


def test_policy_pool_cascade_matches_lru_for_low_priority_blocks() -> None:
    """'priority' with no high-priority block behaves as the LRU cascade: 3 tiers of 1;
    blocks 1..5 evicted in turn end as tiers [5], [4], [3], 2 blocks dropped."""
    p = PolicyBlockPool(1, [1, 1, 1], policy=KVPolicy(policy="priority", pin_priority=-1))
    for h in range(1, 6):
        p.allocate(1)
        p.register(h)
        p.release([h], 0, 0)
    p.allocate(1)
    assert [list(t) for t in p.tiers] == [[5], [4], [3]]
    assert p.tier_dropped == 2


def test_write_side_only_for_the_cost_policy_and_strict() -> None:
    tiers = (KVTier(name="A", blocks=4, block_bytes=0.0), KVTier(name="B", blocks=4, block_bytes=1e-2,
                                                                  read_bytes_per_s=1.0))
    pri = ReplicaEngine(None, SchedulerConfig(block_size=16, num_kv_blocks=8, kv_tiers=tiers,
                                              kv_policy=KVPolicy(policy="priority")),
                        step_model=AffineStepModel(per_prefill_token_s=5e-5))
    assert pri.recompute_s_per_block == 0.0 and pri.pool.keep == [True, True]
    # constant steps: recomputing costs nothing, so even a free load (0 s) does not beat it
    free = ReplicaEngine(None, SchedulerConfig(block_size=16, num_kv_blocks=8, kv_tiers=tiers,
                                               kv_policy=KVPolicy(policy="cost")), step_model=_ONE)
    assert free.recompute_s_per_block == 0.0 and free.pool.keep == [False, False]
    # odd reference chunk 33: T(33) − T(16) over 16 tokens → 5e-5 per token, 8e-4 per block
    odd = ReplicaEngine(None, SchedulerConfig(block_size=16, num_kv_blocks=8, kv_tiers=tiers,
                                              kv_policy=KVPolicy(policy="cost", ref_chunk=33)),
                        step_model=AffineStepModel(per_prefill_token_s=5e-5))
    assert odd.recompute_s_per_block == pytest.approx(17 * 5e-5 / 16 * 16)


# ----------------------------------------------------------------------------- more edges
def test_fault_fails_requests_in_the_priority_heap_and_held_for_prefetch() -> None:
    """Priority policy, one sequence at a time: a runs, b waits in the heap; replica-0 is
    killed at 0.5 → both fail (nothing is left behind as 'cancelled')."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=1,
                        scheduling_policy="priority")
    cfg = SimConfig(replicas=(ReplicaSpec(scheduler=s, step_model=_ONE),), faults=(Fault(at_s=0.5),))
    res = simulate(cfg, [_req("a", 0.0, 4, 2), _req("b", 0.25, 4, 2, priority=1)])
    assert [(x.id, x.status) for x in res.records] == [("a", "failed"), ("b", "failed")]


def test_fault_fails_a_request_held_for_its_prefetch() -> None:
    """As in the prefetch runs: r is held for its prefetch from 5 to 5.5625; replica-0 is
    killed at 5.25 → r fails then."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=4, max_num_batched_tokens=64, max_num_seqs=8,
                        kv_tiers=(_A, _B), kv_policy=KVPolicy(prefetch=True, prefetch_wait=True))
    cfg = SimConfig(replicas=(ReplicaSpec(scheduler=s, step_model=_ONE),), faults=(Fault(at_s=5.25),))
    specs = [_req("g", 0.0, 9, 1, prefix_group=0, prefix_tokens=8), _req("f", 2.0, 15, 1),
             _req("r", 5.0, 9, 1, prefix_group=0, prefix_tokens=8)]
    r = {x.id: x for x in simulate(cfg, specs).records}
    assert r["r"].status == "failed" and r["r"].finish_s == 5.25


def test_conversation_zero_reuses_its_history() -> None:
    """Conversation 0 is a conversation like any other: turn 2 (14 in) finds the 2 full
    blocks of turn 1 (6 in / 3 out → 8 tokens of KV)."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    cfg = SimConfig(replicas=(ReplicaSpec(scheduler=s, step_model=_ONE),))
    r = {x.id: x for x in simulate(cfg, [_req("t1", 0.0, 6, 3, conversation=0),
                                         _req("t2", 10.0, 14, 1, conversation=0)]).records}
    assert r["t2"].cached_tokens == 8


def test_engine_add_records_dispatch_time_and_token_times() -> None:
    e = ReplicaEngine(None, SchedulerConfig(block_size=4, num_kv_blocks=64), step_model=_ONE,
                      record_token_times=True)
    e.add(_req("a", 0.0, 4, 3), 2.5)
    (r,) = list(e.waiting_q)
    assert r.dispatch_s == 2.5 and r.token_times == [] and r.replica == "replica-0"
    done = []
    t = 2.5
    while e.has_work:
        e.begin(t)
        t = e.p_end
        done += e.commit()
    assert done[0].token_times == [3.5, 4.5, 5.5]


def test_summary_defaults_window_and_slo() -> None:
    """The default window is result.duration_s (here 20 s, not the records' 11 s span)."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    res = simulate(SimConfig(replicas=(ReplicaSpec(scheduler=s, step_model=_ONE),)),
                   [_req(f"r{i}", 0.0, 4, 10) for i in range(4)])
    from servelab.sim.summary import summarize_result
    fake = SimpleNamespace(records=res.records, duration_s=20.0, events=[], replica_stats={})
    out = summarize_result(fake)
    assert out["throughput_tokens_per_s"] == pytest.approx(2.0) and out["sim"]["engine"] == ""
    # TTFT: r0 1 s, r1..r3 2 s → 1 of 4 within 1.5 s
    slo = summarize_result(fake, slo={"ttft": 1.5})
    assert slo["slo_attainment"] == pytest.approx(0.25)


def test_best_restore_change_points_and_ties() -> None:
    seen = []

    def rec(j):
        seen.append(j)
        return 0.0

    best_restore([0, 1, 1, 0], _COST, 0, rec)
    assert sorted(seen) == [1, 3, 4]                 # tier changes at 1 and 3, and m = 4
    # recompute exactly equal to the restore cost: a zero gain does not count
    cost = [(0.25, 0.5)]
    assert best_restore([0, 0], cost, 0, lambda j: 0.5 + 0.25 * j if j else 0.0) == 0
    # two equal positive gains: the smaller load wins
    assert best_restore([0, 1], [(0.25, 0.5), (0.25, 0.0)], 0,
                        lambda j: {1: 1.75, 2: 2.0}.get(j, 0.0)) == 1


def test_restore_s_default_landed_is_none() -> None:
    assert restore_s([1, 1], _COST) == pytest.approx(0.2 + 1.0)
    assert restore_s([1, 1], _COST, None) == pytest.approx(0.2 + 1.0)


def test_policy_pool_pin_cap_counts_pinned_blocks_and_default_priority() -> None:
    p = PolicyBlockPool(4, [], policy=KVPolicy(policy="priority", pin_priority=0, pin_blocks=1))
    assert p.allocate(2) is True
    p.register(1)
    p.register(2)
    p.release([1], 0)                     # default priority 0: high → pinned
    assert list(p.pinned) == [1]
    p.release([2], 0, 0)                  # cap 1 reached: not pinned
    assert list(p.pinned) == [1] and list(p.evictable) == [2]


def test_policy_pool_evicts_least_recently_freed_first() -> None:
    p = PolicyBlockPool(3, [], policy=KVPolicy(policy="cost"))
    p.allocate(3)
    for h in (1, 2, 3):
        p.register(h)
    p.release([1], 0)
    p.release([2], 0)
    p.release([3], 0)
    assert p.allocate(1) and 1 not in p.cache and 2 in p.cache


def test_tier_and_policy_messages_are_exact() -> None:
    with pytest.raises(ConfigError) as e:
        KVTier(name="", blocks=1)
    assert str(e.value) == "KVTier.name must not be empty"
    with pytest.raises(ConfigError) as e:
        KVPolicy(policy="fifo")
    assert str(e.value) == "unknown KV tier policy 'fifo'; known: lru, priority, cost"
    assert KVPolicy(prefetch_deadline_s=0.5).prefetch_deadline_s == 0.5


def test_pd_prefill_replica_frees_kv_when_the_transfer_ends() -> None:
    """Prefill replica with 6 blocks of 4: a, b, c (10 in / 1 out, 3 blocks each) at 0.
    a prefills [0,1]; its KV stays until its transfer ends. b prefills [1,2]: 6 blocks held.
    c cannot start until a's transfer [1, 2.375] (0.125 + 16·10/128) ends and frees 3 blocks:
    the idle prefill replica starts c at once, at 2.375."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    p = SchedulerConfig(block_size=4, num_kv_blocks=6, max_num_batched_tokens=64, max_num_seqs=8)
    cfg = SimConfig(
        replicas=(ReplicaSpec(name="p", scheduler=p, step_model=_ONE),
                  ReplicaSpec(name="d", scheduler=s, count=2, step_model=ConstantStepModel(step_s=0.125))),
        disagg=DisaggConfig(prefill=0, decode=1, link=KVLink(name="t", bytes_per_s=128.0, latency_s=0.125),
                            kv_bytes_per_token=16.0))
    res = simulate(cfg, [_req(x, 0.0, 10, 1) for x in "abc"])
    r = {x.id: x for x in res.records}
    assert all(x.status == "ok" for x in r.values())
    assert (r["a"].start_s, r["b"].start_s, r["c"].start_s) == (0.0, 1.0, 2.375)


@pytest.mark.parametrize("tp_p, tp_d, done", [(4, 2, 3.0), (4, None, 3.5), (1, 8, 3.5)])
def test_pd_transfer_uses_the_smaller_tensor_parallel_degree(tp_p, tp_d, done) -> None:
    """Link 100 B/s per GPU pair, 0.5 s latency, 10 B of KV per token; a: 10 in / 1 out.
    Prefill [0,1]; transfer 0.5 + 100 / (100 · min(TP_p, TP_d)) (TP None counts as 1);
    one 1 s decode step. min 2 → 1.0 s → done at 3; min 1 → 1.5 s → done at 3.5."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    cfg = SimConfig(
        replicas=(ReplicaSpec(name="p", scheduler=s, step_model=_ONE, deployment=SimpleNamespace(tp=tp_p)),
                  ReplicaSpec(name="d", scheduler=s, step_model=_ONE, deployment=SimpleNamespace(tp=tp_d))),
        disagg=DisaggConfig(prefill=0, decode=1, link=KVLink(name="t", bytes_per_s=100.0, latency_s=0.5),
                            kv_bytes_per_token=10.0))
    r = simulate(cfg, [_req("a", 0.0, 10, 1)]).records[0]
    assert r.finish_s == done


def test_pd_fleet_errors() -> None:
    s = SchedulerConfig(block_size=4, num_kv_blocks=64)
    reps = (ReplicaSpec(name="p", scheduler=s, step_model=_ONE), ReplicaSpec(name="d", scheduler=s, step_model=_ONE))
    with pytest.raises(ConfigError) as e:
        simulate(SimConfig(replicas=reps, disagg=DisaggConfig(prefill=2, decode=0, kv_bytes_per_token=1.0)), [])
    assert str(e.value) == "disagg prefill=2, decode=0: replicas has 2 entries"
    from servelab.sim import AutoscalerConfig
    with pytest.raises(ConfigError) as e:
        simulate(SimConfig(replicas=reps, disagg=DisaggConfig(kv_bytes_per_token=1.0),
                           autoscaler=AutoscalerConfig(min_replicas=0)), [])
    assert str(e.value) == ("scale to zero is not modelled for a disaggregated fleet; autoscaler "
                            "min_replicas must be >= 1, got 0")
