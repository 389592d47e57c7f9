"""KV tier policies (sim/tiering.py, sim/tier_sched.py) and prefill/decode
disaggregation (sim/disagg.py, sim/pd_fleet.py): load times, the cost policy's choice,
priority pinning, tier admission and a P/D run, each worked out by hand in the comments
from the documented equations.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from servelab.catalog import RequestSpec
from servelab.errors import ConfigError
from servelab.sim import (
    AffineStepModel,
    ConstantStepModel,
    DisaggConfig,
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

_COST = [(0.1, 0.01), (0.5, 0.2)]       # (s per block, latency) of tier 0 and tier 1


# ----------------------------------------------------------------------------- load times
@pytest.mark.parametrize("where, upto, landed, want", [
    ([0, 0, 1, 1, 1], None, 0, (0.01 + 2 * 0.1) + (0.2 + 3 * 0.5)),
    ([0, 0, 1, 1, 1], 3, 0, (0.01 + 2 * 0.1) + (0.2 + 0.5)),
    ([0, 0, 1, 1, 1], 0, 0, 0.0),
    ([1, 1], None, 0, 0.2 + 1.0),                      # tier 0 untouched: no latency for it
    ([0, 0, 1, 1, 1], None, 2, (0.01 + 4 * 0.1) + (0.2 + 0.5)),   # 2 tier-1 blocks prefetched
    ([1, 1], None, 5, 0.01 + 0.2),                     # more landed than tier-1 blocks
    ([0, 1], 1, 1, 0.01 + 0.1),                        # landed applies to tier > 0 only
])
def test_restore_s_by_hand(where, upto, landed, want) -> None:
    assert restore_s(where, _COST, upto, landed) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("per_block, landed, want", [
    (0.3, 0, 2),     # j=2: 0.6 − 0.21 = 0.39; j=4: 1.2 − 1.41 < 0 → 2
    (1.0, 0, 4),     # j=2: 1.79; j=4: 4 − 1.41 = 2.59 → 4
    (0.05, 0, 0),    # nothing pays: recompute all
    (0.3, 3, 4),     # 3 landed: j=3 costs 0.31 (gain 0.59), j=4 costs 0.41 (gain 0.79) → 4
    (0.5, 0, 2),     # j=2: 1.0 − 0.21 = 0.79 beats j=4: 2.0 − 1.41 = 0.59
])
def test_best_restore_by_hand(per_block, landed, want) -> None:
    where = [0, 0, 1, 1]
    assert best_restore(where, _COST, landed, lambda j: per_block * j) == want


def test_best_restore_checks_only_tier_changes_and_the_end() -> None:
    """Candidates are 0, every index where the tier changes, m, and the landed count.
    A gain that peaks at j=1 inside a run of tier-0 blocks is not seen."""
    seen = []

    def rec(j):
        seen.append(j)
        return 10.0 if j == 1 else 0.0

    assert best_restore([0, 0, 0], _COST, 0, rec) == 0
    assert sorted(seen) == [3]
    seen.clear()
    best_restore([0, 1, 1, 0], _COST, 2, rec)
    assert sorted(seen) == [1, 2, 3, 4]


# ----------------------------------------------------------------------------- policy pool
def _pool(n, tiers=(), **kw) -> PolicyBlockPool:
    return PolicyBlockPool(n, list(tiers), policy=KVPolicy(**kw))


def _cached(p, hashes, prio):
    p.allocate(len(hashes))
    for h in hashes:
        assert p.register(h)
    p.release(list(hashes), 0, prio)


def test_priority_pins_head_blocks_up_to_the_cap() -> None:
    """pin 1 block of priority <= 0. Blocks 1, 2 released by a priority-0 request: the head
    block 1 is pinned, 2 is evictable. Allocating 3 of 4 takes 2 uncached + evicts 2; the
    pinned block goes only when nothing else is left."""
    p = _pool(4, policy="priority", pin_priority=0, pin_blocks=1)
    _cached(p, [1, 2], 0)
    assert list(p.pinned) == [1] and list(p.evictable) == [2]
    assert p.num_free() == 4 and p.usage() == 0.0
    assert p.allocate(3)
    assert 1 in p.cache and 2 not in p.cache and p.evictions == 1
    assert p.usage() == pytest.approx(3 / 4)
    assert p.allocate(1) and 1 not in p.cache and p.evictions == 2
    assert not p.allocate(1)


def test_priority_low_priority_blocks_are_not_pinned_and_best_priority_sticks() -> None:
    p = _pool(4, policy="priority", pin_priority=0, pin_blocks=4)
    _cached(p, [1], 3)
    assert list(p.pinned) == [] and list(p.evictable) == [1] and p.prio_of[1] == 3
    p.acquire([1])
    p.release([1], 0, 0)                          # a priority-0 request used it too
    assert p.prio_of[1] == 0 and list(p.pinned) == [1]
    p.acquire([1])                                # a pinned block can be acquired again
    assert list(p.pinned) == [] and p.cache[1] == 1
    p.release([1], 0, 5)                          # a worse priority does not overwrite
    assert p.prio_of[1] == 0 and list(p.pinned) == [1]


def test_lru_and_cost_policies_pin_nothing() -> None:
    for pol in ("lru", "cost"):
        p = _pool(4, policy=pol, pin_priority=9, pin_blocks=4)
        _cached(p, [1, 2], 0)
        assert list(p.pinned) == [] and list(p.evictable) == [2, 1]   # tail first


def test_priority_tier_keeps_high_priority_blocks_longer() -> None:
    """GPU 1 block, one tier of 2. Blocks a (prio 0), b (prio 5), c (prio 5) go through the
    GPU one after another; the tier overflows on c: under 'priority' the LRU block that is
    not high priority (b) is dropped, a stays; under 'lru' a (the LRU one) is dropped."""
    for pol, left in (("priority", [1, 3]), ("lru", [2, 3])):
        p = _pool(1, (2,), policy=pol, pin_priority=0, pin_blocks=0)
        for h, prio in ((1, 0), (2, 5), (3, 5)):
            _cached(p, [h], prio)
        p.allocate(1)                             # evicts 3
        assert list(p.tiers[0]) == left and p.tier_dropped == 1, pol


def test_cost_keep_skips_a_tier_and_drops_past_the_last() -> None:
    p = _pool(1, (2, 2), policy="cost")
    p.keep = [False, True]
    _cached(p, [1], 0)
    p.allocate(1)
    assert [list(t) for t in p.tiers] == [[], [1]]
    p.release([], 1)
    p.keep = [False, False]
    _cached(p, [2], 0)
    p.allocate(1)
    assert p.tier_dropped == 1 and 2 not in p.prio_of and p.offloaded() == 1


def test_untiered_policy_pool_forgets_evicted_priorities() -> None:
    p = _pool(1, policy="priority", pin_priority=0, pin_blocks=0)
    _cached(p, [7], 2)
    assert p.prio_of == {7: 2}
    p.allocate(1)
    assert p.prio_of == {} and p.cache == {}


def test_cost_policy_write_side_by_hand() -> None:
    """Affine model, 5e-5 s per prefill token, block 16: recomputing a block costs
    (T(2048) − T(1024)) / 1024 · 16 = 8e-4 s. Tier A loads a block in 1e-4 s (kept), tier
    B in 1e-2 s (skipped)."""
    tiers = (KVTier(name="A", blocks=4, block_bytes=1e-4, read_bytes_per_s=1.0),
             KVTier(name="B", blocks=4, block_bytes=1e-2, read_bytes_per_s=1.0))
    s = SchedulerConfig(block_size=16, num_kv_blocks=8, kv_tiers=tiers, kv_policy=KVPolicy(policy="cost"))
    e = ReplicaEngine(None, s, step_model=AffineStepModel(per_prefill_token_s=5e-5))
    assert e.recompute_s_per_block == pytest.approx(8e-4)
    assert e.pool.keep == [True, False]
    s2 = SchedulerConfig(block_size=16, num_kv_blocks=8, kv_tiers=tiers,
                         kv_policy=KVPolicy(policy="cost", ref_chunk=64))
    e2 = ReplicaEngine(None, s2, step_model=AffineStepModel(per_prefill_token_s=5e-5,
                                                          per_prefill_ctx_s=1e-6))
    # chunk 64 at context 0: 5e-5·64 (ctx term 0); chunk 32: 5e-5·32 → (1.6e-3)/32·16 = 8e-4
    assert e2.recompute_s_per_block == pytest.approx(8e-4)


def test_kv_policy_errors_and_active() -> None:
    for kw, words in (({"policy": "fifo"}, "unknown KV tier policy 'fifo'"),
                      ({"pin_blocks": -1}, "pin_blocks must be >= 0"),
                      ({"prefetch_deadline_s": 0.0}, "prefetch_deadline_s must be > 0"),
                      ({"ref_chunk": 31}, "ref_chunk must be >= 32")):
        with pytest.raises(ConfigError) as e:
            KVPolicy(**kw)
        assert words in str(e.value)
    KVPolicy(ref_chunk=32, pin_blocks=0)
    assert not KVPolicy().active and KVPolicy(policy="cost").active and KVPolicy(prefetch=True).active
    with pytest.raises(ConfigError, match="at least two offload tiers"):
        ReplicaEngine(None, SchedulerConfig(num_kv_blocks=8, kv_tiers=(KVTier(name="A", blocks=2),),
                                            kv_policy=KVPolicy(prefetch=True)),
                      step_model=ConstantStepModel(step_s=1.0))


# ----------------------------------------------------------------------------- disaggregation
def test_transfer_time_closed_form() -> None:
    """latency + bytes/token · tokens / (link rate · min(TP_p, TP_d))."""
    cfg = DisaggConfig(link=KVLink(name="x", bytes_per_s=1e9, latency_s=1e-3), kv_bytes_per_token=2e5)
    p = SimpleNamespace(deployment=SimpleNamespace(tp=4))
    d = SimpleNamespace(deployment=SimpleNamespace(tp=2))
    assert transfer_s(cfg, p, d, 1000) == pytest.approx(1e-3 + 2e5 * 1000 / (1e9 * 2))
    none = SimpleNamespace(deployment=None)
    assert transfer_s(cfg, none, p, 1000) == pytest.approx(1e-3 + 2e5 * 1000 / 1e9)
    with pytest.raises(ConfigError, match="kv_bytes_per_token is needed"):
        transfer_s(DisaggConfig(), none, none, 10)


def test_links_by_name() -> None:
    assert link_for("ib-ndr").bytes_per_s == 50e9 and link_for("ib-ndr").latency_s == 10e-6
    assert link_for("ib-hdr").bytes_per_s == 25e9
    assert link_for("roce-400", latency_s=1e-3).latency_s == 1e-3
    assert link_for("ib-hdr", gb_per_s=10.0).bytes_per_s == pytest.approx(10e9)
    gpu = SimpleNamespace(name="g", interconnect_bytes_per_s=450e9, pcie_bytes_per_s=64e9)
    assert link_for("nvlink", gpu).bytes_per_s == 450e9 and link_for("nvlink", gpu).latency_s == 5e-6
    assert link_for("pcie", gpu).bytes_per_s == 64e9
    for args, words in ((("warp",), "unknown KV link 'warp'"),
                        (("nvlink",), "give the GPU or gb_per_s"),
                        (("nvlink", SimpleNamespace(name="g", interconnect_bytes_per_s=0.0)), "no nvlink rate")):
        with pytest.raises(ConfigError) as e:
            link_for(*args)
        assert words in str(e.value)
    for kw, words in (({"prefill": 1, "decode": 1}, "two different replica indices"),
                      ({"prefill": -1}, "two different"), ({"decode": -1}, "two different"),
                      ({"max_transfers": 0}, "max_transfers must be >= 1"),
                      ({"kv_bytes_per_token": 0.0}, "kv_bytes_per_token must be > 0")):
        with pytest.raises(ConfigError) as e:
            DisaggConfig(**kw)
        assert words in str(e.value)
    with pytest.raises(ConfigError, match="need bytes_per_s > 0"):
        KVLink(name="x", bytes_per_s=0.0)
    with pytest.raises(ConfigError, match="latency_s >= 0"):
        KVLink(name="x", bytes_per_s=1.0, latency_s=-1.0)


def _pd(max_transfers: int = 1, n_dec: int = 2, **adm) -> SimConfig:
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    one = ConstantStepModel(step_s=1.0)
    return SimConfig(
        replicas=(ReplicaSpec(name="p", scheduler=s, step_model=one),
                  ReplicaSpec(name="d", scheduler=s, count=n_dec, step_model=one)),
        disagg=DisaggConfig(prefill=0, decode=1, link=KVLink(name="t", bytes_per_s=100.0, latency_s=0.5),
                            kv_bytes_per_token=10.0, max_transfers=max_transfers))


def test_pd_run_by_hand() -> None:
    """Transfer of n tokens: 0.5 + 10·n/100 s. a: 10 in / 3 out, b: 10 in / 2 out, both at 0.
    p-0: a prefills [0,1]; b (arrived while busy) [1,2].
    a → d-0 (fewest outstanding + incoming), transfer [1, 2.5]; b → d-1 (d-0 has one on its
    way), but one transfer at a time per prefill replica: b's waits until 2.5 → [2.5, 4].
    d-0: a enters at 2.5, computes its last prompt token → first token 3.5, then 4.5, 5.5.
    d-1: b enters at 4 → first token 5, done at 6."""
    res = simulate(_pd(), [RequestSpec(id="a", arrival_s=0.0, input_tokens=10, output_tokens=3),
                           RequestSpec(id="b", arrival_s=0.0, input_tokens=10, output_tokens=2)])
    r = {x.id: x for x in res.records}
    assert r["a"].status == r["b"].status == "ok"
    assert (r["a"].replica, r["b"].replica) == ("d-0", "d-1")
    assert r["a"].first_token_s == pytest.approx(3.5) and r["a"].finish_s == pytest.approx(5.5)
    assert r["b"].first_token_s == pytest.approx(5.0) and r["b"].finish_s == pytest.approx(6.0)
    assert r["a"].start_s == 0.0 and r["b"].start_s == 1.0
    assert r["a"].output_tokens == 3


def test_pd_two_transfers_at_once() -> None:
    """max_transfers 2: b's transfer starts at 2 when its prefill ends → [2, 3.5]; first
    token 4.5, done at 5.5."""
    res = simulate(_pd(max_transfers=2), [RequestSpec(id="a", arrival_s=0.0, input_tokens=10, output_tokens=3),
                                          RequestSpec(id="b", arrival_s=0.0, input_tokens=10, output_tokens=2)])
    r = {x.id: x for x in res.records}
    assert r["b"].first_token_s == pytest.approx(4.5) and r["b"].finish_s == pytest.approx(5.5)


def test_pd_config_errors() -> None:
    cfg = _pd()
    with pytest.raises(ConfigError, match="exactly two replica specs"):
        simulate(SimConfig(replicas=cfg.replicas + cfg.replicas[:1], disagg=cfg.disagg), [])
    with pytest.raises(ConfigError, match="replicas has 2 entries"):
        simulate(SimConfig(replicas=cfg.replicas, disagg=DisaggConfig(prefill=0, decode=2)), [])
