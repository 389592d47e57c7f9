"""ReplicaEngine: step API, chunked prefill, prefix-cache accounting, LRU eviction, preemption."""

from __future__ import annotations

import pytest

from servelab.catalog import RequestSpec
from servelab.errors import ConfigError
from servelab.sim import ConstantStepModel, SchedulerConfig, KVTier, ReplicaEngine, SimRequest
from servelab.sim.kv import BlockPool


def _req(i: int, inp: int, out: int, **kw) -> RequestSpec:
    return RequestSpec(id=f"r{i}", arrival_s=0.0, input_tokens=inp, output_tokens=out, **kw)


def _engine(blocks: int = 1000, **kw) -> ReplicaEngine:
    return ReplicaEngine(None, SchedulerConfig(num_kv_blocks=blocks, **kw),
                         step_model=ConstantStepModel(step_s=0.01))


def _run(eng: ReplicaEngine, t: float = 0.0, limit: int = 10_000):
    outs = []
    while eng.has_work and limit:
        o = eng.step(t)
        t += o.duration_s
        outs.append(o)
        limit -= 1
    return outs, t


def test_step_api_emits_first_token_at_prefill_then_one_per_step() -> None:
    eng = _engine()
    assert eng.add(_req(0, 10, 3), 0.0)
    outs, t = _run(eng)
    # prefill step -> first token; two decode steps -> tokens 2 and 3; done
    assert [o.tokens for o in outs] == [[("r0", 1)], [("r0", 1)], [("r0", 1)]]
    assert [o.finished for o in outs] == [[], [], ["r0"]]
    assert t == pytest.approx(0.03)
    assert eng.stats()["running"] == 0 and eng.pool.num_free() == 1000


def test_chunked_prefill_splits_by_token_budget() -> None:
    eng = _engine(blocks=5000, max_num_batched_tokens=8192)
    assert eng.add(_req(0, 20000, 2), 0.0)
    outs, _ = _run(eng)
    # 20000 = 8192 + 8192 + 3616 -> first token after the third step
    assert [o.tokens for o in outs] == [[], [], [("r0", 1)], [("r0", 1)]]


def test_no_chunked_prefill_rejects_oversized_prompt() -> None:
    eng = _engine(blocks=5000, max_num_batched_tokens=4096, max_num_seqs=8, enable_chunked_prefill=False)
    assert not eng.add(_req(0, 5000, 2), 0.0)
    assert eng.add(_req(1, 4000, 2), 0.0)


def test_waiting_bound_counts_only_waiting() -> None:
    eng = _engine(max_num_seqs=1, max_waiting=1)
    assert eng.add(_req(0, 10, 5), 0.0)
    eng.step(0.0)                            # r0 now running
    assert eng.add(_req(1, 10, 5), 0.0)      # one waiting
    assert not eng.add(_req(2, 10, 5), 0.0)  # queue full
    st = eng.stats()
    assert st["waiting"] == 1 and st["running"] == 1


def test_prefix_cache_hits_hand_built() -> None:
    """block 16; group prefix of 64 tokens = 4 full blocks."""
    eng = _engine()
    eng.add(_req(0, 100, 2, prefix_group=7, prefix_tokens=64), 0.0)
    _run(eng)
    reqs = {}
    for i, inp in ((1, 80), (2, 64), (3, 90)):
        grp = 7 if i < 3 else 8
        r = _req(i, inp, 2, prefix_group=grp, prefix_tokens=64)
        eng.add(r, 0.0)
        reqs[i] = r
    # admit all three in one step and look at what the cache gave them
    eng.step(1.0)
    got = {r.rid: r.cached_tokens for r in eng.prefilling + list(eng.decoding.values())}
    # r1: 4 prefix blocks hit (64); r2: input 64 -> at most (64-1)//16 = 3 blocks (48);
    # r3: other group -> 0
    assert got == {"r1": 64, "r2": 48, "r3": 0}
    # hit rate in tokens: (0 + 64 + 48 + 0) / (100 + 80 + 64 + 90)
    assert eng.stats()["prefix_cache_hit_rate"] == pytest.approx(112 / 334)


def test_lru_eviction_of_free_cached_blocks() -> None:
    # 10 blocks. Group A prefix (4 blocks) cached, then group B (4 blocks), then a
    # plain request needing 6 blocks forces 4 evictions: A's blocks (least recently freed).
    eng = _engine(blocks=10, max_num_seqs=4)
    eng.add(_req(0, 64, 1, prefix_group=1, prefix_tokens=64), 0.0)
    _run(eng)
    eng.add(_req(1, 64, 1, prefix_group=2, prefix_tokens=64), 0.0)
    _run(eng)
    assert len(eng.pool.cache) == 8 and eng.pool.num_free() == 10
    eng.add(_req(2, 96, 1), 0.0)
    _run(eng)
    assert eng.pool.evictions == 4
    r3 = SimRequest(_req(3, 80, 1, prefix_group=2, prefix_tokens=64), 3)
    r4 = SimRequest(_req(4, 80, 1, prefix_group=1, prefix_tokens=64), 4)
    assert eng.enqueue(r3, 2.0) and eng.enqueue(r4, 2.0)
    o = eng.step(2.0)
    assert sorted(o.finished) == ["r3", "r4"]
    assert r3.cached_tokens == 64           # group 2 (freed last) survived
    assert r4.cached_tokens == 0            # group 1 (least recently freed) was evicted


def test_preemption_by_recompute_when_blocks_run_out() -> None:
    # 12 blocks of 16 tokens; two requests of 16 in / 100 out each need up to 8 blocks.
    eng = _engine(blocks=12)
    eng.add(_req(0, 16, 100), 0.0)
    eng.add(_req(1, 16, 100), 0.0)
    outs, _ = _run(eng)
    preempted = [rid for o in outs for rid in o.preempted]
    assert preempted and preempted[0] == "r1"          # the newest goes first
    tokens: dict[str, int] = {}
    for o in outs:
        for rid, n in o.tokens:
            tokens[rid] = tokens.get(rid, 0) + n
    assert tokens == {"r0": 100, "r1": 100}
    assert eng.stats()["num_preempted"] >= 1 and eng.pool.num_free() == 12


def test_abort_frees_blocks() -> None:
    eng = _engine(blocks=50)
    eng.add(_req(0, 100, 50), 0.0)
    eng.step(0.0)
    assert eng.pool.num_free() < 50
    assert eng.abort("r0")
    assert not eng.has_work and eng.pool.num_free() == 50
    assert not eng.abort("nope")


def test_blockpool_refcounts() -> None:
    p = BlockPool(4)
    assert p.allocate(2)
    assert p.register(11) and not p.register(11)
    p.release([11], 1)                       # 11 cached at refcount 0 + 1 private freed
    assert p.num_free() == 4 and list(p.evictable) == [11]
    assert p.match([11, 12], 2) == 1
    p.acquire([11])
    assert p.num_free() == 3
    assert not p.allocate(4) and p.allocate(3)


def test_engine_config_validation_names_values() -> None:
    with pytest.raises(ConfigError, match="max_num_batched_tokens"):
        SchedulerConfig(max_num_seqs=512, max_num_batched_tokens=256)
    with pytest.raises(ConfigError, match="scheduling_policy"):
        SchedulerConfig(scheduling_policy="lifo")  # type: ignore[arg-type]


def test_multi_lora_slots_and_load_delay() -> None:
    # 1 adapter slot, 0.5 s to load. a (runs), b waits for a's slot, the second a request
    # is admitted past b (its adapter runs; vLLM's skipped_waiting_requests).
    eng = ReplicaEngine(None, SchedulerConfig(num_kv_blocks=100, max_loras=1, lora_load_s=0.5),
                        step_model=ConstantStepModel(step_s=0.01))
    eng.add(_req(0, 16, 2, adapter="a"), 0.0)
    eng.add(_req(1, 16, 2, adapter="b"), 0.0)
    eng.add(_req(2, 16, 2, adapter="a"), 0.0)
    durations, tokens = [], []
    t = 0.0
    while eng.has_work:
        o = eng.step(t)
        t += o.duration_s
        durations.append(round(o.duration_s, 6))
        tokens.append(sorted(rid for rid, _ in o.tokens))
    # step 1: r0 loads "a" (0.01 + 0.5); b is passed over (slot busy); r2 uses "a": joins
    # step 2: r0 and r2 decode and finish; step 3: "a" idle -> evicted, "b" loaded for r1;
    # step 4: r1 finishes
    assert durations == [0.51, 0.01, 0.51, 0.01]
    assert tokens == [["r0", "r2"], ["r0", "r2"], ["r1"], ["r1"]]
    assert eng.stats()["lora_loads"] == 2


def test_speculative_decoding_expected_tokens_per_step() -> None:
    from servelab.sim import AffineStepModel, ReplicaSpec, SimConfig, simulate

    # α = 0.8, k = 4: E = (1 − 0.8^5) / (1 − 0.8) = 3.3616 tokens per verification step.
    cfg = SchedulerConfig(num_kv_blocks=100, num_speculative_tokens=4, spec_acceptance_rate=0.8)
    assert cfg.spec_tokens_per_step == pytest.approx(3.3616)
    # verification cost independent of rows and context (per_seq_s = per_ctx_s = 0):
    # TPOT = 10 ms / 3.3616 = 2.9748 ms; without speculation 10 ms.
    model = AffineStepModel(base_s=0.01, per_seq_s=0.0, per_ctx_s=0.0)
    reqs = [RequestSpec(id="a", arrival_s=0.0, input_tokens=16, output_tokens=101)]
    for exact in (False, True):
        res = simulate(SimConfig(replicas=(ReplicaSpec(scheduler=cfg, step_model=model),), exact=exact), reqs)
        r = res.records[0]
        assert (r.finish_s - r.first_token_s) / 100 == pytest.approx(0.01 / 3.3616)


@pytest.mark.parametrize("cpu_blocks", [0, 8])
def test_host_kv_tier_reloads_evicted_prefix(cpu_blocks: int) -> None:
    # GPU: 10 blocks. Group 1's 4 prefix blocks are evicted by a 10-block request; with a
    # host tier they come back at 0.002 s per block instead of being recomputed.
    # 2 MB per block read at 1 GB/s: 0.002 s per block
    dram = KVTier(name="dram", blocks=cpu_blocks, block_bytes=2e6, read_bytes_per_s=1e9)
    eng = ReplicaEngine(None, SchedulerConfig(num_kv_blocks=10, kv_tiers=(dram,)),
                        step_model=ConstantStepModel(step_s=0.01))
    eng.add(_req(0, 64, 1, prefix_group=1, prefix_tokens=64), 0.0)
    _run(eng)
    assert eng.add(_req(1, 150, 1), 0.0)
    _run(eng)
    assert eng.pool.evictions == 4
    r2 = SimRequest(_req(2, 80, 1, prefix_group=1, prefix_tokens=64), 2)
    assert eng.enqueue(r2, 1.0)
    o = eng.step(1.0)
    assert o.finished == ["r2"]
    if cpu_blocks:
        assert r2.cached_tokens == 64 and o.duration_s == pytest.approx(0.01 + 4 * 0.002)
        assert eng.stats()["cpu_kv_hit_tokens"] == 64
    else:
        assert r2.cached_tokens == 0 and o.duration_s == pytest.approx(0.01)
    assert eng.stats()["prefix_cache_hit_rate"] == 0.0     # GPU hits only, as vLLM counts


def test_multi_turn_conversation_reuses_previous_turn() -> None:
    # Turn 0: 100 in, 60 out -> its KV holds 100 + 60 - 1 = 159 tokens = 9 full blocks,
    # cached at finish. Turn 1's prompt (history 160 + 40 new = 200) hits those 9 blocks.
    eng = _engine()
    t0 = SimRequest(_req(0, 100, 60, conversation=3, turn=0), 0)
    assert eng.enqueue(t0, 0.0)
    _run(eng)
    assert t0.cached_tokens == 0
    t1 = SimRequest(_req(1, 200, 10, conversation=3, turn=1), 1)
    other = SimRequest(_req(2, 200, 10, conversation=4, turn=1), 2)
    assert eng.enqueue(t1, 5.0) and eng.enqueue(other, 5.0)
    eng.step(5.0)
    assert t1.cached_tokens == 144 and other.cached_tokens == 0


def test_step_reports_when_each_request_is_first_scheduled() -> None:
    # max_num_seqs=1 and 0.01 s steps: r0 runs 3 steps (prefill + 2 decodes) from t=0,
    # so r1 is first scheduled at the start of the 4th step, t=0.03.
    eng = _engine(max_num_seqs=1)
    assert eng.add(_req(0, 10, 3), 0.0) and eng.add(_req(1, 10, 2), 0.0)
    outs, _ = _run(eng)
    started = [s for o in outs for s in o.started]
    assert [rid for rid, _ in started] == ["r0", "r1"]
    assert started[0][1] == 0.0 and started[1][1] == pytest.approx(0.03)
