"""Tiered KV offload (HBM → DRAM → NVMe): restore cost, LRU cascade, conservation, monotonicity."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servelab.catalog import RequestSpec
from servelab.errors import ConfigError
from servelab.sim import (
    ConstantStepModel,
    SchedulerConfig,
    KVTier,
    ReplicaEngine,
    SimRequest,
)
from servelab.sim.kv import BlockPool

# Llama-3.1-8B, bf16 KV: 2 (K, V) · 32 layers · 8 KV heads · 128 dims · 2 bytes = 131,072 B per
# token; a 16-token block = 2,097,152 B (TP1, so that is also the per-GPU share).
BLOCK_BYTES = 2_097_152
NVME = KVTier(name="nvme", blocks=8, block_bytes=BLOCK_BYTES, read_bytes_per_s=7.45e9, latency_s=1e-4)


def _req(i: int, inp: int, out: int, **kw) -> RequestSpec:
    return RequestSpec(id=f"r{i}", arrival_s=0.0, input_tokens=inp, output_tokens=out, **kw)


def _run(eng: ReplicaEngine, t: float = 0.0) -> float:
    while eng.has_work:
        t += eng.step(t).duration_s
    return t


def _evict_group_prefix(eng: ReplicaEngine) -> None:
    """Group 1's 64-token prefix (4 blocks) is cached, then evicted by a 150-token request
    (10 blocks) on a 10-block GPU. Release order puts the prefix's tail block first in the
    GPU's LRU, so the blocks leave in the order b3, b2, b1, b0."""
    eng.add(_req(0, 64, 1, prefix_group=1, prefix_tokens=64), 0.0)
    _run(eng)
    assert eng.add(_req(1, 150, 1), 0.0)
    _run(eng)
    assert eng.pool.evictions == 4


def _prefix_chain(eng: ReplicaEngine) -> list[int]:
    return eng._chain(SimRequest(_req(9, 80, 1, prefix_group=1, prefix_tokens=64), 9), 4)


def test_prefix_evicted_to_nvme_is_restored_at_nvme_cost() -> None:
    # Only an NVMe tier. Restoring 4 blocks: latency + 4 · block_bytes / read rate
    # = 1e-4 + 8,388,608 B / 7.45e9 B/s = 1e-4 + 0.00112598765 s; the admitting step
    # (0.01 s) carries it, so r2's first token (it is also its last) comes at
    # 1.0 + 0.01 + 0.0012259876510 = 1.0112259876510 s.
    eng = ReplicaEngine(None, SchedulerConfig(num_kv_blocks=10, kv_tiers=(NVME,)),
                        step_model=ConstantStepModel(step_s=0.01))
    _evict_group_prefix(eng)
    assert len(eng.pool.tiers[0]) == 4
    r2 = SimRequest(_req(2, 80, 1, prefix_group=1, prefix_tokens=64), 2)
    assert eng.enqueue(r2, 1.0)
    o = eng.step(1.0)
    assert o.finished == ["r2"]
    assert r2.cached_tokens == 64
    assert o.duration_s == pytest.approx(0.0112259876510, rel=1e-10)
    assert r2.first_token_s == pytest.approx(1.0112259876510, rel=1e-12)
    st_ = eng.stats()
    assert st_["kv_tier_hit_tokens"] == {"nvme": 64}
    assert st_["cpu_kv_hit_tokens"] == 0
    assert len(eng.pool.tiers[0]) == 0                     # loaded blocks left the tier


def test_lru_cascade_dram_then_nvme_and_mixed_restore_cost() -> None:
    # DRAM holds 2 blocks (0.002 s per block, no latency), NVMe 8. Evictions b3, b2, b1, b0:
    # DRAM [b3, b2] -> b1 pushes b3 down -> b0 pushes b2 down: DRAM = [b1, b0], NVMe = [b3, b2]
    # (least recent first). Restore: DRAM 2 · 0.002 + NVMe (1e-4 + 2 · 2,097,152 / 7.45e9)
    # = 0.004 + 0.0001 + 0.000562993826 = 0.004662993826 s on top of the 0.01 s step.
    dram = KVTier(name="dram", blocks=2, block_bytes=2e6, read_bytes_per_s=1e9)   # 0.002 s per block
    eng = ReplicaEngine(None, SchedulerConfig(num_kv_blocks=10, kv_tiers=(dram, NVME)),
                        step_model=ConstantStepModel(step_s=0.01))
    _evict_group_prefix(eng)
    b = _prefix_chain(eng)
    assert list(eng.pool.tiers[0]) == [b[1], b[0]]
    assert list(eng.pool.tiers[1]) == [b[3], b[2]]
    r2 = SimRequest(_req(2, 80, 1, prefix_group=1, prefix_tokens=64), 2)
    assert eng.enqueue(r2, 1.0)
    o = eng.step(1.0)
    assert r2.cached_tokens == 64
    assert o.duration_s == pytest.approx(0.014662993826, rel=1e-10)
    assert eng.stats()["kv_tier_hit_tokens"] == {"dram": 32, "nvme": 32}
    assert eng.stats()["cpu_kv_hit_tokens"] == 32


def test_last_tier_drops_its_lru_block() -> None:
    pool = BlockPool(2, tiers=[1, 2])
    # four cached blocks pass through a 2-block GPU: hashes 10, 11 then 12, 13
    for hs in ([10, 11], [12, 13]):
        assert pool.allocate(2)
        for h in hs:
            pool.register(h)
        pool.release(hs, 0)
    assert pool.allocate(2)           # evicts 13, then 12 (release put the tail first)
    assert list(pool.tiers[0]) == [12] and list(pool.tiers[1]) == [10, 13]
    assert pool.tier_dropped == 1     # 11 fell out of the last tier (its LRU block)
    # recomputing a block on the GPU drops its offloaded copy
    pool.release([], 2)
    assert pool.allocate(1) and pool.register(13)
    assert list(pool.tiers[1]) == [10] and pool.tier_superseded == 1


def test_tier_config_errors_and_legacy_dram_tier() -> None:
    with pytest.raises(ConfigError, match="read_bytes_per_s"):
        KVTier(name="nvme", blocks=1, block_bytes=1.0, read_bytes_per_s=0.0)
    with pytest.raises(ConfigError, match="unique"):
        SchedulerConfig(kv_tiers=(KVTier(name="dram", blocks=4), KVTier(name="dram", blocks=1)))
    cfg = SchedulerConfig(kv_tiers=(KVTier(name="dram", blocks=4, block_bytes=3e6, read_bytes_per_s=1e9), NVME,
                                 KVTier(name="cxl", blocks=0)))
    names = [(t.name, t.blocks) for t in cfg.offload_tiers()]
    assert names == [("dram", 4), ("nvme", 8)]
    assert cfg.offload_tiers()[0].load_s_per_block == pytest.approx(0.003)


def _workload(seed: int, n: int) -> list[RequestSpec]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        g = rng.choice([-1, 0, 1, 2, 3, 4, 5])
        out.append(RequestSpec(id=f"q{i}", arrival_s=float(i), input_tokens=rng.randint(20, 200),
                               output_tokens=rng.randint(1, 40), prefix_group=g,
                               prefix_tokens=rng.choice([48, 96]) if g >= 0 else 0,
                               conversation=rng.choice([-1, -1, -1, 7, 8])))
    return out


def _replay(reqs: list[RequestSpec], dram: int, nvme: int, gpu: int = 40) -> ReplicaEngine:
    """One request at a time (each finishes before the next arrives)."""
    tiers = tuple(t for t in (KVTier(name="dram", blocks=dram, block_bytes=1.0, read_bytes_per_s=1e6),
                              KVTier(name="nvme", blocks=nvme, block_bytes=1.0, read_bytes_per_s=1e5,
                                     latency_s=1e-4)) if t.blocks)
    eng = ReplicaEngine(None, SchedulerConfig(num_kv_blocks=gpu, max_num_batched_tokens=256, kv_tiers=tiers),
                        step_model=ConstantStepModel(step_s=0.01))
    t = 0.0
    for q in reqs:
        assert eng.add(q, t)
        t = _run(eng, t)
    return eng


def _reused_tokens(eng: ReplicaEngine) -> int:
    return eng.pool.hit_tokens + sum(eng.pool.tier_hit_tokens)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), dram=st.integers(0, 12), nvme=st.integers(0, 30),
       more_dram=st.integers(0, 12), more_nvme=st.integers(0, 30))
def test_bigger_lower_tiers_never_lower_the_prefix_hit_rate(seed, dram, nvme, more_dram, more_nvme) -> None:
    # The tiers together are one LRU list of evicted blocks ordered by eviction time, so
    # a bigger one holds a superset (LRU inclusion) and every lookup matches at least as far.
    reqs = _workload(seed, 40)
    small = _reused_tokens(_replay(reqs, dram, nvme))
    big = _reused_tokens(_replay(reqs, dram + more_dram, nvme + more_nvme))
    none = _reused_tokens(_replay(reqs, 0, 0))
    assert none <= small <= big


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), dram=st.integers(0, 6), nvme=st.integers(0, 12),
       gpu=st.integers(14, 40), batch=st.integers(1, 6))
def test_no_block_leaks_across_tiers(seed, dram, nvme, gpu, batch) -> None:
    """Concurrent requests (preemption, chunking): afterwards every GPU block is free, the
    tiers are disjoint and within capacity, and every block ever offloaded is in exactly one
    tier, was loaded back, was superseded by a recompute, or fell out of the last tier."""
    reqs = _workload(seed, 30)
    tiers = tuple(t for t in (KVTier(name="dram", blocks=dram, block_bytes=1.0, read_bytes_per_s=1e6),
                              KVTier(name="nvme", blocks=nvme, block_bytes=1.0, read_bytes_per_s=1e5))
                  if t.blocks)
    eng = ReplicaEngine(None, SchedulerConfig(num_kv_blocks=gpu, max_num_batched_tokens=64, max_num_seqs=8,
                                           kv_tiers=tiers),
                        step_model=ConstantStepModel(step_s=0.01))
    t = 0.0
    for i in range(0, len(reqs), batch):
        for q in reqs[i:i + batch]:
            eng.add(q, t)
        for _ in range(3):                  # a few steps, then more arrivals
            if eng.has_work:
                t += eng.step(t).duration_s
    t = _run(eng, t)
    pool = eng.pool
    assert pool.free_uncached + len(pool.cache) == pool.num_blocks
    assert all(rc == 0 for rc in pool.cache.values()) and set(pool.evictable) == set(pool.cache)
    seen = set(pool.cache)
    for t_, cap in zip(pool.tiers, pool.tier_cap):
        assert len(t_) <= cap
        assert not seen & set(t_)
        seen |= set(t_)
    loaded = sum(pool.tier_hit_tokens) // eng.bs
    if pool.tiered:
        assert pool.evictions == pool.offloaded() + loaded + pool.tier_superseded + pool.tier_dropped
    else:
        assert pool.offloaded() == loaded == 0
