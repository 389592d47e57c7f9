"""One scheduling pass of a replica, worked out by hand from the documented rules
(sim/scheduler.py module docstring, sim/kv.py for the block accounting).

The scheduler has no notion of time, so most tests build it directly, queue a few
requests and call one scheduling pass; the expected chunks, block counts, LoRA slots and
load times are derived in each test's docstring or comments from these rules:

- token budget ``max_num_batched_tokens``: decoders take one token each, running prefills
  ``min(remaining, budget)``, then waiting requests in FCFS order while budget > 0 and
  fewer than ``max_num_seqs`` run; without chunked prefill a prompt that does not fit the
  remaining budget waits (and so does everything behind it);
- a sequence holding ``n`` computed tokens holds ``ceil(n / block_size)`` blocks; a
  prefix lookup covers at most ``(L - 1) // block_size`` full blocks (the last prompt
  token is always computed); a prefix group shares ``prefix_tokens // block_size`` blocks,
  a conversation (or a preempted request) every full block of its prompt;
- multi-LoRA: an adapter not resident needs a slot; an idle one is evicted (LRU); with
  every slot held by running requests the request is passed over and keeps its place;
  each load adds ``lora_load_s`` to the step;
- blocks found in an offload tier load back in ``latency_s + n · block_bytes /
  read_bytes_per_s`` per tier touched, added to the step that admits the request.

Tiny configurations (block size 4, a few blocks), ``ConstantStepModel`` where steps run.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from servelab.catalog import RequestSpec
from servelab.sim import AffineStepModel, ConstantStepModel, KVTier, ReplicaEngine, SchedulerConfig
from servelab.sim.tiering import KVPolicy
from servelab.sim.request import DECODE, PREFILL, WAITING, SimRequest
from servelab.sim.scheduler import Scheduler

_ONE = ConstantStepModel(step_s=1.0)


def _cfg(**kw) -> SchedulerConfig:
    return SchedulerConfig(**{"block_size": 4, "num_kv_blocks": 64, "max_num_batched_tokens": 64,
                              "max_num_seqs": 8, **kw})


def _sched(num_blocks: int = 64, *, priority_preemption: bool = False, chains=None, **kw) -> Scheduler:
    return Scheduler(_cfg(num_kv_blocks=num_blocks, **kw), num_blocks, name="r0",
                     record_token_times=False, priority_preemption=priority_preemption, chains=chains)


def _eng(step_model=_ONE, **kw) -> ReplicaEngine:
    return ReplicaEngine(None, _cfg(**kw), step_model=step_model)


def _req(rid, n_in, n_out=1, t=0.0, **kw) -> RequestSpec:
    return RequestSpec(id=rid, arrival_s=t, input_tokens=n_in, output_tokens=n_out, **kw)


def _ids(chunks) -> list[tuple[str, int]]:
    return [(r.rid, n) for r, n in chunks]


def _queued(s: Scheduler) -> list[str]:
    return [r.rid for r in s.waiting_q if r.state == WAITING]


# ----------------------------------------------------------------------------- budget / seqs
def test_budget_exactly_spent_admits_nothing_more() -> None:
    """Budget 8, three prompts of 4: a and b take 4 each, the budget is 0 and c waits
    (no empty chunk for c). a and b hold ceil(4/4) = 1 block each."""
    s = _sched(max_num_batched_tokens=8)
    for rid in "abc":
        assert s.add(_req(rid, 4), 0.0)
    chunks = s._schedule()
    assert _ids(chunks) == [("a", 4), ("b", 4)]
    assert s.num_waiting == 1 and _queued(s) == ["c"]
    assert s.pool.num_free() == 62


def test_one_token_of_budget_left_is_used() -> None:
    """Budget 9, chunked prefill: a 4, b 4, then c gets the last token (chunk of 1,
    1 block). Each admitted request starts PREFILL at the step start p_t, nothing cached."""
    s = _sched(max_num_batched_tokens=9)
    for rid in "abc":
        s.add(_req(rid, 4), 0.0)
    s.p_t = 2.5
    chunks = s._schedule()
    assert _ids(chunks) == [("a", 4), ("b", 4), ("c", 1)]
    assert s.num_waiting == 0 and s.pool.num_free() == 61
    assert all(r.state == PREFILL and r.start_s == 2.5 and r.cached_tokens == 0 and r.computed == 0
               for r, _ in chunks)
    assert [r.rid for r in s.prefilling] == ["a", "b", "c"]


def test_max_num_seqs_is_a_hard_cap() -> None:
    """max_num_seqs 2, three waiting prompts: exactly two run."""
    s = _sched(max_num_seqs=2)
    for rid in "abc":
        s.add(_req(rid, 4), 0.0)
    assert _ids(s._schedule()) == [("a", 4), ("b", 4)]
    assert _queued(s) == ["c"]


def test_max_num_seqs_counts_decoders() -> None:
    """max_num_seqs 2. a (4 in / 5 out) prefills in step [0,1] and decodes from then on
    (B = 1). b, c queued at 1: only one more sequence may run → b alone is admitted,
    next to a's decode token."""
    e = _eng(max_num_seqs=2)
    e.add(_req("a", 4, 5), 0.0)
    e.step(0.0)
    assert e.B == 1
    e.add(_req("b", 4, 5, t=1.0), 1.0)
    e.add(_req("c", 4, 5, t=1.0), 1.0)
    e.begin(1.0, 1)
    assert _ids(e.p_chunks) == [("b", 4)]
    assert e.num_waiting == 1


def test_without_chunked_prefill_a_prompt_that_fits_exactly_runs_and_a_longer_one_waits() -> None:
    """No chunked prefill, budget 8: a (4) leaves 4; b (4) fits exactly → runs; then
    budget 0. Second case: a (4) leaves 4, b (6) does not fit → waits whole, and c (2)
    behind it waits too (FCFS: the head blocks the queue)."""
    s = _sched(max_num_batched_tokens=8, enable_chunked_prefill=False)
    s.add(_req("a", 4), 0.0)
    s.add(_req("b", 4), 0.0)
    assert _ids(s._schedule()) == [("a", 4), ("b", 4)]
    s = _sched(max_num_batched_tokens=8, enable_chunked_prefill=False)
    for rid, n in (("a", 4), ("b", 6), ("c", 2)):
        s.add(_req(rid, n), 0.0)
    assert _ids(s._schedule()) == [("a", 4)]
    assert _queued(s) == ["b", "c"] and s.num_waiting == 2
    assert s.pool.num_free() == 63


def test_kv_full_stops_admission_in_order() -> None:
    """3 blocks of 4. a (8 tokens) takes 2 blocks; b (8) needs 2, only 1 free → b waits,
    and c (4, would fit) waits behind it (FCFS)."""
    s = _sched(num_blocks=3)
    for rid, n in (("a", 8), ("b", 8), ("c", 4)):
        s.add(_req(rid, n), 0.0)
    assert _ids(s._schedule()) == [("a", 8)]
    assert _queued(s) == ["b", "c"] and s.pool.num_free() == 1


def test_admission_order_sets_the_preemption_victim() -> None:
    """a then b admitted in one pass: the victim of a preemption is the newest admitted (b),
    whatever their ids or arrival; after b is preempted, a is the next one."""
    s = _sched()
    s.add(_req("a", 4), 0.0)
    s.add(_req("b", 4), 0.0)
    s._schedule()
    v = s._victim()
    assert v.rid == "b"
    s._preempt(v)
    assert s._victim().rid == "a"


# ----------------------------------------------------------------------------- LoRA
def test_lora_slots_pass_over_and_keep_place() -> None:
    """max_loras 1, load 0.5 s. Queue x(A), y(B), z(A), w(no adapter), one pass:
    x loads A (1 load, +0.5 s) and A now runs, so the only slot is held by a running
    request; y (B) is passed over; z (A resident) and w (none) are admitted. The pass ends
    with only y waiting, adapter-blocked → lora_open. A has 2 running users.
    Second pass (nothing finished, nothing committed: the three prefills are planned
    again): still every slot busy → y passed over again, no load."""
    s = _sched(max_loras=1, lora_load_s=0.5)
    for rid, ad in (("x", "A"), ("y", "B"), ("z", "A"), ("w", None)):
        s.add(_req(rid, 4, 4, adapter=ad), 0.0)
    chunks = s._schedule()
    assert _ids(chunks) == [("x", 4), ("z", 4), ("w", 4)]
    assert dict(s.lora) == {"A": 2}
    assert s.lora_loads == 1 and s.p_extra_s == 0.5
    assert s.lora_open is True
    assert _queued(s) == ["y"] and s.num_waiting == 1
    y = s.waiting_q[0]
    assert s.joins_past_lora_block(SimRequest(_req("v", 4, adapter="A"), 99))
    assert not s.joins_past_lora_block(SimRequest(_req("u", 4, adapter="C"), 98))
    assert y.rid == "y"
    assert _ids(s._schedule()) == [("x", 4), ("z", 4), ("w", 4)]
    assert s.p_extra_s == 0.0 and s.lora_loads == 1
    assert _queued(s) == ["y"] and dict(s.lora) == {"A": 2}


def test_lora_queue_without_adapter_block_is_not_open() -> None:
    """The queue drained with nothing passed over: lora_open stays False."""
    s = _sched(max_loras=1, lora_load_s=0.5)
    s.add(_req("x", 4, adapter="A"), 0.0)
    s._schedule()
    assert s.lora_open is False


def test_lora_not_modelled_when_max_loras_is_zero() -> None:
    """max_loras 0: adapters are ignored — all admitted, no slot bookkeeping, no load time."""
    s = _sched(max_loras=0, lora_load_s=0.5)
    for rid, ad in (("x", "A"), ("y", "B"), ("z", "C")):
        s.add(_req(rid, 4, adapter=ad), 0.0)
    assert len(s._schedule()) == 3
    assert not s.lora and s.lora_loads == 0 and s.p_extra_s == 0.0


def test_lora_idle_adapter_is_evicted_lru() -> None:
    """max_loras 2, load 0.25 s, 1 s steps. a(A), b(B): 4 in / 1 out, both load ([0,1]:
    2 loads) and finish at 1 → A and B resident, idle (LRU order A, B).
    c(C) at 1: slots are not all busy (idle ones) → C loads, evicting A (least recently
    used idle) → {B: 0, C: 1}; the step takes 1 + 0.25 s.
    d(A) at 2.25: B is the only idle one → evicted → {C, A}; 4 loads in all."""
    e = _eng(max_loras=2, lora_load_s=0.25)
    e.add(_req("a", 4, 1, adapter="A"), 0.0)
    e.add(_req("b", 4, 1, adapter="B"), 0.0)
    out = e.step(0.0)
    assert out.duration_s == pytest.approx(1.5) and sorted(out.finished) == ["a", "b"]
    assert list(e.lora.items()) == [("A", 0), ("B", 0)]
    e.add(_req("c", 4, 3, t=1.5, adapter="C"), 1.5)
    out = e.step(1.5)
    assert out.duration_s == pytest.approx(1.25)
    assert list(e.lora.items()) == [("B", 0), ("C", 1)]
    e.add(_req("d", 4, 3, t=2.75, adapter="A"), 2.75)
    out = e.step(2.75)
    assert out.duration_s == pytest.approx(1.25)
    assert list(e.lora.items()) == [("C", 1), ("A", 1)]
    assert e.lora_loads == 4


def test_lora_new_adapter_takes_a_free_slot_next_pass() -> None:
    """max_loras 2, 1 s steps: x(A) prefills in [0,1.5] (load 0.5) and then decodes (A
    running, one slot free). y(B) queued at 1.5: that step loads B into the free slot
    (not every slot is busy) → 1 + 0.5 s."""
    e = _eng(max_loras=2, lora_load_s=0.5)
    e.add(_req("x", 4, 4, adapter="A"), 0.0)
    assert e.step(0.0).duration_s == pytest.approx(1.5)
    e.add(_req("y", 4, 4, t=1.5, adapter="B"), 1.5)
    assert e.step(1.5).duration_s == pytest.approx(1.5)
    assert dict(e.lora) == {"A": 1, "B": 1} and e.lora_loads == 2


@pytest.mark.parametrize("stop", ["max_seqs", "budget", "kv"])
def test_passed_over_request_keeps_its_place_whatever_ends_the_pass(stop) -> None:
    """max_loras 1. x(A) loads A; y(B) is passed over (every slot busy); z(A) is next.
    The pass then ends on z for one of three reasons — max_num_seqs 2 reached before w
    (z admitted), z (6 tokens) not fitting the 4 left of budget 8 without chunked prefill,
    or z (8 tokens, 2 blocks) not fitting the 1 block of 3 that x (8 tokens) leaves — and y must be back at
    the head of the queue, in its place, before what stopped the pass."""
    kw = {"max_seqs": dict(max_num_seqs=2), "budget": dict(max_num_batched_tokens=8,
                                                           enable_chunked_prefill=False),
          "kv": dict(num_blocks=3)}[stop]
    s = _sched(max_loras=1, lora_load_s=0.5, **kw)
    z_in = {"max_seqs": 4, "budget": 6, "kv": 8}[stop]
    x_in = 8 if stop == "kv" else 4
    for rid, ad, n in (("x", "A", x_in), ("y", "B", 4), ("z", "A", z_in), ("w", None, 4)):
        s.add(_req(rid, n, 2, adapter=ad), 0.0)
    ran = [rid for rid, _ in _ids(s._schedule())]
    if stop == "max_seqs":
        assert ran == ["x", "z"] and _queued(s) == ["y", "w"]
    else:
        assert ran == ["x"] and _queued(s) == ["y", "z", "w"]
    assert s.num_waiting == len(_queued(s))
    assert s.lora_open is False            # the pass did not end on an empty queue


# ----------------------------------------------------------------------------- prefix cache
def test_prefix_group_hits_by_hand() -> None:
    """Block size 4, group 0 with an 8-token prefix. a: 13 in / 1 out runs [0,1]: its 2
    prefix blocks are registered (prefix_tokens // 4 = 2, not its own 3rd block, although
    13 // 4 = 3 blocks are full) and stay cached after it ends. b (same group, 9 in) at 1: lookup over (9 - 1) // 4 = 2 blocks →
    2 hits: 8 tokens cached, a chunk of 1, and ceil(9/4) - 2 = 1 new block. Counters:
    queried 13 + 9 = 22 tokens, 8 hit. c (no group, 4 in): queried 26, still 8 hit."""
    e = _eng()
    e.add(_req("a", 13, 1, prefix_group=0, prefix_tokens=8), 0.0)
    e.step(0.0)
    assert len(e.pool.cache) == 2 and e.pool.num_free() == 64
    assert (e.pool.query_tokens, e.pool.hit_tokens) == (13, 0)
    free_uncached = e.pool.free_uncached
    e.add(_req("b", 9, 1, t=1.0, prefix_group=0, prefix_tokens=8), 1.0)
    e.add(_req("c", 4, 1, t=1.0), 1.0)
    e.begin(1.0, 1)
    (b, nb), (c, nc) = e.p_chunks
    assert (b.rid, nb, b.computed, b.cached_tokens) == ("b", 1, 8, 8)
    assert (c.rid, nc, c.computed, c.cached_tokens) == ("c", 4, 0, 0)
    assert len(b.shared) == 2 and b.registered == 2 and b.share_upto == 2
    assert e.pool.free_uncached == free_uncached - 1 - 1      # b's 3rd block, c's block
    assert len(e.pool.evictable) == 0                         # b holds both cached blocks
    assert (e.pool.query_tokens, e.pool.hit_tokens) == (26, 8)
    e.commit()
    assert len(e.pool.cache) == 2                             # b's own block is not shared


def test_prefix_lookup_leaves_the_last_prompt_token_to_compute() -> None:
    """Group 1 whose prefix is the whole 12-token prompt: a registers all 3 blocks.
    b (same 12 tokens) may reuse only (12 - 1) // 4 = 2 blocks: the 12th token must be
    computed to produce the first output token → chunk of 4, one new block."""
    e = _eng()
    e.add(_req("a", 12, 1, prefix_group=1, prefix_tokens=12), 0.0)
    e.step(0.0)
    assert len(e.pool.cache) == 3
    e.add(_req("b", 12, 1, t=1.0, prefix_group=1, prefix_tokens=12), 1.0)
    e.begin(1.0, 1)
    (b, n), = e.p_chunks
    assert (n, b.cached_tokens, e.pool.hit_tokens) == (4, 8, 8)
    assert e.pool.free_uncached == 64 - 3 - 1


def test_prefix_cache_off_means_no_lookup_and_no_counters() -> None:
    """enable_prefix_caching False: nothing is registered, b recomputes all 9 tokens and
    the hit-rate counters stay 0."""
    e = _eng(enable_prefix_caching=False)
    e.add(_req("a", 9, 1, prefix_group=0, prefix_tokens=8), 0.0)
    e.step(0.0)
    e.add(_req("b", 9, 1, t=1.0, prefix_group=0, prefix_tokens=8), 1.0)
    e.begin(1.0, 1)
    (b, n), = e.p_chunks
    assert (n, b.cached_tokens, b.shared) == (9, 0, [])
    assert (e.pool.query_tokens, e.pool.hit_tokens, len(e.pool.cache)) == (0, 0, 0)


def test_conversation_turns_share_every_full_block() -> None:
    """Conversation 0, block 4. Turn 1: 5 in / 4 out: prefill [0,1] registers 5 // 4 = 1
    block; it decodes 3 more tokens (KV 5 + 3 = 8 at the end) and at its end its 2 full
    blocks stay cached. Turn 2: 12 in (5 + 4 + 3 new) at 4: lookup (12-1)//4 = 2 blocks →
    2 hits, 8 tokens cached, chunk of 4, 1 new block; when that chunk is computed all
    12 // 4 = 3 full blocks of the prompt are shared (registered) → 3 cached blocks."""
    e = _eng()
    e.add(_req("t1", 5, 4, conversation=0), 0.0)
    t = 0.0
    while e.has_work:
        t += e.step(t).duration_s
    assert t == 4.0 and len(e.pool.cache) == 2
    e.add(_req("t2", 12, 3, t=4.0, conversation=0, turn=1), 4.0)
    e.begin(4.0, 1)
    (r, n), = e.p_chunks
    assert (n, r.cached_tokens, r.share_upto, r.registered) == (4, 8, 3, 2)
    e.commit()
    assert len(e.pool.cache) == 3 and r.registered == 3


def test_remote_prompt_skips_the_prefix_cache() -> None:
    """P/D decode side: a request whose prompt KV arrives from a prefill replica
    (remote) computes only its last prompt token: chunk of 1, L - 1 = 8 tokens done
    (reported cached), and it allocates all ceil(9/4) = 3 blocks itself without looking
    up the local prefix cache (the group's 2 cached blocks stay evictable, no counters)."""
    e = _eng()
    e.add(_req("a", 9, 1, prefix_group=0, prefix_tokens=8), 0.0)
    e.step(0.0)
    q0 = e.pool.query_tokens
    r = SimRequest(_req("b", 9, 1, t=1.0, prefix_group=0, prefix_tokens=8), 7)
    r.remote = True
    assert e.enqueue(r, 1.0)
    e.begin(1.0, 1)
    assert _ids(e.p_chunks) == [("b", 1)]
    assert (r.computed, r.cached_tokens, r.shared) == (8, 8, [])
    assert len(e.pool.evictable) == 2 and e.pool.free_uncached == 62 - 3
    assert (e.pool.query_tokens, e.pool.hit_tokens) == (q0, 0)


# ----------------------------------------------------------------------------- offload tiers
_DRAM = KVTier(name="dram", blocks=8, block_bytes=100.0, read_bytes_per_s=1000.0, latency_s=0.05)


def _evict_group0(e: ReplicaEngine, t: float = 0.0) -> float:
    """a (group 0, 8-token prefix, 9 in / 1 out) caches 2 blocks; x (15 in, 4 blocks of the
    4 in use) then evicts both to DRAM. Returns the time both have ended (2 steps of 1 s)."""
    e.add(_req("a", 9, 1, t=t, prefix_group=0, prefix_tokens=8), t)
    t += e.step(t).duration_s
    e.add(_req("x", 15, 1, t=t), t)
    t += e.step(t).duration_s
    assert e.pool.offloaded() == 2 and not e.pool.cache
    return t


def test_tier_blocks_load_back_with_their_time() -> None:
    """4 GPU blocks, DRAM tier: 0.05 s latency + 100 B / 1000 B/s = 0.1 s per block.
    After _evict_group0, b (group 0, 9 in) finds its 2 prefix blocks in DRAM: they load
    (0.05 + 2 · 0.1 = 0.25 s added to the step), 8 tokens done, chunk of 1, 3 GPU blocks
    (2 for the loaded ones + 1); DRAM hit tokens 8; the blocks leave the tier."""
    e = _eng(num_kv_blocks=4, kv_tiers=(_DRAM,))
    t = _evict_group0(e)
    e.add(_req("b", 9, 1, t=t, prefix_group=0, prefix_tokens=8), t)
    e.begin(t, 1)
    (b, n), = e.p_chunks
    assert (n, b.computed, b.cached_tokens, b.registered, len(b.shared)) == (1, 8, 8, 2, 2)
    assert e.p_end - t == pytest.approx(1.25)
    e.commit()
    assert e.pool.tier_hit_tokens == [8] and e.pool.offloaded() == 0
    assert e.pool.hit_tokens == 0 and e.pool.query_tokens == 9 + 15 + 9   # every prompt is queried


def test_tier_load_adds_to_a_lora_load_in_the_same_step() -> None:
    """max_loras 1, load 0.5 s. c (adapter A, 4 in) is admitted first (+0.5 s), then b
    loads its 2 DRAM blocks (+0.25 s): the step takes 1 + 0.5 + 0.25 s."""
    e = _eng(num_kv_blocks=6, kv_tiers=(_DRAM,), max_loras=1, lora_load_s=0.5)
    e.add(_req("a", 9, 1, prefix_group=0, prefix_tokens=8), 0.0)
    t = e.step(0.0).duration_s
    e.add(_req("x", 23, 1, t=t), t)            # 6 blocks: evicts both cached ones
    t += e.step(t).duration_s
    assert e.pool.offloaded() == 2
    e.add(_req("c", 4, 1, t=t, adapter="A"), t)
    e.add(_req("b", 9, 1, t=t, prefix_group=0, prefix_tokens=8), t)
    assert e.step(t).duration_s == pytest.approx(1.75)


@pytest.mark.parametrize("why", ["kv", "budget"])
def test_tier_blocks_not_loaded_go_back_to_their_tier(why) -> None:
    """After _evict_group0 (4 GPU blocks, 2 group blocks in DRAM), y (8 in / 3 out) is
    admitted first. b (group 0) takes its 2 DRAM blocks for loading (8 tokens done) but
    cannot run: 'kv' — y (8 in) holds 2 GPU blocks, b (9 in) needs 3, 2 are free;
    'budget' — no chunked prefill, y (11 in) leaves 16 - 11 = 5 tokens of budget and
    b (14 in) needs 14 - 8 = 6. Either
    way the load is undone: both blocks are back in DRAM, nothing loaded, no load time
    (the step takes 1 s), and b still waits."""
    kw = dict(max_num_batched_tokens=16, enable_chunked_prefill=False) if why == "budget" else {}
    e = _eng(num_kv_blocks=4, kv_tiers=(_DRAM,), **kw)
    t = _evict_group0(e)
    y_in, b_in = (11, 14) if why == "budget" else (8, 9)
    e.add(_req("y", y_in, 3, t=t), t)
    e.add(_req("b", b_in, 1, t=t, prefix_group=0, prefix_tokens=8), t)
    assert e.step(t).duration_s == pytest.approx(1.0)
    assert e.pool.offloaded() == 2 and e.pool.tier_hit_tokens == [0]
    assert e.num_waiting == 1 and e.waiting_q[0].rid == "b" and e.waiting_q[0].shared == []


def test_gpu_hits_not_used_are_released() -> None:
    """No chunked prefill, budget 16. a (group 0, 9 in / 1 out) leaves 2 cached blocks.
    At 1: y (12 in) takes 12 of the budget; b (group 0, 14 in) has 2 hits → 14 - 8 = 6
    tokens to compute > 4 left → b waits, and the 2 blocks it acquired are released
    (evictable again, b holds none)."""
    e = _eng(max_num_batched_tokens=16, enable_chunked_prefill=False)
    e.add(_req("a", 9, 1, prefix_group=0, prefix_tokens=8), 0.0)
    e.step(0.0)
    e.add(_req("y", 12, 3, t=1.0), 1.0)
    e.add(_req("b", 14, 1, t=1.0, prefix_group=0, prefix_tokens=8), 1.0)
    e.begin(1.0, 1)
    assert _ids(e.p_chunks) == [("y", 12)]
    b = e.waiting_q[0]
    assert b.rid == "b" and b.shared == [] and b.registered == 0
    assert len(e.pool.evictable) == 2 and e.pool.hit_tokens == 0


def test_tier_lookup_continues_after_gpu_hits() -> None:
    """4 GPU blocks. a (group 0, 9 in / 1 out) leaves 2 cached blocks, freed tail first,
    so the LRU one is its 2nd block. x (11 in, 3 blocks; 2 free) evicts just that one to
    DRAM. b (group 0, 9 in): 1 GPU hit, then the lookup goes on in DRAM from block 2:
    1 block loads (0.05 + 0.1 s). 8 tokens done, 4 of them GPU hits, 4 from DRAM."""
    e = _eng(num_kv_blocks=4, kv_tiers=(_DRAM,))
    e.add(_req("a", 9, 1, prefix_group=0, prefix_tokens=8), 0.0)
    e.step(0.0)
    e.add(_req("x", 11, 1, t=1.0), 1.0)
    e.step(1.0)
    assert e.pool.offloaded() == 1 and len(e.pool.cache) == 1
    e.add(_req("b", 9, 1, t=2.0, prefix_group=0, prefix_tokens=8), 2.0)
    out = e.step(2.0)
    assert out.duration_s == pytest.approx(1.15)
    assert e.pool.hit_tokens == 4 and e.pool.tier_hit_tokens == [4]


def test_tier_lookup_stops_at_the_last_block_it_may_reuse() -> None:
    """Group 1 whose prefix is the whole 12-token prompt: a (12 in / 1 out) caches 3
    blocks; x (15 in) evicts all 3 to DRAM. b (same prompt) may reuse (12 - 1) // 4 = 2
    blocks only, so it loads 2 (0.05 + 0.2 s), computes 4 tokens, and the 3rd block
    stays in DRAM."""
    e = _eng(num_kv_blocks=4, kv_tiers=(_DRAM,))
    e.add(_req("a", 12, 1, prefix_group=1, prefix_tokens=12), 0.0)
    e.step(0.0)
    e.add(_req("x", 15, 1, t=1.0), 1.0)
    e.step(1.0)
    assert e.pool.offloaded() == 3
    e.add(_req("b", 12, 1, t=2.0, prefix_group=1, prefix_tokens=12), 2.0)
    e.begin(2.0, 1)
    (b, n), = e.p_chunks
    assert (n, b.cached_tokens) == (4, 8)
    assert e.p_end == pytest.approx(3.25)
    assert e.pool.offloaded() == 1


def test_tier_load_under_a_policy_pool() -> None:
    """The same load as test_tier_blocks_load_back_with_their_time with a tier policy
    ('priority', no pinning): the policy pool changes nothing here → 2 DRAM blocks load
    in 0.05 + 2 · 0.1 s, 8 tokens done."""
    e = _eng(num_kv_blocks=4, kv_tiers=(_DRAM,), kv_policy=KVPolicy(policy="priority"))
    t = _evict_group0(e)
    e.add(_req("b", 9, 1, t=t, prefix_group=0, prefix_tokens=8), t)
    e.begin(t, 1)
    (b, n), = e.p_chunks
    assert (n, b.cached_tokens) == (1, 8)
    assert e.p_end - t == pytest.approx(1.25)


def test_cost_policy_loads_when_cheaper_than_recompute() -> None:
    """Cost policy, affine steps 0.5 s + 0.1 s per prefill token. Recomputing a block of
    4 costs 0.4 s; loading from DRAM 0.1 s per block (+ 0.05 s once), so DRAM keeps
    evicted blocks and b loads both of its prefix blocks: saves 0.8 s for 0.25 s.
    b's step: 0.5 + 0.1 · 1 token + 0.25 = 0.85 s."""
    m = AffineStepModel(base_s=0.5, per_seq_s=0.0, per_ctx_s=0.0, per_prefill_token_s=0.1)
    e = _eng(step_model=m, num_kv_blocks=4, kv_tiers=(_DRAM,), kv_policy=KVPolicy(policy="cost"))
    t = _evict_group0(e)
    assert t == pytest.approx((0.5 + 0.9) + (0.5 + 1.5))
    e.add(_req("b", 9, 1, t=t, prefix_group=0, prefix_tokens=8), t)
    assert e.step(t).duration_s == pytest.approx(0.85)
    assert e.pool.tier_hit_tokens == [8]


_NVME = KVTier(name="nvme", blocks=8, block_bytes=2000.0, read_bytes_per_s=1000.0, latency_s=0.5)


def test_prefetched_block_loads_at_the_first_tier_rate() -> None:
    """DRAM of 1 block (0.05 s + 0.1 s/block) over NVMe (0.5 s + 2 s/block), prefetch on.
    a (group 0, 9 in / 1 out) caches 2 blocks, freed tail first; x (15 in) evicts the 2nd
    then the 1st into DRAM, which pushes the 2nd down to NVMe. At 2: y1, y2 (4 in / 3 out)
    fill max_num_seqs 2 until 5; c (adapter A, 4 in) and b (group 0, 9 in) wait. b's
    NVMe block is prefetched from 2 + 0.5 (data from 2.5, 2 s per block → landed by 4.5).
    At 5 c loads its adapter (+0.5 s) and b loads block 1 from DRAM and block 2 counted
    at the DRAM rate (prefetched): 0.05 + 2 · 0.1 = 0.25 s (not 0.15 + 2.5 s).
    The step: 1 + 0.5 + 0.25 s; 1 block landed by prefetch."""
    e = _eng(num_kv_blocks=4, kv_tiers=(replace(_DRAM, blocks=1), _NVME), max_num_seqs=2,
             max_loras=1, lora_load_s=0.5, kv_policy=KVPolicy(prefetch=True))
    t = _evict_group0(e)
    assert [len(x) for x in e.pool.tiers] == [1, 1]
    for rid in ("y1", "y2"):
        e.add(_req(rid, 4, 3, t=t), t)
    e.add(_req("c", 4, 1, t=t, adapter="A"), t)
    e.add(_req("b", 9, 1, t=t, prefix_group=0, prefix_tokens=8), t)
    while t < 5.0:
        t += e.step(t).duration_s
    assert t == 5.0
    out = e.step(t)
    assert out.duration_s == pytest.approx(1.75) and sorted(out.finished) == ["b", "c"]
    assert e.pf_landed == 1


# ----------------------------------------------------------------------------- running prefills, preemption
def test_chunked_prefill_continues_with_its_own_blocks() -> None:
    """Budget 6, block 4. a (10 in) gets 6 tokens in [0,1] → ceil(6/4) = 2 blocks; b
    (4 in) waits (budget spent). [1,2]: a's last 4 tokens need ceil(10/4) - 2 = 1 more
    block; b gets the 2 tokens left (1 block) → 60 blocks free. a ends at 2 and frees
    its 3; [2,3]: b's last 2 tokens fit its block (ceil(4/4) - ceil(2/4) = 0)."""
    e = _eng(max_num_batched_tokens=6, max_num_seqs=2)
    e.add(_req("a", 10), 0.0)
    e.add(_req("b", 4), 0.0)
    e.step(0.0)
    assert e.pool.free_uncached == 62 and e.num_waiting == 1
    e.begin(1.0, 1)
    assert _ids(e.p_chunks) == [("a", 4), ("b", 2)]
    assert e.pool.free_uncached == 60
    assert e.commit()[0].rid == "a"
    assert e.pool.free_uncached == 63
    e.begin(2.0, 1)
    assert _ids(e.p_chunks) == [("b", 2)] and e.pool.free_uncached == 63


def test_running_prefill_gets_the_last_token_of_budget() -> None:
    """Budget = max_num_seqs = 2, 1 s steps. a (2 in / 10 out) prefills in [0,1], then
    decodes one token a step (budget 2 - 1 = 1 left). b (4 in) is admitted at 1 with a
    1-token chunk and keeps getting that 1 token: 4 chunks [1,2]..[4,5] → b's only token
    at 5. a's tokens at 1, 2, …, 10."""
    from servelab.sim import ReplicaSpec, SimConfig, simulate
    cfg = SimConfig(replicas=(ReplicaSpec(scheduler=_cfg(max_num_batched_tokens=2, max_num_seqs=2),
                                          step_model=_ONE),))
    r = {x.id: x for x in simulate(cfg, [_req("a", 2, 10), _req("b", 4, 1)]).records}
    assert (r["b"].first_token_s, r["b"].finish_s) == (5.0, 5.0)
    assert r["a"].finish_s == 10.0


def test_decoders_short_of_blocks_preempt_the_newest() -> None:
    """3 blocks of 4. a, b (4 in / 8 out) prefill in [0,1] (1 block each). c (4 in) comes
    at 1. At 1 both decoders reach context 4 and need a 2nd block: 2 needed, 1 free →
    b (admitted last) is preempted: its full block stays cached, it goes back to the
    head of the queue with 4 + 1 tokens as its prompt; a gets the free block. Nothing is
    admitted in a step that preempted (vLLM), and the engine plans one step, not a
    stretch: the step is [1,2]; b, c wait in that order."""
    e = _eng(num_kv_blocks=3, max_num_seqs=4)
    e.add(_req("a", 4, 8), 0.0)
    e.add(_req("b", 4, 8), 0.0)
    e.step(0.0)
    e.add(_req("c", 4, 1, t=1.0), 1.0)
    assert e.begin(1.0) == 2.0
    assert e.p_chunks == [] and [r.rid for r in e.last_preempted] == ["b"]
    assert e.num_preempted == 1 and e.B == 1 and _queued(e) == ["b", "c"] and e.num_waiting == 2
    b = e.waiting_q[0]
    assert (b.prompt_len, b.computed, b.state) == (5, 0, WAITING)
    assert e.pool.free_uncached == 0 and len(e.pool.evictable) == 1
    e.commit()
    # to the end: at 2 b (5 tokens, its cached block hit) needs 1 more block, none free →
    # b and c wait. a's 3rd block (context 8 → 9, step [5,6]) evicts b's cached block;
    # a's tokens at 1..8 → a ends at 8. At 8 (3 blocks free) b recomputes all 5 tokens
    # (2 blocks) and c runs (1 block): b's 2nd token and c's only one at 9; b's 3rd block
    # at context 8 (step [12,13]) is free; b's 8th token at 15.
    fin, t = {}, 2.0
    while e.has_work:
        out = e.step(t)
        assert out.preempted == []
        t += out.duration_s
        fin.update((rid, t) for rid in out.finished)
    assert fin == {"a": 8.0, "c": 9.0, "b": 15.0} and e.num_preempted == 1
    assert e.pool.num_free() == 3


def test_partial_prefill_short_of_blocks_preempts_itself() -> None:
    """4 blocks of 4, budget 8. a (4 in / 10 out) and b (12 in) in [0,1]: a 4, b 4 of 12
    (1 block each). At 1: a (context 4) takes a 2nd block → 1 free; b's next 7 tokens
    need ceil(11/4) - 1 = 2 → b (the newest running prefill) is preempted, its full
    block cached. No admission after a preemption: the step is a's decode only, planned
    as one step [1,2]."""
    e = _eng(num_kv_blocks=4, max_num_batched_tokens=8, max_num_seqs=2)
    e.add(_req("a", 4, 10), 0.0)
    e.add(_req("b", 12, 1), 0.0)
    e.step(0.0)
    assert [r.rid for r in e.prefilling] == ["b"] and e.B == 1
    assert e.begin(1.0) == 2.0
    assert e.p_chunks == [] and [r.rid for r in e.last_preempted] == ["b"]
    assert e.prefilling == [] and _queued(e) == ["b"] and e.num_preempted == 1
    assert e.pool.free_uncached == 1 and len(e.pool.evictable) == 1


def test_pinned_blocks_count_as_free_for_decoders() -> None:
    """Priority tier policy pinning up to 2 blocks of priority <= 0, 4 GPU blocks.
    a (group 0, 9 in / 1 out, priority 0) leaves its 2 prefix blocks pinned. d (4 in /
    6 out) at 1: prefill [1,2] (1 block), decodes 5 steps; its 3rd block (context 8 → 9)
    comes from a pinned block (free = 0 uncached + 0 evictable + 2 pinned), so nothing is
    preempted and d ends at 1 + 6 = 7."""
    pol = KVPolicy(policy="priority", pin_blocks=2, pin_priority=0)
    e = _eng(num_kv_blocks=4, kv_tiers=(_DRAM,), kv_policy=pol)
    e.add(_req("a", 9, 1, prefix_group=0, prefix_tokens=8), 0.0)
    e.step(0.0)
    assert len(e.pool.pinned) == 2
    e.add(_req("d", 4, 6, t=1.0), 1.0)
    t, done = 1.0, []
    for _ in range(6):
        out = e.step(t)
        t += out.duration_s
        done += out.finished
        assert out.preempted == []
    assert done == ["d"] and t == 7.0 and e.num_preempted == 0
    assert len(e.pool.pinned) == 1             # one pinned block was taken by d


def test_decoders_take_their_new_blocks_from_the_free_ones() -> None:
    """64 blocks. a, b (4 in / 3 out) hold 1 block each after [0,1]; at 1 both reach
    context 4 and take a 2nd block: 62 → 60 free."""
    e = _eng()
    e.add(_req("a", 4, 3), 0.0)
    e.add(_req("b", 4, 3), 0.0)
    e.step(0.0)
    assert e.pool.free_uncached == 62
    e.begin(1.0, 1)
    assert e.pool.free_uncached == 60 and e.p_chunks == []


def test_no_admission_in_a_step_that_preempted_even_for_higher_priority() -> None:
    """Priority policy, no prefix caching, 5 blocks. a (priority 0, 4 in / 8 out: 1 block),
    b (priority 5, 12 in / 8 out: 3 blocks) prefill in [0,1]; c (priority 0, 4 in) comes
    at 1. At 1 both decoders need a block (contexts 4 and 12), 1 is free → b (lowest
    priority) is preempted and frees 3; a takes 1, 3 stay free. c would fit, but nothing
    is admitted in a step that preempted: the step is a's decode alone."""
    e = _eng(num_kv_blocks=5, scheduling_policy="priority", enable_prefix_caching=False)
    e.add(_req("a", 4, 8, priority=0), 0.0)
    e.add(_req("b", 12, 8, priority=5), 0.0)
    e.step(0.0)
    e.add(_req("c", 4, 1, t=1.0, priority=0), 1.0)
    assert e.begin(1.0) == 2.0
    assert e.p_chunks == [] and [r.rid for r in e.last_preempted] == ["b"]
    assert e.pool.free_uncached == 3 and e.num_waiting == 2
    e.commit()
    e.begin(2.0, 1)
    # next step: c first (priority 0); b (12 + 1 tokens: 4 blocks, 2 left) waits
    assert [r.rid for r, _ in e.p_chunks] == ["c"] and e.waiting_h[0][3].rid == "b"
    # c ends at 3; a (tokens 1..8, 3 blocks at the end) ends at 8; then b gets 4 of the 5
    # blocks, recomputes its 13 tokens in [8,9] (2nd token at 9) and decodes 6 more,
    # its 5th block at context 16 (step [11,12]): ends at 15. No second preemption.
    fin = {x.rid: 3.0 for x in e.commit()}
    t = 3.0
    while e.has_work:
        out = e.step(t)
        t += out.duration_s
        fin.update((rid, t) for rid in out.finished)
    assert fin == {"c": 3.0, "a": 8.0, "b": 15.0} and e.num_preempted == 1


def test_prefetch_wait_holds_a_request_until_its_blocks_land() -> None:
    """As test_prefetched_block_loads_at_the_first_tier_rate, with prefetch_wait: b
    (queued at 2, replica idle) is held outside the queue until its NVMe block has been
    copied up (data from 2 + 0.5, 2 s per block → 4.5; the engine's wake-up time). A
    step at 2 has nothing to run; at 4.5 b joins and loads both blocks at the DRAM rate
    (0.05 + 2 · 0.1 s): the step is [4.5, 5.75]. b2 (queued with b) is still held."""
    e = _eng(num_kv_blocks=4, kv_tiers=(replace(_DRAM, blocks=1), _NVME),
             kv_policy=KVPolicy(prefetch=True, prefetch_wait=True))
    t = _evict_group0(e)
    assert e.add(_req("b", 9, 1, t=t, prefix_group=0, prefix_tokens=8), t)
    # b2 (same prefix) queued too: its copy waits for the channel (free at 4.5) → data
    # from 4.5 + 0.5, ready at 7; both are held and counted as waiting
    assert e.add(_req("b2", 9, 1, t=t, prefix_group=0, prefix_tokens=8), t)
    assert e.wake_s == 4.5 and e.num_waiting == 2 and not e.waiting_q
    assert e.begin(2.0) is None
    assert e.begin(4.5) == pytest.approx(5.75)
    assert _ids(e.p_chunks) == [("b", 1)] and e.num_waiting == 1
    assert e.pf_landed == 1 and e.wake_s == 7.0


# ----------------------------------------------------------------------------- hash chains
def test_prefix_groups_do_not_share_blocks() -> None:
    """a (group 0, 8-token prefix) caches 2 blocks; b (group 1, same lengths) has a
    different prefix → no hit; c (group 0 again) hits both."""
    e = _eng()
    e.add(_req("a", 9, 1, prefix_group=0, prefix_tokens=8), 0.0)
    e.step(0.0)
    e.add(_req("b", 9, 1, t=1.0, prefix_group=1, prefix_tokens=8), 1.0)
    e.add(_req("c", 9, 1, t=1.0, prefix_group=0, prefix_tokens=8), 1.0)
    e.begin(1.0, 1)
    assert [(r.rid, r.cached_tokens) for r, _ in e.p_chunks] == [("b", 0), ("c", 8)]


def test_conversation_reuses_its_group_prefix() -> None:
    """A conversation whose prompt starts with group 0's 8-token prefix: its first 2
    blocks are the group's blocks (the chain names a block by the owner of its tokens),
    so after a (group 0, not a conversation) the conversation's first turn hits 2 blocks;
    a request of the same conversation length but no group hits none."""
    e = _eng()
    e.add(_req("a", 9, 1, prefix_group=0, prefix_tokens=8), 0.0)
    e.step(0.0)
    e.add(_req("c", 13, 1, t=1.0, conversation=3, prefix_group=0, prefix_tokens=8), 1.0)
    e.add(_req("d", 13, 1, t=1.0, conversation=4), 1.0)
    e.begin(1.0, 1)
    assert [(r.rid, r.cached_tokens) for r, _ in e.p_chunks] == [("c", 8), ("d", 0)]



# ----------------------------------------------------------------------------- queue edges, set-up
def test_enqueue_stamps_and_bounds() -> None:
    """A queued request records the replica and the dispatch time; max_waiting 1 refuses
    the 2nd waiting request (503); a request that can never fit (8 blocks · 4 = 32 tokens
    of KV < 30 + 3) is refused unless the caller says it checked."""
    s = _sched(num_blocks=8, max_waiting=1)
    r = SimRequest(_req("a", 4), 1)
    assert s.enqueue(r, 2.5)
    assert (r.replica, r.dispatch_s, r.state, s.num_waiting) == ("r0", 2.5, WAITING, 1)
    assert not s.enqueue(SimRequest(_req("b", 4), 2), 2.6) and s.num_waiting == 1
    s = _sched(num_blocks=8)
    big = SimRequest(_req("c", 30, 3), 3)
    assert s.fits(big.spec).startswith("400") and not s.enqueue(big, 0.0) and s.num_waiting == 0
    assert s.enqueue(big, 0.0, checked=True) and s.num_waiting == 1
    assert not s.joins_past_lora_block(big)     # no admission pass yet: nothing blocked


def test_release_kv_of_a_request_not_held() -> None:
    """release_kv frees only requests held for a KV transfer: any other → False."""
    s = _sched()
    assert s.release_kv(SimRequest(_req("a", 4), 1)) is False


def test_engine_records_token_times() -> None:
    """record_token_times, 1 s steps: a (4 in / 3 out) at 0 → tokens at 1, 2, 3;
    b (4 in / 2 out) queued at 1 → 2, 3."""
    e = ReplicaEngine(None, _cfg(), step_model=_ONE, record_token_times=True)
    e.add(_req("a", 4, 3), 0.0)
    e.step(0.0)
    e.add(_req("b", 4, 2, t=1.0), 1.0)
    a, b = e.decoding["a"], e.waiting_q[0]
    e.step(1.0)
    e.step(2.0)
    assert a.token_times == [1.0, 2.0, 3.0] and b.token_times == [2.0, 3.0]


def test_decode_step_time_counts_the_context() -> None:
    """Affine steps 0.1 s + 0.01 s per decoder + 0.001 s per context token. a (4 in /
    2 out): prefill [0, 0.1]; its decode step has B = 1 and C = 4 tokens in KV →
    0.1 + 0.01 + 0.004 = 0.114 s."""
    m = AffineStepModel(base_s=0.1, per_seq_s=0.01, per_ctx_s=0.001, per_prefill_token_s=0.0)
    e = _eng(step_model=m)
    e.add(_req("a", 4, 2), 0.0)
    assert e.step(0.0).duration_s == pytest.approx(0.1)
    assert e.step(0.1).duration_s == pytest.approx(0.114)


def test_low_priority_blocks_are_not_pinned() -> None:
    """Priority policy pinning blocks of priority <= 0: a (priority 5) leaves its 2 prefix
    blocks merely evictable; b (priority 0, group 1) leaves its 2 pinned."""
    pol = KVPolicy(policy="priority", pin_blocks=4, pin_priority=0)
    e = _eng(kv_tiers=(_DRAM,), kv_policy=pol)
    e.add(_req("a", 9, 1, priority=5, prefix_group=0, prefix_tokens=8), 0.0)
    e.step(0.0)
    assert (len(e.pool.pinned), len(e.pool.evictable)) == (0, 2)
    e.add(_req("b", 9, 1, t=1.0, priority=0, prefix_group=1, prefix_tokens=8), 1.0)
    e.step(1.0)
    assert (len(e.pool.pinned), len(e.pool.evictable)) == (2, 2)


def test_completed_request_record_has_no_reason() -> None:
    """A request served to the end is 'ok' with an empty reason (a reason explains only
    a request that did not complete: rejected, timed out, cancelled)."""
    from servelab.sim import ReplicaSpec, SimConfig, simulate
    cfg = SimConfig(replicas=(ReplicaSpec(scheduler=_cfg(), step_model=_ONE),))
    rec = simulate(cfg, [_req("a", 4, 2)]).records[0]
    assert (rec.status, rec.reason, rec.finish_s) == ("ok", "", 2.0)


def test_lora_pass_over_keeps_priority_order() -> None:
    """Priority policy, max_loras 1. Waiting: x (A, priority 0), y (B, 1), z (none, 2),
    w (A, 3). x loads A; y is passed over (A's slot busy); z and w run. y is back in the
    queue, the only one waiting; A has 2 running users. A request for A (resident, running)
    would join at the next boundary; one for C would not."""
    s = _sched(max_loras=1, lora_load_s=0.5, scheduling_policy="priority")
    for rid, ad, p in (("x", "A", 0), ("y", "B", 1), ("z", None, 2), ("w", "A", 3)):
        s.add(_req(rid, 4, 2, adapter=ad, priority=p), 0.0)
    assert _ids(s._schedule()) == [("x", 4), ("z", 4), ("w", 4)]
    assert [e[3].rid for e in s.waiting_h] == ["y"] and s.num_waiting == 1 and s.lora_open
    assert s._wpeek().rid == "y"


def test_lora_running_adapter_with_one_user_lets_a_request_join() -> None:
    """max_loras 1: x (A) runs alone on A (1 user), y (B) passed over → a new request
    for A needs no slot and would be admitted at the next step boundary."""
    s = _sched(max_loras=1)
    s.add(_req("x", 4, 2, adapter="A"), 0.0)
    s.add(_req("y", 4, 2, adapter="B"), 0.0)
    s._schedule()
    assert dict(s.lora) == {"A": 1} and s.lora_open
    assert s.joins_past_lora_block(SimRequest(_req("v", 4, adapter="A"), 9))


def test_two_aborts_in_turn_free_everything() -> None:
    """a, b (4 in / 5 out) decode from 1 (2 blocks each after [1,2]). Abort a between
    steps, then b: each frees its blocks at once; nothing is left."""
    e = _eng()
    e.add(_req("a", 4, 5), 0.0)
    e.add(_req("b", 4, 5), 0.0)
    e.step(0.0)
    e.step(1.0)
    assert e.pool.num_free() == 60
    assert e.abort("a") and e.pool.num_free() == 62 and e.B == 1
    assert e.abort("b") and e.pool.num_free() == 64 and e.B == 0 and not e.has_work


@pytest.mark.parametrize("caching", [True, False])
def test_preempted_request_readmitted_at_the_next_step(caching) -> None:
    """2 blocks of 4. a (4 in / 2 out) and b (4 in / 4 out) prefill in [0,1] (no block
    free). At 1 both need a 2nd block → b is preempted (with prefix caching its full block
    stays cached, then a's 2nd block evicts it). a's last token at 2 frees both blocks; at
    2 b recomputes its 4 + 1 tokens from scratch (nothing cached left: 2 blocks), its 2nd
    token at 3, then 4 and 5 (context 7: still 2 blocks) → b ends at 5."""
    e = _eng(num_kv_blocks=2, enable_prefix_caching=caching)
    e.add(_req("a", 4, 2), 0.0)
    e.add(_req("b", 4, 4), 0.0)
    fin, t = {}, 0.0
    while e.has_work:
        out = e.step(t)
        t += out.duration_s
        fin.update((rid, t) for rid in out.finished)
    assert fin == {"a": 2.0, "b": 5.0} and e.num_preempted == 1
    assert e.pool.num_free() == 2


def test_two_preempted_requests_keep_their_own_blocks() -> None:
    """3 blocks of 4. a (4 in / 6 out), c1, c2 (4 in / 4 out) prefill in [0,1] (all 3
    blocks). At 1 all three need a 2nd block, none free: c2 (newest) is preempted, then
    c1; their full blocks stay cached (each under its own hash) and a's block evicts the
    least recently freed one, c2's. At 2 c1 (4 + 1 tokens) finds only its own block
    cached: 1 hit, 1 more block needed, none free → nothing runs but a's decode.
    c2's block must not pass for c1's (different tokens)."""
    e = _eng(num_kv_blocks=3)
    for rid, n_out in (("a", 6), ("c1", 4), ("c2", 4)):
        e.add(_req(rid, 4, n_out), 0.0)
    e.step(0.0)
    assert e.step(1.0).preempted == ["c2", "c1"]
    assert len(e.pool.evictable) == 1 and e.pool.free_uncached == 0
    e.begin(2.0, 1)
    assert e.p_chunks == [] and _queued(e) == ["c1", "c2"]
