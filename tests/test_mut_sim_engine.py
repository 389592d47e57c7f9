"""One replica's engine (sim/engine.py): sizing from a deployment, decode stretches against
the step-by-step reference, the stretch time closed form, truncation, the KV-limited
stretch length and the gauges.

References: the step-by-step engine (``exact=True``, one ``step_time_s`` call per step) is
the documented reference for event skipping; stretch times are the closed form of the
module docstring, ``t_j = p_t + j·t0 + t1·(j·C + B·j(j−1)/2)``, worked by hand; the
stretch's KV limit is checked against a linear search over the blocks the decoders need
(``_need``, the count ``commit`` allocates).
"""

from __future__ import annotations

import math
import random

import pytest

from servelab.catalog import RequestSpec
from servelab.catalog.gpus import get_gpu
from servelab.catalog.models import get_model
from servelab.errors import InfeasibleError
from servelab.perf import Deployment, StepBatch, StepModel, memory_budget
from servelab.sim import AffineStepModel, ConstantStepModel, KVTier, ReplicaEngine, SchedulerConfig

_ONE = ConstantStepModel(step_s=1.0)
# t0(B) = 0.1 + 0.01·B, t1 = 0.001 per context token; prefill 0.01 s per token
_AFF = AffineStepModel(base_s=0.1, per_seq_s=0.01, per_ctx_s=0.001, per_prefill_token_s=0.01)


def _cfg(**kw) -> SchedulerConfig:
    return SchedulerConfig(**{"block_size": 4, "num_kv_blocks": 64, "max_num_batched_tokens": 64,
                              "max_num_seqs": 8, **kw})


def _req(rid, t, n_in, n_out, **kw) -> RequestSpec:
    return RequestSpec(id=rid, arrival_s=t, input_tokens=n_in, output_tokens=n_out, **kw)


# ------------------------------------------------------------------ construction
def test_kv_blocks_and_step_model_from_the_deployment() -> None:
    """num_kv_blocks None: the KV room of perf.memory_budget, cut into the scheduler's
    blocks. Llama-3.1-8B on one H100: 25459 blocks of 16 tokens = 407344 tokens; in blocks
    of 32 tokens that is floor(12729.5) = 12729. The step model defaults to the perf
    model of the same deployment."""
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))
    b = memory_budget(dep)
    assert b.kv_capacity_tokens == 25459 * 16
    e = ReplicaEngine(dep, SchedulerConfig(block_size=32))
    assert e.pool.num_blocks == 12729
    batch = StepBatch(((100, 0),), 3, 300)
    assert e.model.step_time_s(batch) == StepModel(dep).step_time_s(batch)


def test_infeasible_deployment_says_why() -> None:
    """Llama-3.1-70B's bf16 weights (141 GB) do not fit one 80 GB H100."""
    dep = Deployment(model=get_model("llama-3.1-70b"), gpu=get_gpu("h100-sxm"))
    with pytest.raises(InfeasibleError, match="weights need 141.1 GB per GPU at TP1"):
        ReplicaEngine(dep, SchedulerConfig(), step_model=_ONE)


def test_defaults_and_shared_chains() -> None:
    """Token times are recorded only on request; a chains dict given by the fleet is the one
    the replica fills (replicas of a fleet share prefix-group chains)."""
    chains: dict = {}
    e = ReplicaEngine(None, _cfg(), step_model=_ONE, chains=chains)
    e.add(_req("g", 0.0, 9, 1, prefix_group=3, prefix_tokens=8), 0.0)
    assert e.waiting_q[0].token_times is None
    e.step(0.0)
    assert ("g", 3) in chains and len(chains[("g", 3)]) == 2      # 8 prefix tokens = 2 blocks
    assert e.chains is chains


def test_idle_engine_has_no_plan() -> None:
    e = ReplicaEngine(None, _cfg(), step_model=_ONE)
    assert e.begin(0.0) is None
    assert e.steps_done(5.0) == 0 and e.truncate(1.0) is None
    assert e.stats(3.0)["kv_usage_perc"] == 0.0


# ------------------------------------------------------------------ stretch times
def test_stretch_end_steps_done_and_truncate_by_hand() -> None:
    """Two decoders after a 1-step prefill (a: 4 in / 20 out, b: 4 in / 20 out, one step
    [0, t_p] with both chunks): t_p = 0.1 + 0.01·8 = 0.18. Then B = 2, C = 2·4 = 8 (the KV
    in cache: each 4 prompt tokens; the first token is written by decode step 1),
    t0 = 0.1 + 0.02 = 0.12, t1 = 0.001: step j ends at t_j = 0.18 + 0.12·j + 0.001·(8·j + j(j−1)).
    The stretch runs to the 19th decode step (both finish there: 1 + 19 = 20 tokens),
    t_19 = 0.18 + 2.28 + 0.001·(152 + 342) = 2.954."""
    e = ReplicaEngine(None, _cfg(), step_model=_AFF)
    e.add(_req("a", 0.0, 4, 20), 0.0)
    e.add(_req("b", 0.0, 4, 20), 0.0)
    t_p = e.begin(0.0)
    assert t_p == pytest.approx(0.18)
    assert e.steps_done(0.17) == 0 and e.steps_done(t_p) == 1
    assert e.truncate(0.1) is None                     # a single step is never cut
    e.commit()

    def t(j):
        return 0.18 + 0.12 * j + 0.001 * (8 * j + j * (j - 1))

    end = e.begin(t_p)
    assert end == pytest.approx(2.954) and e.p_k == 19
    assert e.steps_done(t(3)) == 3 and e.steps_done(t(3) - 1e-9) == 2
    assert e.steps_done(end) == 19
    # cut at a time inside step 8 (t_7 < x < t_8): the stretch ends at t_8
    x = (t(7) + t(8)) / 2
    assert e.truncate(x) == pytest.approx(t(8)) and e.p_k == 8
    # a cut exactly at a step end ends there
    assert e.truncate(t(5)) == pytest.approx(t(5)) and e.p_k == 5
    assert e.truncate(t(5)) is None                    # at (or after) the end: nothing to cut
    assert e.truncate(t(1) - 1e-6) == pytest.approx(t(1)) and e.p_k == 1
    done = e.commit()
    assert done == [] and e.S == 2 and e.C == 8 + 2 * 1


def test_max_steps_bounds_the_stretch() -> None:
    """Constant 1 s steps, one decoder with 9 tokens left: begin(t, 2) plans 2 steps, begin(t, 1)
    one, begin(t) all 9."""
    for max_steps, want in ((2, 2.0), (1, 1.0), (1 << 62, 9.0)):
        e = ReplicaEngine(None, _cfg(), step_model=_ONE)
        e.add(_req("a", 0.0, 4, 10), 0.0)
        e.commit() if e.begin(0.0) else None
        assert e.begin(1.0, max_steps) - 1.0 == want, max_steps


def test_exact_step_records_token_times() -> None:
    """Step-by-step, affine model, record_token_times: a (4 in / 3 out) alone. Prefill
    [0, 0.14] (0.1 + 0.01·4); decode steps with B = 1 over a KV context of 4, then 5:
    0.11 + 0.004 and 0.11 + 0.005. Token times 0.14, 0.254, 0.369."""
    e = ReplicaEngine(None, _cfg(), step_model=_AFF, exact=True, record_token_times=True)
    e.add(_req("a", 0.0, 4, 3), 0.0)
    t, done = 0.0, []
    while (end := e.begin(t)) is not None:
        assert e.steps_done(end - 1e-9) == 0 and e.steps_done(end) == 1
        done += e.commit()
        t = end
    assert done[0].token_times == pytest.approx([0.14, 0.254, 0.369])
    assert done[0].first_token_s == pytest.approx(0.14) and done[0].replica == "replica-0"
    assert done[0].finish_s == pytest.approx(0.369)


# ------------------------------------------------------------------ stretches = step by step
def _drive(specs, cfg, model, skipping: bool):
    """A one-replica fleet loop: arrivals join at the next step boundary (a stretch in
    flight is cut there). Returns per-request (first token, finish, tokens), rejections,
    the KV usage during each step (by its start time) and the preemption count."""
    e = ReplicaEngine(None, cfg, step_model=model, exact=not skipping, record_token_times=True)
    max_steps = 1 << 62 if skipping else 1
    todo = sorted(specs, key=lambda s: s.arrival_s)
    i, t = 0, 0.0
    rejected = set()
    usage = {}
    reqs = {}
    while True:
        while i < len(todo) and todo[i].arrival_s <= t:
            if not e.add(todo[i], t):
                rejected.add(todo[i].id)
            i += 1
        for r in e.all_requests():
            reqs[r.rid] = r
        end = e.begin(t, max_steps)
        if end is None:
            if i == len(todo):
                break
            t = todo[i].arrival_s
            continue
        if i < len(todo) and todo[i].arrival_s < end:
            cut = e.truncate(todo[i].arrival_s)
            end = cut if cut is not None else end
        # KV usage during each step, keyed by the step's start: the reference reads it after
        # begin (the step's blocks are taken then); a stretch reports it for any time inside
        usage[round(t, 6)] = e.stats(t + 1e-9)["kv_usage_perc"]
        for j in range(1, e.p_k):
            b = e._time_at(j)
            usage[round(b, 6)] = e.stats(b + 1e-9)["kv_usage_perc"]
        e.commit()
        t = end
    for rid, r in reqs.items():
        # each accepted request ends with exactly its output tokens, one time per token,
        # the first at first_token_s and the last at finish_s (preempted ones included)
        assert r.outputs == max(1, r.spec.output_tokens) and len(r.token_times) == r.outputs, rid
        assert r.token_times[0] == r.first_token_s and r.token_times[-1] == r.finish_s, rid
        assert r.token_times == sorted(r.token_times) and r.first_token_s > r.arrival_s, rid
    out = {rid: (r.first_token_s, r.finish_s, r.outputs) for rid, r in reqs.items()}
    return out, rejected, usage, e.num_preempted


def _workload(rng: random.Random):
    n = rng.randint(1, 7)
    specs = []
    for k in range(n):
        kw = {"prefix_group": 0, "prefix_tokens": 8} if rng.random() < 0.3 else {}
        specs.append(_req(f"r{k}", round(rng.choice([0.0, 0.0, rng.uniform(0, 3)]), 3),
                          rng.randint(1, 14), rng.randint(1, 12), **kw))
    cfg = _cfg(num_kv_blocks=rng.randint(5, 16), max_num_seqs=rng.randint(1, 4),
               max_num_batched_tokens=rng.choice([8, 16, 64]))
    return specs, cfg


@pytest.mark.parametrize("seed", range(40))
def test_stretches_match_the_step_by_step_engine(seed) -> None:
    """Random tiny workloads (KV tight enough to preempt, prefix sharing, late arrivals):
    first-token and finish times, tokens, rejections and preemptions agree between the
    skipping engine and the step-by-step reference; the KV usage the skipping engine
    reports inside each step of a stretch is the reference's during that step."""
    specs, cfg = _workload(random.Random(seed))
    ref, rej_ref, use_ref, pre_ref = _drive(specs, cfg, _AFF, skipping=False)
    got, rej, use, pre = _drive(specs, cfg, _AFF, skipping=True)
    assert rej == rej_ref and pre == pre_ref
    assert got.keys() == ref.keys()
    for rid, (ft, fin, outs) in ref.items():
        g = got[rid]
        assert g[2] == outs
        assert g[0] == pytest.approx(ft, abs=1e-9) and g[1] == pytest.approx(fin, abs=1e-9), rid
    common = use.keys() & use_ref.keys()
    assert len(common) >= len(use_ref) // 2
    for t in common:
        assert use[t] == pytest.approx(use_ref[t]), t


# ------------------------------------------------------------------ KV-limited stretch length
def _decoders(contexts, num_blocks) -> ReplicaEngine:
    """Engine with one decoder per context (prompts of those lengths, admitted and
    prefilled in one step; each asks for as many tokens as fit the replica alone),
    constant steps."""
    e = ReplicaEngine(None, _cfg(num_kv_blocks=num_blocks, max_num_batched_tokens=256), step_model=_ONE)
    for k, c in enumerate(contexts):
        assert e.add(_req(f"d{k}", 0.0, c, num_blocks * 4 - c), 0.0)
    e.begin(0.0, 1)
    e.commit()
    assert e.B == len(contexts)
    return e


@pytest.mark.parametrize("contexts, num_blocks", [
    ([4], 3), ([5, 6, 7, 8], 12), ([4, 8, 12], 10), ([1, 2, 3], 4), ([3, 3, 6, 9, 9], 20),
    ([4, 5, 6, 7], 9), ([2], 2), ([16, 16], 9),
])
def test_kv_steps_is_the_longest_stretch_whose_blocks_fit(contexts, num_blocks) -> None:
    """_kv_steps(k) = the largest k' <= k with _need(S+1, k'−1) <= free blocks: steps 2..k'
    find their blocks, step k'+1 would not (k' >= 1 always: step 1's blocks are taken at
    begin). Linear search over k' as the reference."""
    e = _decoders(contexts, num_blocks)
    free = e.pool.num_free()
    for k in range(1, 40):
        want = max(kk for kk in range(1, k + 1) if e._need(e.S + 1, kk - 1) <= free)
        assert e._kv_steps(k) == want, (k, free)


def test_stretch_stops_where_kv_runs_out_by_hand() -> None:
    """Two decoders, 6 blocks of 4. a: prompt 4 (1 block), b: prompt 6 (2 blocks); prefill
    [0, 1] leaves 3 free. Decode step j writes position c + j − 1: a needs a block at steps
    1, 5, 9, …, b at steps 3, 7, …. Steps 1, 3, 5 take the 3 free blocks; step 7 would need
    a 7th: the stretch from t = 1 runs 6 steps (to 7), long before either finishes. Usage
    during steps 1–2: 4/6, 3–4: 5/6, 5–6: 6/6."""
    e = _decoders([4, 6], 6)
    assert e.pool.num_free() == 3
    assert e.begin(1.0) == 7.0 and e.p_k == 6
    for now, used in ((1.5, 4), (2.5, 4), (3.5, 5), (4.5, 5), (5.5, 6), (6.5, 6), (7.0, 6)):
        assert e.stats(now)["kv_usage_perc"] == pytest.approx(used / 6), now
    e.commit()
    assert e.pool.num_free() == 0 and e.S == 7


# ------------------------------------------------------------------ gauges
def test_stats_gauges_by_hand() -> None:
    """Tier named 'dram' (3 blocks): cpu_kv_hit_tokens counts its prefix hits; without such
    a tier it is 0. kv_tier_blocks counts blocks held per tier; lora_loads counts loads."""
    e = ReplicaEngine(None, _cfg(), step_model=_ONE)
    s = e.stats()
    assert s["cpu_kv_hit_tokens"] == 0 and s["kv_tier_hit_tokens"] == {} and s["kv_tier_blocks"] == {}
    assert s["lora_loads"] == 0 and s["running"] == 0 and s["waiting"] == 0
    t = ReplicaEngine(None, _cfg(kv_tiers=(KVTier(name="dram", blocks=3),), num_kv_blocks=2),
                      step_model=_ONE)
    t.pool.tiers[0][7] = None
    t.pool.tier_hit_tokens[0] = 12
    s = t.stats()
    assert s["cpu_kv_hit_tokens"] == 12 and s["kv_tier_blocks"] == {"dram": 1}
    lo = ReplicaEngine(None, _cfg(max_loras=1), step_model=_ONE)
    lo.add(_req("x", 0.0, 4, 2, adapter="A"), 0.0)
    lo.step(0.0)
    assert lo.stats()["lora_loads"] == 1 and lo.stats()["running"] == 1


def test_policy_gauges() -> None:
    """Without a tier policy there are no policy gauges; with 'priority' pinning (1 block of
    priority <= 0), a finished priority-0 request of 5 tokens leaves its one full block
    pinned (the partial second block is freed)."""
    assert "kv_pinned_blocks" not in ReplicaEngine(None, _cfg(), step_model=_ONE).stats()
    from servelab.sim import KVPolicy
    e = ReplicaEngine(None, _cfg(kv_policy=KVPolicy(policy="priority", pin_blocks=1, pin_priority=0)),
                      step_model=_ONE)
    e.add(_req("p", 0.0, 5, 1, prefix_group=1, prefix_tokens=4, priority=0), 0.0)
    e.step(0.0)
    s = e.stats()
    assert s["kv_pinned_blocks"] == 1 and s["kv_prefetched_blocks"] == 0


def test_step_is_one_step() -> None:
    """step() on a pure decode batch advances exactly one step (1 s), one token."""
    e = ReplicaEngine(None, _cfg(), step_model=_ONE)
    e.add(_req("a", 0.0, 4, 10), 0.0)
    e.step(0.0)
    out = e.step(1.0)
    assert out.duration_s == 1.0 and out.tokens == [("a", 1)] and e.S == 2


def test_chunked_prefill_and_one_token_requests_by_hand() -> None:
    """Token budget 4, constant 1 s steps. a: 10 in / 1 out is prefilled in chunks 4, 4, 2
    ([0,1], [1,2], [2,3]); its only token comes with the last chunk: first token = finish = 3,
    and it never decodes."""
    e = ReplicaEngine(None, _cfg(max_num_batched_tokens=4, max_num_seqs=1), step_model=_ONE)
    e.add(_req("a", 0.0, 10, 1), 0.0)
    ends = [e.step(float(t)).finished for t in range(3)]
    assert ends == [[], [], ["a"]]
    r = e.last_first[0]
    assert r.computed == 10 and r.first_token_s == 3.0 and r.finish_s == 3.0 and r.outputs == 1
    assert e.B == 0 and e.stats()["running"] == 0


class _Doubled(StepModel):
    """The perf model with every step twice as long (an override of step_time_s)."""

    def step_time_s(self, batch: StepBatch) -> float:
        return 2.0 * super().step_time_s(batch)


def test_a_step_model_override_is_honoured() -> None:
    """A subclass of the perf StepModel that overrides step_time_s is timed through it,
    not through the parent's fast path: the prefill step of 60 tokens takes twice the
    perf model's time."""
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))
    e = ReplicaEngine(dep, _cfg(), step_model=_Doubled(dep))
    e.add(_req("a", 0.0, 60, 3), 0.0)
    assert e.begin(0.0) == pytest.approx(2.0 * StepModel(dep).step_time_s(StepBatch(((60, 0),), 0, 0)),
                                         rel=1e-12)
    # step by step, a decode step too (one decoder over its 60 prompt tokens)
    x = ReplicaEngine(dep, _cfg(), step_model=_Doubled(dep), exact=True)
    x.add(_req("a", 0.0, 60, 3), 0.0)
    t = x.begin(0.0)
    x.commit()
    assert x.begin(t) - t == pytest.approx(2.0 * StepModel(dep).step_time_s(StepBatch((), 1, 60)), rel=1e-12)


def test_priority_preemption_orders_the_queue_by_priority() -> None:
    """priority_preemption implies the priority queue (even with the fcfs policy): one
    sequence at a time, z (priority 9) runs [0,1]; x (5) and y (0) wait: y goes next."""
    e = ReplicaEngine(None, _cfg(max_num_seqs=1), step_model=_ONE, priority_preemption=True)
    e.add(_req("z", 0.0, 4, 1, priority=9), 0.0)
    first = e.step(0.0).finished
    for rid, prio in (("x", 5), ("y", 0)):
        e.add(_req(rid, 0.5, 4, 1, priority=prio), 0.5)
    assert [first, e.step(1.0).finished, e.step(2.0).finished] == [["z"], ["y"], ["x"]]


def test_stretch_of_two_needs_the_second_steps_blocks() -> None:
    """Decoders at contexts 3 and 7 (3 blocks of 4, all taken): step 1 writes positions 3
    and 7 (in their last blocks), step 2 positions 4 and 8, two new blocks that do not
    exist. So even a stretch of at most 2 steps is one step; the next step preempts the
    newer request (vLLM recompute) and counts it."""
    e = _decoders([3, 7], 3)
    assert e.pool.num_free() == 0
    assert e.begin(1.0, 2) == 2.0 and e.p_k == 1
    assert e.stats()["kv_usage_perc"] == 1.0
    e.commit()
    e.begin(2.0)
    s = e.stats()
    assert s["num_preempted"] == 1 and s["waiting"] == 1 and s["running"] == 1


def test_stats_without_a_time_inside_a_stretch() -> None:
    """Without ``now_s`` the gauges read the pool as it is: only the stretch's first step's
    blocks are taken (decoders at 4 and 6 of 6 blocks: 3 + 1 used, see the by-hand stretch)."""
    e = _decoders([4, 6], 6)
    e.begin(1.0)
    assert e.p_k == 6 and e.stats()["kv_usage_perc"] == pytest.approx(4 / 6)


def test_mixed_step_time_by_hand() -> None:
    """a (4 in / 5 out) decodes while b (6 in) is prefilled: with the affine model that step
    takes 0.1 + 0.01·B + 0.001·C + 0.01·6 with B = 1, C = 4 → 0.174. With the perf model it
    is step_time_s of that batch (b's chunk of 6 at context 0, one decoder over 4 tokens)."""
    e = ReplicaEngine(None, _cfg(), step_model=_AFF)
    e.add(_req("a", 0.0, 4, 5), 0.0)
    t = e.begin(0.0)
    e.commit()
    e.add(_req("b", t, 6, 2), t)
    assert e.begin(t) - t == pytest.approx(0.174)
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))
    perf = StepModel(dep)
    for exact in (False, True):
        p = ReplicaEngine(dep, _cfg(), step_model=perf, exact=exact)
        p.add(_req("a", 0.0, 4, 5), 0.0)
        t = p.begin(0.0)
        p.commit()
        p.add(_req("b", t, 6, 2), t)
        assert p.begin(t) - t == pytest.approx(perf.step_time_s(StepBatch(((6, 0),), 1, 4)), rel=1e-12)
        p.commit()
        # then both decode: contexts 5 (a) and 6 (b)
        t = p.p_end
        assert p.begin(t, 1) - t == pytest.approx(perf.step_time_s(StepBatch((), 2, 11)), rel=1e-12)


def test_adapter_load_time_is_added_to_its_step() -> None:
    """lora_load_s 0.5 on top of a 1 s step: the step that admits a request with a new
    adapter takes 1.5 s; the next request with the same (resident) adapter adds nothing."""
    e = ReplicaEngine(None, _cfg(max_loras=1, lora_load_s=0.5), step_model=_ONE)
    e.add(_req("x", 0.0, 4, 1, adapter="A"), 0.0)
    assert e.step(0.0).duration_s == 1.5
    e.add(_req("y", 1.5, 4, 1, adapter="A"), 1.5)
    assert e.step(1.5).duration_s == 1.0


@pytest.mark.parametrize("exact", [True, False])
def test_speculative_decode_rate_by_hand(exact) -> None:
    """k = 2 draft tokens, α = 1 (all accepted): E = k + 1 = 3 tokens per verification step.
    Affine model, B = 1 decoder at context 4 (after a 0.14 s prefill of 4 tokens): the
    verification step over B·(k+1) = 3 rows costs decode_affine(3)[0] = 0.1 + 0.03 = 0.13,
    drafts 2 · 0.5 · decode_affine(1)[0] = 2 · 0.5 · 0.11 = 0.11; per token
    t0 = (0.13 + 0.11) / 3 = 0.08 and t1 = 0.001 / 3. The first decode token at context 4
    costs 0.08 + 0.004/3."""
    cfg = _cfg(num_speculative_tokens=2, spec_acceptance_rate=1.0, spec_draft_cost=0.5)
    e = ReplicaEngine(None, cfg, step_model=_AFF, exact=exact)
    e.add(_req("a", 0.0, 4, 4), 0.0)
    t = e.begin(0.0)
    assert t == pytest.approx(0.14)
    e.commit()
    t1 = 0.001 / 3
    assert e.begin(t, 1) - t == pytest.approx(0.08 + t1 * 4)
    e.commit()
    if not exact:
        # the remaining 2 tokens as one stretch: 2·0.08 + t1·(2·5 + 1·2·1/2)
        t = e.p_end
        assert e.begin(t) - t == pytest.approx(2 * 0.08 + t1 * (2 * 5 + 1))


def test_begin_twice_is_refused() -> None:
    e = ReplicaEngine(None, _cfg(), step_model=_ONE)
    e.add(_req("a", 0.0, 4, 3), 0.0)
    e.begin(0.0)
    with pytest.raises(AssertionError, match=r"^begin\(\) while a step is in flight$"):
        e.begin(0.5)


def test_prefix_cache_hit_rate_gauge() -> None:
    """Two 9-token prompts of one prefix group (8 prefix tokens = 2 blocks), one after the
    other: the second finds both blocks, 8 of the 18 prompt tokens queried → 8/18."""
    e = ReplicaEngine(None, _cfg(), step_model=_ONE)
    e.add(_req("a", 0.0, 9, 1, prefix_group=0, prefix_tokens=8), 0.0)
    e.step(0.0)
    e.add(_req("b", 1.0, 9, 1, prefix_group=0, prefix_tokens=8), 1.0)
    e.step(1.0)
    assert e.stats()["prefix_cache_hit_rate"] == pytest.approx(8 / 18)


def test_priority_policy_without_preemption_keeps_the_stretch() -> None:
    """Priority scheduling, no priority preemption, one sequence at a time: x (priority 5)
    decodes with 9 tokens left while y (priority 0) waits for the slot. Nothing can join
    until x finishes, so the stretch runs all 9 steps."""
    e = ReplicaEngine(None, _cfg(max_num_seqs=1, scheduling_policy="priority"), step_model=_ONE)
    e.add(_req("x", 0.0, 4, 10, priority=5), 0.0)
    e.step(0.0)
    e.add(_req("y", 0.5, 4, 3, priority=0), 0.5)
    assert e.begin(1.0) == 10.0 and e.p_k == 9


def _stretch(model, n_dec: int, left: int) -> ReplicaEngine:
    """n_dec decoders (prompts of 4) with ``left`` tokens left each, a stretch begun at 1.0."""
    e = ReplicaEngine(None, _cfg(), step_model=model)
    for k in range(n_dec):
        e.add(_req(f"d{k}", 0.0, 4, left + 1), 0.0)
    e.begin(0.0)
    e.commit()
    e.begin(e.p_end)
    assert e.p_k == left
    return e


@pytest.mark.parametrize("model, n_dec", [(_AFF, 3), (_ONE, 2), (_AFF, 1)])
def test_truncate_agrees_with_a_scan_of_the_closed_form(model, n_dec) -> None:
    """Cutting at t ends the stretch at the first step j with t_j >= t (t_j the closed form
    p_t + j·t0 + t1·(j·C + B·j(j−1)/2)); None when that is the last step (nothing to cut).
    Checked at the start, at every step end and just before / after it (float rounding
    of the quadratic's root must not move the cut)."""
    left = 12
    probe = _stretch(model, n_dec, left)
    p_t, t0, t1, B, C = probe.p_t, probe.p_t0, probe.p_t1, probe.p_B, probe.p_C

    def t_(j):
        return p_t + j * t0 + t1 * (j * C + B * j * (j - 1) * 0.5)

    times = [p_t]
    for j in range(1, left + 1):
        times += [t_(j), t_(j) - 1e-12, t_(j) + 1e-12, (t_(j - 1) + t_(j)) / 2]
    for t in times:
        e = _stretch(model, n_dec, left)
        want = next(j for j in range(1, left + 1) if t_(j) >= t) if t < t_(left) else left
        got = e.truncate(t)
        if want >= left:
            assert got is None and e.p_k == left, t
        else:
            assert got == t_(want) and e.p_k == want and e.p_end == got, (t, want)


def test_nothing_to_cut_once_committed() -> None:
    e = _stretch(_ONE, 1, 5)
    e.commit()
    assert e.truncate(2.5) is None and e.p_k == 5


def test_an_aborted_decoder_does_not_hold_up_a_finishing_one() -> None:
    """x and y (4 in / 3 out, admitted together, x first) would both finish at the end of
    step 3 (t = 3). x is aborted at t = 2 between steps; y still finishes at 3."""
    e = ReplicaEngine(None, _cfg(), step_model=_ONE)
    e.add(_req("x", 0.0, 4, 3), 0.0)
    e.add(_req("y", 0.0, 4, 3), 0.0)
    e.step(0.0)
    e.step(1.0)
    assert e.abort("x")
    out = e.step(2.0)
    assert out.finished == ["y"] and e.B == 0 and e.pool.num_free() == e.pool.num_blocks


@pytest.mark.parametrize("model", [ConstantStepModel(step_s=1.7),
                                   AffineStepModel(base_s=1.3, per_seq_s=0.07, per_ctx_s=0.003),
                                   # attention-heavy: t0 = 0.01, t1 = 0.01, so 4·a·x > b² after ~0.2 s
                                   AffineStepModel(base_s=0.01, per_seq_s=0.0, per_ctx_s=0.01)])
def test_truncate_late_in_a_long_stretch(model) -> None:
    """40-step stretches (3 decoders) whose step times are not exact binary fractions: the
    cut agrees with a scan of the closed form everywhere, including late cuts where the
    quadratic's discriminant b² + 4·a·x is dominated by its x term."""
    left = 40
    probe = _stretch(model, 3, left)
    p_t, t0, t1, B, C = probe.p_t, probe.p_t0, probe.p_t1, probe.p_B, probe.p_C

    def t_(j):
        return p_t + j * t0 + t1 * (j * C + B * j * (j - 1) * 0.5)

    for j in range(1, left):
        for t in (t_(j), t_(j) - 1e-9, t_(j) + 1e-9, math.nextafter(t_(j), 0.0), math.nextafter(t_(j), 1e9)):
            e = _stretch(model, 3, left)
            want = next(i for i in range(1, left + 1) if t_(i) >= t)
            got = e.truncate(t)
            if want >= left:
                assert got is None, t
            else:
                assert got == t_(want) and e.p_k == want, (t, want)


def test_a_late_queued_short_request_finishes_on_time() -> None:
    """a, b (4 in / 10 out) and c (4 in / 2 out) are admitted together at 0; c's second
    token comes at the end of decode step 2 (t = 2), whatever its place in the queue."""
    e = ReplicaEngine(None, _cfg(), step_model=_ONE)
    for rid, out in (("a", 10), ("b", 10), ("c", 2)):
        e.add(_req(rid, 0.0, 4, out), 0.0)
    assert e.step(0.0).finished == []
    assert e.step(1.0).finished == ["c"] and e.B == 2


@pytest.mark.parametrize("max_steps", [2, 1 << 62])
@pytest.mark.parametrize("w_priority", [0, 5, 9, None])
def test_priority_preemption_runs_one_step_at_a_time_while_a_better_request_waits(max_steps, w_priority) -> None:
    """Priority preemption, no chunked prefill, budget 16: x1, x2 (priority 5) decode with 9
    tokens left, so 14 tokens of budget are left; w (15-token prompt) fits neither the
    budget nor needs a preemption now (batch not full, KV free). If w outranks the decoders
    (priority 0), their growth could make room short at any boundary: the engine plans one
    step at a time. A w of equal or lower rank (5, 9), or none, cannot preempt them: the
    stretch runs to the decoders' end (9 steps) or to max_steps."""
    cfg = _cfg(max_num_batched_tokens=16, enable_chunked_prefill=False)
    e = ReplicaEngine(None, cfg, step_model=_ONE, priority_preemption=True)
    for rid in ("x1", "x2"):
        e.add(_req(rid, 0.0, 4, 10, priority=5), 0.0)
    e.step(0.0)
    if w_priority is not None:
        assert e.add(_req("w", 0.5, 15, 1, priority=w_priority), 0.5)
    k = 1 if w_priority == 0 else min(max_steps, 9)
    assert e.begin(1.0, max_steps) == 1.0 + k and e.p_k == k


def test_an_aborted_decoder_does_not_cut_the_stretch() -> None:
    """x (4 in / 4 out) and y (4 in / 10 out) decode after a 1 s prefill; x is aborted at
    t = 1. The stretch then runs to y's end (9 steps, to t = 10), not to x's old end (t = 4)."""
    e = ReplicaEngine(None, _cfg(), step_model=_ONE)
    e.add(_req("x", 0.0, 4, 4), 0.0)
    e.add(_req("y", 0.0, 4, 10), 0.0)
    e.step(0.0)
    assert e.abort("x")
    assert e.begin(1.0) == 10.0 and e.p_k == 9
