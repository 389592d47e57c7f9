"""Routing, autoscaling, speculative decoding, priority preemption and the LM head,
each against an independent reference: a naive re-implementation of the documented
rule, or a closed form worked out by hand from the model's dimensions and datasheet
peaks. None compares the code with its own output.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

import pytest

from servelab.catalog import RequestSpec, get_gpu, get_model
from servelab.perf import Deployment, StepModel
from servelab.perf.deployment import StepBatch
from servelab.sim import (
    AdmissionConfig,
    AffineStepModel,
    AutoscalerConfig,
    ConstantStepModel,
    SchedulerConfig,
    ReplicaEngine,
    ReplicaSpec,
    SimConfig,
    simulate,
)
from servelab.sim.router import Router


# ----------------------------------------------------------------------------- routers
@dataclass
class _Pool:
    used: int
    num_blocks: int = 100

    def usage(self) -> float:
        return self.used / self.num_blocks


@dataclass
class _Engine:
    pool: _Pool
    load: int
    bs: int = 16

    def outstanding(self) -> int:
        return self.load


@dataclass
class _Rep:
    name: str
    engine: _Engine


def _reps(used: list[int], loads: list[int]) -> list[_Rep]:
    return [_Rep(f"rep{i}", _Engine(_Pool(u), n)) for i, (u, n) in enumerate(zip(used, loads))]


_SPEC = RequestSpec(id="x", arrival_s=0.0, input_tokens=64, output_tokens=4)


@pytest.mark.parametrize("used, loads, want", [
    ([60, 10, 30], [0, 9, 1], 1),          # lowest KV usage wins, whatever the load
    ([20, 20, 50], [5, 2, 0], 1),          # usage tie: fewest outstanding
    ([20, 20, 20], [3, 3, 3], 0),          # full tie: lowest index
    ([90, 5], [0, 40], 1),
])
def test_least_kv_picks_lowest_kv_usage(used, loads, want) -> None:
    assert Router("least_kv", {}).pick(_SPEC, _reps(used, loads)) == want


def test_least_kv_matches_a_naive_argmin() -> None:
    rng = random.Random(7)
    router = Router("least_kv", {})
    for _ in range(300):
        n = rng.randint(2, 6)
        used = [rng.randint(0, 5) * 10 for _ in range(n)]
        loads = [rng.randint(0, 4) for _ in range(n)]
        want = sorted(range(n), key=lambda i: (used[i], loads[i], i))[0]
        assert router.pick(_SPEC, _reps(used, loads)) == want, (used, loads)


def test_least_kv_in_the_fleet_follows_kv_not_request_count() -> None:
    # r0 (a 960-token prompt, 60 blocks) lands on replica-0 (tie: lowest index); r1 (16
    # tokens) on replica-1 (less KV). r2 finds one request on each (least_outstanding
    # would tie and choose replica-0) but replica-1 holds 2 blocks against 61: replica-1.
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=1000),
                       step_model=ConstantStepModel(step_s=1.0), count=2)
    reqs = [RequestSpec(id="r0", arrival_s=0.0, input_tokens=960, output_tokens=50),
            RequestSpec(id="r1", arrival_s=0.1, input_tokens=16, output_tokens=50),
            RequestSpec(id="r2", arrival_s=5.0, input_tokens=16, output_tokens=5)]
    res = simulate(SimConfig(replicas=(spec,), router="least_kv"), reqs)
    assert [r.replica for r in res.records] == ["replica-0", "replica-1", "replica-1"]
    res = simulate(SimConfig(replicas=(spec,), router="least_outstanding"), reqs)
    assert [r.replica for r in res.records] == ["replica-0", "replica-1", "replica-0"]


def _prefix_reps(loads: list[int]) -> list[_Rep]:
    return [_Rep(f"rep{i}", _Engine(_Pool(0, num_blocks=10_000), n)) for i, n in enumerate(loads)]


_GROUP = RequestSpec(id="g", arrival_s=0.0, input_tokens=64, output_tokens=4, prefix_group=1, prefix_tokens=48)


def _warm_router(n: int, on: int) -> Router:
    """A prefix router whose view has group 1's 48-token prefix (3 blocks) on replica ``on``."""
    router = Router("prefix", {})
    loads = [0] * n
    loads[0 if on else 1] = 1           # route the warm-up to ``on``: the other is busier
    if n > 2:
        loads[2:] = [1] * (n - 2)
    assert router.pick(_GROUP, _prefix_reps(loads)) == on
    return router


@pytest.mark.parametrize("loads, want", [
    ([40, 3], 1),                 # 40 − 3 = 37 > 32 and 40 > 1.0001·3: imbalanced → least loaded
    ([35, 3], 0),                 # 35 − 3 = 32, not > 32: balanced → the cache match
    ([35, 2], 1),                 # 33 > 32: imbalanced
    ([400_033, 400_000], 0),      # 33 > 32 but 400,033 < 1.0001·400,000 = 400,040: balanced
    ([400_041, 400_000], 1),      # both thresholds exceeded
    ([33, 0], 1),                 # an idle replica: 33 > 0 = 1.0001·0
])
def test_prefix_router_balances_load_by_sglang_thresholds(loads, want) -> None:
    router = _warm_router(2, on=0)
    assert router.pick(_GROUP, _prefix_reps(loads)) == want


def test_prefix_router_imbalance_goes_to_the_least_loaded_of_many() -> None:
    router = _warm_router(3, on=0)
    assert router.pick(_GROUP, _prefix_reps([50, 10, 5])) == 2


def test_prefix_router_spills_a_hot_group_after_32_outstanding() -> None:
    # 100 requests of one prefix group arrive within 0.1 s; one replica serves 1 per s.
    # Each joins replica-0 (cache match) until its load exceeds replica-1's by more than
    # 32: request 33 sees loads 33 vs 0 and goes to replica-1; from then on the match is
    # on both and the less loaded one wins (ties: lowest index), so the split is 50/50.
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=10_000, max_num_seqs=1),
                       step_model=ConstantStepModel(step_s=1.0), count=2)
    reqs = [RequestSpec(id=f"r{i}", arrival_s=0.001 * i, input_tokens=64, output_tokens=1,
                        prefix_group=1, prefix_tokens=48) for i in range(100)]
    res = simulate(SimConfig(replicas=(spec,), router="prefix"), reqs)
    where = [r.replica for r in res.records]
    assert where[:33] == ["replica-0"] * 33 and where[33] == "replica-1"
    assert Counter(where) == {"replica-0": 50, "replica-1": 50}


# ----------------------------------------------------------------------------- autoscaler
def test_autoscaler_on_kv_usage_follows_the_hpa_rule_by_hand() -> None:
    # One replica of 200 KV blocks (16 tokens each), 5 requests of 160-token prompts at
    # t=0, 1 s per step. Prefill [0, 1]; decode steps end at 2, 3, …, 40. At the poll at
    # t = 40.5 each sequence holds 160 prompt tokens + the KV of 39 decoded tokens + the
    # slot of the step in flight = 200 tokens = 13 blocks: usage 65/200 = 0.325.
    # HPA: desired = ceil(1 · 0.325 / 0.1) = 4 → three replicas added at 40.5.
    # (Usage at the start of the decode stretch, 161 tokens = 11 blocks, would give 3;
    # "waiting" (0) no scaling; "running" (5) the maximum, 8.)
    a = AutoscalerConfig(metric="kv_usage", target=0.1, poll_interval_s=40.5, cooldown_s=1000.0,
                         min_replicas=1, max_replicas=8)
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=200), step_model=ConstantStepModel(step_s=1.0))
    reqs = [RequestSpec(id=f"r{i}", arrival_s=0.0, input_tokens=160, output_tokens=100) for i in range(5)]
    for exact in (False, True):
        res = simulate(SimConfig(replicas=(spec,), autoscaler=a, exact=exact), reqs)
        ups = [e for e in res.events if e[1] == "scale_up"]
        assert [e[0] for e in ups] == pytest.approx([40.5] * 3), (exact, res.events)


def test_autoscaler_on_kv_usage_scales_down_an_idle_fleet() -> None:
    # Three replicas, nothing running at the first poll: usage 0 → desired = max(min, 0) = 1.
    a = AutoscalerConfig(metric="kv_usage", target=0.5, poll_interval_s=2.0, cooldown_s=0.0,
                         min_replicas=1, max_replicas=3)
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=200), step_model=ConstantStepModel(step_s=1.0),
                       count=3)
    res = simulate(SimConfig(replicas=(spec,), autoscaler=a),
                   [RequestSpec(id="late", arrival_s=50.0, input_tokens=16, output_tokens=1)])
    assert [e[0] for e in res.events if e[1] == "scale_down"] == pytest.approx([2.0, 2.0])


# ----------------------------------------------------------------------------- speculative decoding
_BASE, _PER_SEQ, _PER_CTX, _PER_TOK = 0.01, 1e-3, 1e-6, 5e-5
_K, _ALPHA, _DRAFT = 3, 0.6, 0.5


def _spec_closed_form(B: int, inp: int, out: int) -> tuple[float, float]:
    """(first token, finish) of B identical requests prefilled in one step.

    Verification step: the target model runs B·(k+1) rows (fixed part
    base + per_seq·B·(k+1)) and reads each sequence's KV once (per_ctx·C); the k draft
    steps cost draft·(base + per_seq·B) each. Per accepted token, divided by
    E = (1 − α^(k+1))/(1 − α) (2.176 for k = 3, α = 0.6). Decode step j (0-based) sees
    context C = B·inp + B·j; out − 1 tokens after the first.
    """
    e = (1 - _ALPHA ** (_K + 1)) / (1 - _ALPHA)
    assert e == pytest.approx(2.176)
    t0 = (_BASE + _PER_SEQ * B * (_K + 1) + _K * _DRAFT * (_BASE + _PER_SEQ * B)) / e
    t1 = _PER_CTX / e
    prefill = _BASE + B * inp * _PER_TOK
    decode = sum(t0 + t1 * (B * inp + B * j) for j in range(out - 1))
    return prefill, prefill + decode


def _spec_cfg() -> tuple[SchedulerConfig, AffineStepModel]:
    model = AffineStepModel(base_s=_BASE, per_seq_s=_PER_SEQ, per_ctx_s=_PER_CTX, per_prefill_token_s=_PER_TOK)
    cfg = SchedulerConfig(num_kv_blocks=1000, num_speculative_tokens=_K, spec_acceptance_rate=_ALPHA,
                       spec_draft_cost=_DRAFT)
    return cfg, model


@pytest.mark.parametrize("exact", [False, True])
def test_speculative_decoding_cost_closed_form_one_sequence(exact: bool) -> None:
    cfg, model = _spec_cfg()
    first, finish = _spec_closed_form(1, 16, 101)
    res = simulate(SimConfig(replicas=(ReplicaSpec(scheduler=cfg, step_model=model),), exact=exact),
                   [RequestSpec(id="s", arrival_s=0.0, input_tokens=16, output_tokens=101)])
    (r,) = res.records
    assert r.first_token_s == pytest.approx(first, rel=1e-12)
    assert r.finish_s == pytest.approx(finish, rel=1e-9)


@pytest.mark.parametrize("exact", [False, True])
def test_speculative_decoding_cost_closed_form_batch(exact: bool) -> None:
    cfg, model = _spec_cfg()
    B, inp, out = 3, 16, 101
    first, finish = _spec_closed_form(B, inp, out)
    eng = ReplicaEngine(None, cfg, step_model=model, exact=exact)
    for i in range(B):
        eng.add(RequestSpec(id=f"s{i}", arrival_s=0.0, input_tokens=inp, output_tokens=out), 0.0)
    t, done = 0.0, {}
    while eng.has_work:
        o = eng.step(t)
        t += o.duration_s
        if t == pytest.approx(first, rel=1e-12):
            assert sorted(rid for rid, _ in o.tokens) == ["s0", "s1", "s2"]
        for rid in o.finished:
            done[rid] = t
    assert done == pytest.approx({f"s{i}": finish for i in range(B)}, rel=1e-9)


# ----------------------------------------------------------------------------- priority preemption
def _prio_engine(max_num_seqs: int) -> ReplicaEngine:
    return ReplicaEngine(None, SchedulerConfig(num_kv_blocks=1000, max_num_seqs=max_num_seqs,
                                            scheduling_policy="priority"),
                         step_model=ConstantStepModel(step_s=1.0), priority_preemption=True)


@pytest.mark.parametrize("prios, victim", [
    ((1, 2, 1), "b"),        # the lowest priority (largest value) goes, though "c" is newer
    ((2, 2, 1), "b"),        # lowest priority tie: the newest of them
    ((3, 1, 1), "a"),        # the oldest, being the lowest priority
    ((1, 1, 1), "c"),        # all equal: the newest
])
def test_priority_preemption_evicts_lowest_priority_newest(prios, victim) -> None:
    eng = _prio_engine(3)
    t = 0.0
    for rid, p in zip("abc", prios):       # admitted one per step, so a < b < c in age
        eng.add(RequestSpec(id=rid, arrival_s=t, input_tokens=16, output_tokens=50, priority=p), t)
        t += eng.step(t).duration_s
    # a request more urgent than all of them arrives: the batch is full → one victim
    eng.add(RequestSpec(id="urgent", arrival_s=t, input_tokens=16, output_tokens=5, priority=0), t)
    out = eng.step(t)
    assert out.preempted == [victim]
    assert ("urgent", t) in out.started


@pytest.mark.parametrize("prios, victim", [
    ((1, 1, 2), "c"),        # the prefilling one is the lowest priority
    ((2, 1, 1), "a"),        # a decoding one is, though the prefilling one is newer
    ((1, 1, 1), "c"),        # all equal: the newest, still prefilling
])
def test_priority_victim_among_prefilling_and_decoding(prios, victim) -> None:
    # a, b decode; c has a 1000-token prompt, prefilled 64 tokens a step (token budget)
    eng = ReplicaEngine(None, SchedulerConfig(num_kv_blocks=1000, max_num_seqs=3, max_num_batched_tokens=64,
                                           scheduling_policy="priority"),
                        step_model=ConstantStepModel(step_s=1.0), priority_preemption=True)
    t = 0.0
    for rid, p, n in zip("abc", prios, (16, 16, 1000)):
        eng.add(RequestSpec(id=rid, arrival_s=t, input_tokens=n, output_tokens=50, priority=p), t)
        t += eng.step(t).duration_s
    assert eng.stats()["running"] == 3 and eng.B == 2          # c is still prefilling
    eng.add(RequestSpec(id="urgent", arrival_s=t, input_tokens=16, output_tokens=5, priority=0), t)
    assert eng.step(t).preempted == [victim]


def test_priority_preemption_never_evicts_equal_or_more_urgent() -> None:
    eng = _prio_engine(2)
    t = 0.0
    for rid in "ab":
        eng.add(RequestSpec(id=rid, arrival_s=t, input_tokens=16, output_tokens=50, priority=1), t)
        t += eng.step(t).duration_s
    eng.add(RequestSpec(id="same", arrival_s=t, input_tokens=16, output_tokens=5, priority=1), t)
    assert eng.step(t).preempted == []


# ----------------------------------------------------------------------------- LM head
def test_lm_head_runs_once_per_sequence_not_per_prefill_token() -> None:
    """Llama-3.1-8B on H100 SXM, bf16, default efficiencies (compute 0.65, memory 0.7,
    attention 0.5 / 0.7). By hand (h = 4096, V = 128,256, L = 32, 32 heads of 128):

    * a pure decode step of n rows: linear(n) + lm_head(n) (= ``decode_affine(n)[0]``);
    * one prefill chunk of n tokens from an empty cache: linear(n) + lm_head(1) + attn(n);
    * lm_head(R) = max(2·R·h·V / (0.65·989.4e12), (2·h·V + R·(2h + 4V)) / (0.7·3.35e12));
    * attn(n) = L · max(n(n+1)/2 · 4·32·128 / (0.5·989.4e12), n · 2·8·128·2 B / (0.7·3.35e12))
      (causal query-key pairs; K and V of 8 KV heads of 128 in bf16 read once);

    so prefill − decode_affine(n)[0] = lm_head(1) − lm_head(n) + attn(n).
    """
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))
    assert dep.efficiency.seq_overhead_s == 0.0 and dep.tp == 1
    sm = StepModel(dep)
    h, V, L, heads, d, kv_heads = 4096, 128_256, 32, 32, 128, 8
    P, BW = 0.65 * 989.4e12, 0.7 * 3.35e12
    P_attn, BW_attn = 0.5 * 989.4e12, 0.7 * 3.35e12

    def lm_head(rows: int) -> float:
        return max(2 * rows * h * V / P, (2 * h * V + rows * (2 * h + 4 * V)) / BW)

    def attn(n: int) -> float:
        pairs = n * (n + 1) / 2
        flops = pairs * 4 * heads * d
        kv_bytes = n * 2 * kv_heads * d * 2            # K and V, bf16, per layer
        return L * max(flops / P_attn, kv_bytes / BW_attn)

    for n in (1, 512, 4096):
        prefill = sm.step_time_s(StepBatch(((n, 0),), 0, 0))
        decode0 = sm.decode_affine(n)[0]
        want = lm_head(1) - lm_head(n) + attn(n)
        assert prefill - decode0 == pytest.approx(want, rel=1e-9, abs=1e-12), n
    # the LM head of a 4096-token prompt is one row, memory-bound: 1.05 GB of weights at
    # 2.345 TB/s ≈ 0.45 ms; over every prompt token it would be 4.3 TFLOP ≈ 6.7 ms
    assert lm_head(1) == pytest.approx((2 * h * V + 2 * h + 4 * V) / BW)
    assert 4.4e-4 < lm_head(1) < 4.6e-4 and 6.6e-3 < lm_head(4096) < 6.8e-3


# ----------------------------------------------------------------------------- router details
def test_round_robin_visits_replicas_in_order() -> None:
    router = Router("round_robin", {})
    reps = _reps([0, 0, 0], [0, 0, 0])
    assert [router.pick(_SPEC, reps) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_shared_chain_of_conversation_zero_and_of_a_group() -> None:
    from servelab.sim.router import shared_chain

    chains: dict = {}
    conv = RequestSpec(id="c", arrival_s=0.0, input_tokens=40, output_tokens=1, conversation=0)
    assert len(shared_chain(conv, 16, chains)) == 2           # the whole history: 40 // 16 blocks
    grp = RequestSpec(id="g", arrival_s=0.0, input_tokens=100, output_tokens=1, prefix_group=0,
                      prefix_tokens=40)
    assert len(shared_chain(grp, 16, chains)) == 2            # the shared prefix only: 40 // 16
    assert shared_chain(_SPEC, 16, chains) == []              # shares nothing


def test_prefix_router_considers_every_replica_with_a_view() -> None:
    # replica 0 has seen nothing; replica 1 holds the group: the match wins
    router = _warm_router(2, on=1)
    assert router.pick(_GROUP, _prefix_reps([0, 5])) == 1


def test_prefix_router_counts_matched_blocks_from_zero() -> None:
    # group 1 (3 blocks) is on replica 0; a request of group 2 (one 16-token block of a
    # 24-token prompt) matches nothing: the replica with the smallest view (1) gets it
    router = _warm_router(2, on=0)
    other = RequestSpec(id="o", arrival_s=0.0, input_tokens=24, output_tokens=1, prefix_group=2,
                        prefix_tokens=16)
    assert router.pick(other, _prefix_reps([0, 0])) == 1


def test_prefix_router_one_block_match_is_a_match() -> None:
    # a one-block (16-token) prefix of a 24-token prompt: 16 > 0.5·24 → the match wins
    router = Router("prefix", {})
    short = RequestSpec(id="s", arrival_s=0.0, input_tokens=24, output_tokens=1, prefix_group=3,
                        prefix_tokens=16)
    assert router.pick(short, _prefix_reps([1, 0])) == 1      # no view yet: smallest view, least load
    assert router.pick(short, _prefix_reps([0, 0])) == 1      # now replica 1 holds the block


def test_prefix_router_match_must_exceed_half_the_prompt() -> None:
    # a 32-token (2-block) prefix of a 64-token prompt: 32 is not > 0.5·64 → no cache hit;
    # the replica with the smallest view (the other one) gets it
    router = Router("prefix", {})
    half = RequestSpec(id="h", arrival_s=0.0, input_tokens=64, output_tokens=1, prefix_group=4,
                       prefix_tokens=32)
    assert router.pick(half, _prefix_reps([0, 1])) == 0
    assert router.pick(half, _prefix_reps([0, 0])) == 1


def test_prefix_router_view_is_lru_bounded_by_kv_blocks() -> None:
    # replica 0 has room for 4 blocks: group A (3 blocks) then group B (3 blocks) leave
    # the 4 most recent (A's last, B's three); A's chain breaks at its first block, so a
    # later A request matches nothing there and goes to the replica with the smaller view
    router = Router("prefix", {})
    rep0 = _Rep("rep0", _Engine(_Pool(0, num_blocks=4), 0))
    a = RequestSpec(id="a", arrival_s=0.0, input_tokens=64, output_tokens=1, prefix_group=5, prefix_tokens=48)
    b = RequestSpec(id="b", arrival_s=0.0, input_tokens=64, output_tokens=1, prefix_group=6, prefix_tokens=48)
    assert router.pick(a, [rep0]) == 0 and router.pick(b, [rep0]) == 0
    assert len(router.trees["rep0"]) == 4
    rep1 = _Rep("rep1", _Engine(_Pool(0, num_blocks=4), 0))
    assert router.pick(a, [rep0, rep1]) == 1


def test_prefix_router_forgets_a_removed_replica() -> None:
    router = _warm_router(2, on=0)
    router.forget("rep0")
    assert "rep0" not in router.trees
    # no view left anywhere: the smallest view, then the least load
    assert router.pick(_GROUP, _prefix_reps([3, 0])) == 1


def test_shared_chains_of_two_conversations_differ() -> None:
    from servelab.sim.router import shared_chain

    chains: dict = {}
    c1 = RequestSpec(id="1", arrival_s=0.0, input_tokens=48, output_tokens=1, conversation=1)
    c2 = RequestSpec(id="2", arrival_s=0.0, input_tokens=48, output_tokens=1, conversation=2)
    h1, h2 = shared_chain(c1, 16, chains), shared_chain(c2, 16, chains)
    assert len(h1) == len(h2) == 3 and not set(h1) & set(h2)


def test_prefix_router_records_its_view_with_a_single_replica() -> None:
    # a one-replica fleet still builds the view: when a second replica appears, the group
    # stays where its prefix is cached
    router = Router("prefix", {})
    assert router.pick(_GROUP, _prefix_reps([0])) == 0
    assert router.pick(_GROUP, _prefix_reps([1, 0])) == 0
