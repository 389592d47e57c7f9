"""The scheduler's side of the KV tier policies (sim/tier_sched.py): the ``cost`` read side
at admission, prefetch landing, the start of a prefetch and the release of requests held
for their prefetch. Every expected value is worked out in the comments from the cost model
of sim/tiering.py's docstring:

- loading ``n`` blocks from tier i costs ``latency_i + n · s_per_block_i``;
- the read side loads the first ``j`` tier blocks (j checked at 0, at tier changes, at m
  and at the landed count) with the largest ``recompute(j) − restore(j)``, where
  ``recompute(j) = T(chunk L − h·bs at context h·bs) − T(chunk L − (h+j)·bs at context
  (h+j)·bs)`` at the batch's decoders B and context sum C;
- a prefetch starts when the channel is free, its data starts after the slowest tier's
  latency and lands linearly: ``floor((min(t, deadline) − t_data) / s_per_block)`` blocks
  by time t.

Tiers of every test here (read_bytes_per_s = 1, so s_per_block = block_bytes):
A (tier 0): 0.1 s per block, 0.01 s latency; B (tier 1): 0.5 s per block, 0.2 s latency.
Block size 4 tokens.
"""

from __future__ import annotations

import math

import pytest

from servelab.catalog import RequestSpec
from servelab.perf.deployment import StepBatch
from servelab.sim import AffineStepModel, ConstantStepModel, KVPolicy, KVTier, ReplicaEngine, SchedulerConfig
from servelab.sim.request import ABORTED, WAITING, SimRequest

_A = KVTier(name="A", blocks=16, block_bytes=0.1, latency_s=0.01)
_B = KVTier(name="B", blocks=16, block_bytes=0.5, latency_s=0.2)


def _engine(policy: str = "cost", model=None, tiers=(_A, _B), **pol) -> ReplicaEngine:
    sched = {k: pol.pop(k) for k in ("enable_prefix_caching", "scheduling_policy") if k in pol}
    s = SchedulerConfig(block_size=4, num_kv_blocks=32, max_num_batched_tokens=256,
                        kv_tiers=tiers, kv_policy=KVPolicy(policy=policy, **pol), **sched)
    return ReplicaEngine(None, s, step_model=model or ConstantStepModel(step_s=1.0))


class _Recording:
    """A step model that remembers every batch it timed (and times it with ``inner``)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seen: list[StepBatch] = []

    def step_time_s(self, b: StepBatch) -> float:
        self.seen.append(b)
        return self.inner.step_time_s(b)

    def decode_affine(self, n: int) -> tuple[float, float]:
        return self.inner.decode_affine(n)


def _prefill_model(s_per_token: float) -> AffineStepModel:
    """T = 0.01 + s_per_token · chunk tokens: recomputing one 4-token block costs 4·s_per_token."""
    return AffineStepModel(base_s=0.01, per_seq_s=0.0, per_ctx_s=0.0, per_prefill_token_s=s_per_token)


def _req(p_t: float = 0.0, pf=None) -> SimRequest:
    r = SimRequest(RequestSpec(id="r", arrival_s=0.0, input_tokens=33, output_tokens=2), 1)
    r.pf = pf
    return r


# ------------------------------------------------------------------ cost read side
@pytest.mark.parametrize("s_per_token, want_j", [
    # h = 2 HBM blocks, where = [A, A, B, B], L = 33: recompute(j) = 4·s·j.
    # s = 0.075 (0.3 s per block): j=2: 0.6 − (0.01 + 0.2) = 0.39; j=4: 1.2 − (0.21 + 0.2 + 1.0) = −0.21 → 2
    (0.075, 2),
    # s = 0.25 (1 s per block): j=2: 2 − 0.21 = 1.79; j=4: 4 − 1.41 = 2.59 → 4 (load all)
    (0.25, 4),
    # s = 0.0125 (0.05 s per block): j=2: 0.1 − 0.21 < 0; j=4: 0.2 − 1.41 < 0 → 0 (recompute all)
    (0.0125, 0),
])
def test_cost_read_side_loads_the_paying_prefix_and_gives_the_rest_back(s_per_token, want_j) -> None:
    e = _engine(model=_prefill_model(s_per_token))
    where, loaded = [0, 0, 1, 1], [11, 12, 13, 14]      # taken out of their tiers by the caller
    w, ld, landed = e._policy_restore(_req(), 2, where, loaded, 33)
    assert (w, ld, landed) == (where[:want_j], loaded[:want_j], 0)
    # the blocks not loaded go back to the tier they came from (their tier's MRU end)
    assert list(e.pool.tiers[0]) == [h for h, i in zip(loaded[want_j:], where[want_j:]) if i == 0]
    assert list(e.pool.tiers[1]) == [h for h, i in zip(loaded[want_j:], where[want_j:]) if i == 1]


def test_cost_read_side_times_the_documented_batches() -> None:
    """h = 2, L = 33, B = 3 decoders over C = 40 tokens, where = [A, A, B, B]: the base is
    T(chunk 33 − 8 at context 8); the candidates are j = 2 (tier change) and j = 4 (= m):
    chunks 33 − 16 at 16 and 33 − 24 at 24, each with the batch's B and C."""
    rec = _Recording(_prefill_model(0.075))
    e = _engine(model=rec)
    e.B, e.C = 3, 40
    rec.seen.clear()                                    # drop the write-side reference steps
    e._policy_restore(_req(), 2, [0, 0, 1, 1], [11, 12, 13, 14], 33)
    assert rec.seen == [StepBatch(((25, 8),), 3, 40), StepBatch(((17, 16),), 3, 40),
                        StepBatch(((9, 24),), 3, 40)]


@pytest.mark.parametrize("B, C, per_seq, per_ctx, want_j", [
    # decode terms are in both T's and cancel: 0.3 s per block recomputed, j = 2 as above,
    # whatever B and C (a base without them, or a candidate without them, would shift every
    # gain by ±(per_seq·B + per_ctx·C) = ±0.5 and flip the choice to 0 or 4)
    (2, 1000, 0.05, 4e-4, 2),
    (0, 0, 0.0, 0.0, 2),
])
def test_cost_read_side_decode_terms_cancel(B, C, per_seq, per_ctx, want_j) -> None:
    m = AffineStepModel(base_s=0.01, per_seq_s=per_seq, per_ctx_s=per_ctx, per_prefill_token_s=0.075)
    e = _engine(model=m)
    e.B, e.C = B, C
    w, _ld, _l = e._policy_restore(_req(), 2, [0, 0, 1, 1], [11, 12, 13, 14], 33)
    assert len(w) == want_j


def test_cost_read_side_with_context_cost() -> None:
    """T = 0.01 + 1e-3·chunk·context (no per-token term), h = 0, L = 33, where = [B, B, B, B]
    (one candidate, j = 4): recompute(4) = T(33 at 0) − T(17 at 16) = 0 − 1e-3·17·16 < 0 →
    nothing pays: j = 0. A chunk computed as L + h·bs, or a context of (h − j)·bs, would not
    give this sign; with h = 2 (base 25 at 8 = 0.2; j=4: 9 at 24 = 0.216): also 0."""
    m = AffineStepModel(base_s=0.01, per_seq_s=0.0, per_ctx_s=0.0, per_prefill_token_s=0.0,
                        per_prefill_ctx_s=1e-3)
    e = _engine(model=m)
    assert e._policy_restore(_req(), 0, [1, 1, 1, 1], [11, 12, 13, 14], 33)[0] == []
    assert list(e.pool.tiers[1]) == [11, 12, 13, 14]


def test_cost_read_side_counts_prefetched_blocks_at_tier0_rate() -> None:
    """Prefetch (t_data 0, 0.5 s per block, 2 blocks) admitted at t = 1: floor(1/0.5) = 2
    landed. With 0.3 s per block recomputed: j=2: 0.6 − 0.21 = 0.39; j=4: the two B blocks
    load at A's rate: 1.2 − (0.01 + 4·0.1) = 0.79 → 4, and both landed blocks count."""
    e = _engine(model=_prefill_model(0.075))
    e.p_t = 1.0
    w, ld, landed = e._policy_restore(_req(pf=(0.0, 0.5, 2, math.inf)), 2, [0, 0, 1, 1], [11, 12, 13, 14], 33)
    assert (w, ld, landed) == ([0, 0, 1, 1], [11, 12, 13, 14], 2)


def test_cost_read_side_clips_landed_to_the_tier_blocks_it_loads() -> None:
    """2 landed, but recomputing is almost free (0.05 s per block): j=2: 0.1 − 0.21 < 0; j=4:
    0.2 − 0.41 < 0 → nothing loaded, so no landed block is used."""
    e = _engine(model=_prefill_model(0.0125))
    e.p_t = 1.0
    w, _ld, landed = e._policy_restore(_req(pf=(0.0, 0.5, 2, math.inf)), 2, [0, 0, 1, 1], [11, 12, 13, 14], 33)
    assert (w, landed) == ([], 0)


# ------------------------------------------------------------------ prefetch landing (no cost side)
@pytest.mark.parametrize("p_t, pf, want", [
    (2.2, (1.0, 0.5, 3, math.inf), 2),      # floor((2.2 − 1.0) / 0.5) = 2
    (9.0, (1.0, 0.5, 3, math.inf), 3),      # floor(16) capped at the 3 blocks prefetched
    (9.0, (1.0, 0.5, 3, 1.6), 1),           # stopped at the deadline: floor(0.6 / 0.5) = 1
    (1.0, (1.0, 0.5, 3, math.inf), 0),      # data only starts at t_data
    (0.5, (1.0, 0.5, 3, math.inf), 0),      # admitted before the data starts
    (1.5, (1.0, 0.0, 3, math.inf), 3),      # a free transfer (0 s per block): all land at once
    (1.0, (1.0, 0.0, 3, math.inf), 3),      # … already at t_data, when that transfer ends
    (2.5, (1.0, 0.5, 3, math.inf), 3),      # at the transfer's end, 1 + 3·0.5: all 3
])
def test_prefetch_landing_by_hand(p_t, pf, want) -> None:
    e = _engine(policy="lru", prefetch=True)
    e.p_t = p_t
    w, _ld, landed = e._policy_restore(_req(pf=pf), 0, [0, 1, 1, 1], [11, 12, 13, 14], 33)
    assert w == [0, 1, 1, 1] and landed == want


def test_landed_is_clipped_to_the_blocks_still_below_tier0() -> None:
    """The prefetch covered 2 blocks, but at admission only one of the loaded blocks is below
    tier 0 (where = [A, B]): one landed block counts, not two."""
    e = _engine(policy="lru", prefetch=True)
    e.p_t = 5.0
    assert e._policy_restore(_req(pf=(0.0, 0.5, 2, math.inf)), 0, [0, 1], [11, 12], 33)[2] == 1


# ------------------------------------------------------------------ prefetch start
def _cache(e: ReplicaEngine, hashes) -> None:
    """Make ``hashes`` cached (refcount 0) HBM blocks."""
    e.pool.allocate(len(hashes))
    for h in hashes:
        assert e.pool.register(h)
    e.pool.release(list(hashes), 0)


def _chain(e: ReplicaEngine, spec: RequestSpec, n: int) -> list[int]:
    return list(e._chain(SimRequest(spec, 99), n))


def _queued(e: ReplicaEngine) -> SimRequest:
    return (e.pf_hold or list(e.waiting_q))[-1]


def test_prefetch_copies_the_tier_part_of_a_conversation_prefix() -> None:
    """Conversation 0, 13 tokens: look = (13 − 1) // 4 = 3 blocks. Block 0 in HBM, 1 in A,
    2 in B: only blocks below the first tier are copied up, n = 1, from B: t_data = 0 + 0.2,
    channel busy until 0.2 + 1·0.5 = 0.7."""
    e = _engine(policy="lru", prefetch=True)
    spec = RequestSpec(id="c", arrival_s=0.0, input_tokens=13, output_tokens=2, conversation=0)
    ch = _chain(e, spec, 3)
    _cache(e, ch[:1])
    e.pool.tiers[0][ch[1]] = None
    e.pool.tiers[1][ch[2]] = None
    assert e.add(spec, 0.0)
    assert _queued(e).pf == (0.2, 0.5, 1, math.inf)
    assert e.pf_free == pytest.approx(0.7)


def test_prefetch_never_looks_at_the_last_block_of_a_prompt() -> None:
    """Prefix group of 12 tokens, prompt 12: look = (12 − 1) // 4 = 2 (the last token is
    always computed), so 2 of the 3 group blocks held in B are prefetched."""
    e = _engine(policy="lru", prefetch=True)
    spec = RequestSpec(id="g", arrival_s=0.0, input_tokens=12, output_tokens=2, prefix_group=0,
                       prefix_tokens=12)
    for h in _chain(e, RequestSpec(id="p", arrival_s=0.0, input_tokens=13, output_tokens=1,
                                   prefix_group=0, prefix_tokens=12), 3):
        e.pool.tiers[1][h] = None
    e.add(spec, 0.0)
    assert _queued(e).pf == (0.2, 0.5, 2, math.inf)


def test_prefetch_needs_prefix_caching() -> None:
    e = _engine(policy="lru", prefetch=True, enable_prefix_caching=False)
    spec = RequestSpec(id="g", arrival_s=0.0, input_tokens=13, output_tokens=2, prefix_group=0,
                       prefix_tokens=12)
    for h in _chain(e, spec, 3):
        e.pool.tiers[1][h] = None
    e.add(spec, 0.0)
    assert _queued(e).pf is None and e.pf_free == 0.0


def test_prefetch_whose_data_would_start_at_the_deadline_does_not_start() -> None:
    """Deadline 0.2 after arrival 0; B's latency puts t_data at 0.2 = stop: nothing would
    land, so no prefetch and the channel stays free. A deadline of 0.7 lets it run:
    stop 0.7, channel busy until min(0.2 + 3·0.5, 0.7) = 0.7."""
    spec = RequestSpec(id="g", arrival_s=0.0, input_tokens=13, output_tokens=2, prefix_group=0,
                       prefix_tokens=12)
    for dl, pf, free in ((0.2, None, 0.0), (0.7, (0.2, 0.5, 3, 0.7), 0.7)):
        e = _engine(policy="lru", prefetch=True, prefetch_deadline_s=dl)
        for h in _chain(e, spec, 3):
            e.pool.tiers[1][h] = None
        e.add(spec, 0.0)
        assert _queued(e).pf == pf and e.pf_free == pytest.approx(free)


def test_prefetch_reads_only_the_prompt_part_of_a_longer_stored_chain() -> None:
    """A group chain of 8 blocks is stored (an earlier 33-token request of the group); a
    13-token request of the group looks at 3 blocks only, all in B: n = 3."""
    e = _engine(policy="lru", prefetch=True)
    long = RequestSpec(id="p", arrival_s=0.0, input_tokens=33, output_tokens=1, prefix_group=0,
                       prefix_tokens=32)
    for h in _chain(e, long, 8):
        e.pool.tiers[1][h] = None
    e.add(RequestSpec(id="g", arrival_s=0.0, input_tokens=13, output_tokens=2, prefix_group=0,
                      prefix_tokens=32), 0.0)
    assert _queued(e).pf == (0.2, 0.5, 3, math.inf)


# ------------------------------------------------------------------ release of held requests
def _held(idx: int, arrival: float, pf, state=WAITING) -> SimRequest:
    r = SimRequest(RequestSpec(id=f"h{idx}", arrival_s=arrival, input_tokens=8, output_tokens=1), idx)
    r.pf = pf
    r.state = state
    return r


def _waiting(idx: int, arrival: float) -> SimRequest:
    return _held(idx, arrival, None)


def test_release_puts_ready_requests_at_their_arrival_place() -> None:
    """Queue: q1 (arrival 1), q2 (2), q3 (3). Held: x (arrival 0.5, ready at 2.0 = now),
    y (arrival 2, ready 1.5), z (arrival 2.5, still running until 3 — deadline 3, data to
    4), an aborted one, w (arrival 9, ready 5). At now = 2: x goes to the front, y after q2
    (same arrival: the one already queued keeps its place), z and w stay held, the aborted
    one is dropped, v (arrival 4, ready 1) goes to the back; the next wake-up is the earliest remaining end, 3. The waiting count
    (held + queued) does not change."""
    e = _engine(policy="lru", prefetch=True, prefetch_wait=True)
    q = [_waiting(1, 1.0), _waiting(2, 2.0), _waiting(3, 3.0)]
    x = _held(4, 0.5, (1.0, 0.5, 2, math.inf))          # ready min(1 + 2·0.5, inf) = 2.0
    y = _held(5, 2.0, (0.5, 0.5, 2, math.inf))          # ready 1.5
    z = _held(6, 2.5, (2.0, 1.0, 2, 3.0))               # ready min(4, 3) = 3
    gone = _held(7, 0.1, (0.0, 0.1, 1, math.inf), state=ABORTED)
    w = _held(8, 9.0, (4.0, 1.0, 1, math.inf))          # ready 5
    v = _held(9, 4.0, (0.5, 0.5, 1, math.inf))          # ready 1
    e.waiting_q.extend(q)
    e.pf_hold = [gone, x, z, w, y, v]
    e.num_waiting = 8
    e._pf_release(2.0)
    assert [r.rid for r in e.waiting_q] == ["h4", "h1", "h2", "h5", "h3", "h9"]
    assert e.pf_hold == [z, w] and e.wake_s == 3.0
    assert e.num_waiting == 8


def test_release_keeps_the_earliest_wake_up() -> None:
    """Held until 3 and until 5 (in that order), none ready at 1: wake at 3, not 5."""
    e = _engine(policy="lru", prefetch=True, prefetch_wait=True)
    e.pf_hold = [_held(1, 0.0, (1.0, 1.0, 2, math.inf)), _held(2, 0.0, (1.0, 2.0, 2, math.inf))]
    e.num_waiting = 2
    e._pf_release(1.0)
    assert e.wake_s == 3.0 and len(e.pf_hold) == 2 and e.num_waiting == 2


def test_release_under_priority_scheduling() -> None:
    """Priority queue: a released request is pushed by (priority, arrival) like any other;
    the waiting count does not change. Queue holds p (priority 1, arrival 0); the released
    r has priority 0: it comes first."""
    e = _engine(policy="lru", prefetch=True, prefetch_wait=True, scheduling_policy="priority")
    p = SimRequest(RequestSpec(id="p", arrival_s=0.0, input_tokens=8, output_tokens=1, priority=1), 1)
    e._wpush(p, front=False)
    r = SimRequest(RequestSpec(id="r", arrival_s=1.0, input_tokens=8, output_tokens=1, priority=0), 2)
    r.pf = (1.0, 0.5, 2, math.inf)                    # ready at 2
    e.pf_hold = [r]
    e.num_waiting += 1
    e._pf_release(2.0)
    assert e.num_waiting == 2 and e.pf_hold == [] and e.wake_s is None
    assert e._wpeek() is r
    e._wpop()
    assert e._wpeek() is p


# ------------------------------------------------------------------ whole admission with a held prefetch
@pytest.mark.parametrize("lat, per", [(0.5, 0.1), (0.5, 0.0)])
def test_request_held_until_its_prefetch_ends_gets_every_block_landed(lat, per) -> None:
    """One block of a prefix group in B (latency ``lat``, ``per`` s per block). Held from 0
    until its prefetch ends at lat + 1·per; admitted then, that block has landed (the whole
    transfer is over): it loads at A's rate and counts as one prefetched block. (Computing
    it as floor((t − t_data)/per) gave 0: (0.6 − 0.5)/0.1 = 0.9999… in floats, and per = 0
    at t = t_data counted nothing.)"""
    b = KVTier(name="B", blocks=16, block_bytes=per, latency_s=lat)
    e = _engine(policy="lru", tiers=(_A, b), prefetch=True, prefetch_wait=True)
    spec = RequestSpec(id="g", arrival_s=0.0, input_tokens=5, output_tokens=2, prefix_group=0,
                       prefix_tokens=4)
    for h in _chain(e, spec, 1):
        e.pool.tiers[1][h] = None
    e.add(spec, 0.0)
    assert e.wake_s == lat + per
    end = e.begin(e.wake_s)
    assert e.stats()["kv_prefetched_blocks"] == 1
    # 1 s step + A's load of one block (0.01 + 0.1)
    assert end - (lat + per) == pytest.approx(1.0 + 0.11)
