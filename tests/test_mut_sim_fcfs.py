"""The scheduler, engine and fleet loop against a naive FCFS continuous-batching
simulator written here from the documented rules (sim/scheduler.py, sim/engine.py,
sim/cluster.py docstrings), on small workloads with ample KV (no preemption):

- each step has a token budget ``max_num_batched_tokens``; decoding sequences take one
  token each first, then running prefills (admission order) ``min(remaining, budget)``,
  then waiting requests FCFS while budget > 0 and fewer than ``max_num_seqs`` run
  (without chunked prefill a prompt that does not fit the remaining budget waits);
- a prefill that completes emits the first token at the step's end; each decode step
  emits one token per decoder; a request ends when it has ``max(1, output)`` tokens;
- an idle replica starts a step at an arrival at once; requests arriving while a step
  runs (or at the instant it ends) join at the next step;
- step time = base + per_seq·B + per_ctx·C + Σ per_tok·n + per_pctx·n·ctx (the affine
  fake's stated form; C = Σ over decoders of prompt + outputs − 1 tokens in KV).

Plus tiny runs worked out by hand in the comments. Exact (step by step) and event
skipping modes must both equal the reference.
"""

from __future__ import annotations

import heapq
import random
from collections import deque

import pytest

from servelab.catalog import RequestSpec
from servelab.perf.deployment import StepBatch
from servelab.sim import (
    AffineStepModel,
    ConstantStepModel,
    ReplicaEngine,
    ReplicaSpec,
    SchedulerConfig,
    SimConfig,
    simulate,
)


# ----------------------------------------------------------------------------- reference
class _R:
    def __init__(self, spec: RequestSpec) -> None:
        self.id = spec.id
        self.arrival = spec.arrival_s
        self.L = spec.input_tokens
        self.target = max(1, spec.output_tokens)
        self.computed = self.outputs = 0
        self.start = self.first = self.finish = None
        self.replica = None


class NaiveReplica:
    def __init__(self, name: str, budget: int, max_seqs: int, chunked: bool, step_fn) -> None:
        self.name, self.M, self.max_seqs, self.chunked, self.step_fn = name, budget, max_seqs, chunked, step_fn
        self.waiting: deque[_R] = deque()
        self.running: list[_R] = []
        self.plan = None
        self.busy = False

    def outstanding(self) -> int:
        return len(self.waiting) + len(self.running)

    def begin(self, t: float) -> float | None:
        budget = self.M
        dec = [r for r in self.running if r.computed >= r.L]
        budget -= len(dec)
        chunks = []
        for r in self.running:
            if r.computed < r.L:
                if budget <= 0:
                    break
                n = min(r.L - r.computed, budget)
                chunks.append((r, n))
                budget -= n
        while budget > 0 and self.waiting and len(self.running) < self.max_seqs:
            r = self.waiting[0]
            n = r.L
            if n > budget:
                if not self.chunked:
                    break
                n = budget
            self.waiting.popleft()
            self.running.append(r)
            r.start = t
            chunks.append((r, n))
            budget -= n
        if not dec and not chunks:
            return None
        C = sum(r.L + r.outputs - 1 for r in dec)
        dur = self.step_fn([(n, r.computed) for r, n in chunks], len(dec), C)
        self.plan = (t + dur, dec, chunks)
        return t + dur

    def commit(self) -> None:
        T, dec, chunks = self.plan
        for r in dec:
            r.outputs += 1
            if r.outputs >= r.target:
                r.finish = T
                self.running.remove(r)
        for r, n in chunks:
            r.computed += n
            if r.computed >= r.L:
                r.outputs = 1
                r.first = T
                if r.outputs >= r.target:
                    r.finish = T
                    self.running.remove(r)


def naive_fleet(specs, *, replicas: int, policy: str, budget: int, max_seqs: int, chunked: bool,
                step_fn) -> list[_R]:
    """Event loop: arrivals (sorted, one at a time) before step ends at equal times; step
    ends at equal times in the order they were scheduled."""
    reps = [NaiveReplica(f"replica-{i}", budget, max_seqs, chunked, step_fn) for i in range(replicas)]
    reqs = [_R(s) for s in sorted(specs, key=lambda s: s.arrival_s)]
    heap: list[tuple[float, int, NaiveReplica]] = []
    seq = 0
    rr = 0
    i = 0

    def start(rep: NaiveReplica, t: float) -> None:
        nonlocal seq
        end = rep.begin(t)
        rep.busy = end is not None
        if end is not None:
            seq += 1
            heapq.heappush(heap, (end, seq, rep))

    while i < len(reqs) or heap:
        if i < len(reqs) and (not heap or reqs[i].arrival <= heap[0][0]):
            r = reqs[i]
            i += 1
            if policy == "round_robin":
                rep = reps[rr % len(reps)]
                rr += 1
            else:
                loads = [x.outstanding() for x in reps]
                rep = reps[loads.index(min(loads))]
            r.replica = rep.name
            rep.waiting.append(r)
            if not rep.busy:
                start(rep, r.arrival)
            continue
        t, _s, rep = heapq.heappop(heap)
        rep.commit()
        start(rep, t)
    return reqs


def _affine_fn(m: AffineStepModel):
    def f(chunks, B, C):
        t = m.base_s + m.per_seq_s * B + m.per_ctx_s * C
        for n, ctx in chunks:
            t += m.per_prefill_token_s * n + m.per_prefill_ctx_s * n * ctx
        return t
    return f


def _const_fn(s: float):
    return lambda chunks, B, C: s


def _workload(seed: int, n: int, rate: float) -> list[RequestSpec]:
    rng = random.Random(seed)
    t, out = 0.0, []
    for k in range(n):
        t += rng.expovariate(rate)
        # some arrivals on the same instant (ties between arrivals and step ends)
        if rng.random() < 0.2 and out:
            t = out[-1].arrival_s
        out.append(RequestSpec(id=f"q{k}", arrival_s=round(t, 3), input_tokens=rng.randint(1, 40),
                               output_tokens=rng.randint(0, 12)))
    return out


def _compare(specs, ref, res) -> None:
    recs = {r.id: r for r in res.records}
    assert len(recs) == len(ref)
    for r in ref:
        got = recs[r.id]
        assert got.status == "ok", (r.id, got.reason)
        assert got.replica == r.replica, r.id
        assert got.start_s == pytest.approx(r.start, abs=1e-9), r.id
        assert got.first_token_s == pytest.approx(r.first, abs=1e-9), r.id
        assert got.finish_s == pytest.approx(r.finish, abs=1e-9), r.id
        assert got.output_tokens == r.target
        assert got.cached_tokens == 0
    assert res.duration_s == pytest.approx(max(r.finish for r in ref), abs=1e-9)


_AFF = AffineStepModel(base_s=0.01, per_seq_s=0.002, per_ctx_s=1e-4, per_prefill_token_s=3e-4,
                       per_prefill_ctx_s=1e-6)


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("seed, replicas, policy, budget, seqs, chunked, model", [
    (1, 1, "round_robin", 16, 4, True, ConstantStepModel(step_s=0.05)),
    (2, 1, "round_robin", 24, 3, True, _AFF),
    (3, 1, "round_robin", 64, 64, False, _AFF),
    (4, 2, "round_robin", 16, 2, True, _AFF),
    (5, 3, "least_outstanding", 20, 3, True, _AFF),
    (6, 2, "least_outstanding", 56, 2, False, ConstantStepModel(step_s=0.03)),
    (7, 1, "round_robin", 8, 8, True, ConstantStepModel(step_s=0.02)),
])
def test_fleet_matches_a_naive_fcfs_simulator(exact, seed, replicas, policy, budget, seqs, chunked,
                                              model) -> None:
    specs = _workload(seed, 30, rate=8.0 * replicas)
    step_fn = _const_fn(model.step_s) if isinstance(model, ConstantStepModel) else _affine_fn(model)
    ref = naive_fleet(specs, replicas=replicas, policy=policy, budget=budget, max_seqs=seqs,
                      chunked=chunked, step_fn=step_fn)
    sched = SchedulerConfig(max_num_seqs=seqs, max_num_batched_tokens=budget, block_size=4,
                            num_kv_blocks=4096, enable_chunked_prefill=chunked)
    cfg = SimConfig(replicas=(ReplicaSpec(scheduler=sched, count=replicas, step_model=model),),
                    router=policy, exact=exact)
    _compare(specs, ref, simulate(cfg, specs))


# ----------------------------------------------------------------------------- by hand
def _engine(**kw) -> ReplicaEngine:
    sched = SchedulerConfig(**{"block_size": 4, "num_kv_blocks": 64, **kw})
    return ReplicaEngine(None, sched, step_model=ConstantStepModel(step_s=1.0))


def test_two_requests_chunked_by_hand() -> None:
    """budget 8, steps of 1 s. a: 10 in / 3 out, b: 5 in / 2 out, both at t=0.
    step 1 [0,1]: a gets 8 (budget 8).            a computed 8
    step 2 [1,2]: a gets 2, b admitted with 5.    both prefilled → first tokens at 2
    step 3 [2,3]: decode a, b → b has 2 tokens → b done at 3
    step 4 [3,4]: decode a → a has 3 → a done at 4."""
    e = _engine(max_num_batched_tokens=8, max_num_seqs=8)
    e.add(RequestSpec(id="a", arrival_s=0.0, input_tokens=10, output_tokens=3), 0.0)
    e.add(RequestSpec(id="b", arrival_s=0.0, input_tokens=5, output_tokens=2), 0.0)
    o1 = e.step(0.0)
    assert o1.duration_s == 1.0 and o1.tokens == [] and o1.started == [("a", 0.0)]
    o2 = e.step(1.0)
    assert sorted(o2.tokens) == [("a", 1), ("b", 1)] and o2.started == [("b", 1.0)]
    assert o2.finished == []
    o3 = e.step(2.0)
    assert o3.finished == ["b"] and sorted(o3.tokens) == [("a", 1), ("b", 1)]
    assert o3.duration_s == 1.0                      # step() is one step, never a stretch
    o4 = e.step(3.0)
    assert o4.finished == ["a"] and o4.tokens == [("a", 1)] and o4.duration_s == 1.0
    o5 = e.step(4.0)
    assert o5.duration_s == 0.0 and o5.tokens == [] and o5.preempted == [] and not e.has_work


def test_max_num_seqs_holds_the_third_request_back() -> None:
    """max_num_seqs 2: c (arrived with a, b) starts only when b leaves.
    a: 4 in / 3 out, b: 4 in / 1 out, c: 4 in / 1 out; budget 64.
    step 1: a, b prefill → first tokens at 1; b done (1 token). c waits (2 running).
    step 2: a decodes (2nd token); c admitted → prefill → done at 2.
    step 3: a's 3rd token → done at 3."""
    e = _engine(max_num_batched_tokens=64, max_num_seqs=2)
    for rid, out in (("a", 3), ("b", 1), ("c", 1)):
        e.add(RequestSpec(id=rid, arrival_s=0.0, input_tokens=4, output_tokens=out), 0.0)
    assert e.outstanding() == 3 and e.num_waiting == 3
    o = e.step(0.0)
    assert o.finished == ["b"] and [s[0] for s in o.started] == ["a", "b"]
    assert e.outstanding() == 2
    o = e.step(1.0)
    assert o.finished == ["c"]
    o = e.step(2.0)
    assert o.finished == ["a"]
    assert e.outstanding() == 0


def test_without_chunked_prefill_a_long_prompt_waits_for_a_fresh_budget() -> None:
    """budget 10, no chunking. a: 6 in / 2 out, b: 6 in / 1 out.
    step 1: a (6) fits; b (6) > 4 left → waits.
    step 2: a decodes (1 token of budget), b: 6 <= 9 → admitted, done at 2; a done at 2."""
    e = _engine(max_num_batched_tokens=10, max_num_seqs=4, enable_chunked_prefill=False)
    e.add(RequestSpec(id="a", arrival_s=0.0, input_tokens=6, output_tokens=2), 0.0)
    e.add(RequestSpec(id="b", arrival_s=0.0, input_tokens=6, output_tokens=1), 0.0)
    o = e.step(0.0)
    assert o.started == [("a", 0.0)] and e.num_waiting == 1
    o = e.step(1.0)
    assert sorted(o.finished) == ["a", "b"]


def test_fits_names_both_limits() -> None:
    e = _engine(max_num_batched_tokens=8, max_num_seqs=8, enable_chunked_prefill=False)
    # 64 blocks of 4 = 256 tokens of KV
    assert e.fits(RequestSpec(id="x", arrival_s=0, input_tokens=255, output_tokens=1)) .startswith("400 prompt of 256 tokens")
    ok = _engine(max_num_batched_tokens=300, max_num_seqs=8, enable_chunked_prefill=False)
    assert ok.fits(RequestSpec(id="x", arrival_s=0, input_tokens=255, output_tokens=1)) == ""
    assert ok.fits(RequestSpec(id="x", arrival_s=0, input_tokens=256, output_tokens=1)) == \
        "400 request needs 257 tokens of KV; replica holds 256"
    # output 0 counts as 1 token
    assert ok.fits(RequestSpec(id="x", arrival_s=0, input_tokens=255, output_tokens=0)) == ""
    assert "max_num_batched_tokens 8" in e.fits(RequestSpec(id="x", arrival_s=0, input_tokens=8,
                                                            output_tokens=1))
    assert e.fits(RequestSpec(id="x", arrival_s=0, input_tokens=7, output_tokens=1)) == ""
    chunked = _engine(max_num_batched_tokens=8, max_num_seqs=8)
    assert chunked.fits(RequestSpec(id="x", arrival_s=0, input_tokens=100, output_tokens=1)) == ""


def test_max_waiting_rejects_the_overflow() -> None:
    e = _engine(max_num_batched_tokens=8, max_num_seqs=8, max_waiting=2)
    ok = [e.add(RequestSpec(id=f"r{i}", arrival_s=0.0, input_tokens=4, output_tokens=1), 0.0)
          for i in range(3)]
    assert ok == [True, True, False]
    z = _engine(max_num_batched_tokens=8, max_num_seqs=8, max_waiting=0)
    assert not z.add(RequestSpec(id="r", arrival_s=0.0, input_tokens=4, output_tokens=1), 0.0)
    big = _engine(max_num_batched_tokens=8, max_num_seqs=8)
    assert not big.add(RequestSpec(id="r", arrival_s=0.0, input_tokens=400, output_tokens=1), 0.0)


def test_stretch_time_closed_form_and_truncation() -> None:
    """One decoder, prompt 10, 5 outputs, affine t0 = 0.1 + 0.01·B, t1 = 0.001 / token.
    After the prefill step (t = 0 → 0.1 + prefill cost), the 4 remaining tokens come in one
    stretch: step j sees context 10 + j (j = 0..3): Σ (0.11 + 0.001·(10 + j)) = 0.44 + 0.046."""
    m = AffineStepModel(base_s=0.1, per_seq_s=0.01, per_ctx_s=0.001, per_prefill_token_s=0.0)
    e = ReplicaEngine(None, SchedulerConfig(block_size=4, num_kv_blocks=64), step_model=m)
    e.add(RequestSpec(id="a", arrival_s=0.0, input_tokens=10, output_tokens=5), 0.0)
    end = e.begin(0.0)
    assert end == pytest.approx(0.1)
    e.commit()
    end = e.begin(0.1)
    assert e.p_k == 4
    assert end == pytest.approx(0.1 + 0.44 + 0.046)
    # steps ending by t: step ends at 0.1+0.12, +0.121, +0.122, +0.123
    ends = [0.1 + 0.12, 0.1 + 0.241, 0.1 + 0.363, 0.1 + 0.486]
    assert end == pytest.approx(ends[-1])
    assert e.steps_done(0.1) == 0
    assert e.steps_done(ends[0] - 1e-9) == 0
    assert e.steps_done(ends[0] + 1e-9) == 1
    assert e.steps_done(ends[2] + 1e-9) == 3
    assert e.steps_done(10.0) == 4
    # a cut at a time inside step 2 ends the stretch after step 2
    new = e.truncate((ends[0] + ends[1]) / 2)
    assert new == pytest.approx(ends[1]) and e.p_k == 2
    assert e.truncate(ends[1] + 1.0) is None          # after the end: nothing to cut
    done = e.commit()
    assert done == [] and e.S == 3
    end = e.begin(ends[1])
    assert end == pytest.approx(ends[1] + 0.122 + 0.123)
    done = e.commit()
    assert [r.rid for r in done] == ["a"] and done[0].finish_s == pytest.approx(end)


def test_truncate_exactly_on_a_step_boundary_keeps_that_step() -> None:
    """Constant 1 s steps, stretch of 5 from t=1: ends at 2,3,4,5,6. Cut at exactly 3 →
    the step ending at 3 is the last (a request arriving at 3 joins the step from 3)."""
    e = _engine(max_num_batched_tokens=64, max_num_seqs=8)
    e.add(RequestSpec(id="a", arrival_s=0.0, input_tokens=4, output_tokens=6), 0.0)
    e.begin(0.0)
    e.commit()
    assert e.begin(1.0) == 6.0 and e.p_k == 5
    assert e.truncate(3.0) == 3.0 and e.p_k == 2
    assert e.truncate(2.5) is None and e.p_k == 2     # the step running at 2.5 already ends it
    assert e.truncate(1.5) == 2.0 and e.p_k == 1


def test_kv_usage_inside_a_stretch() -> None:
    """block 4, 64 blocks. a: prompt 4 (1 block) + 9 outputs. After its prefill step the
    stretch of 8 decode steps starts with 1 block; steps writing tokens 5 and 9 (contexts 4
    and 8) need a new block each. stats(now) counts blocks of the steps ended by now."""
    e = _engine(max_num_batched_tokens=64, max_num_seqs=8)
    e.add(RequestSpec(id="a", arrival_s=0.0, input_tokens=4, output_tokens=9), 0.0)
    e.begin(0.0)
    e.commit()
    assert e.stats()["kv_usage_perc"] == pytest.approx(1 / 64)
    assert e.begin(1.0) == 9.0
    # step 1 (ends at 2) allocated its block at scheduling time
    assert e.stats()["kv_usage_perc"] == pytest.approx(2 / 64)
    assert e.stats(1.5)["kv_usage_perc"] == pytest.approx(2 / 64)
    assert e.stats(5.5)["kv_usage_perc"] == pytest.approx(3 / 64)   # step 5 (context 8) began
    s = e.stats(8.5)
    assert s["running"] == 1 and s["waiting"] == 0 and s["num_preempted"] == 0
    e.commit()
    assert e.stats()["kv_usage_perc"] == 0.0


def _affine_stretch() -> ReplicaEngine:
    m = AffineStepModel(base_s=0.1, per_seq_s=0.01, per_ctx_s=0.001, per_prefill_token_s=0.0)
    e = ReplicaEngine(None, SchedulerConfig(block_size=4, num_kv_blocks=64), step_model=m)
    e.add(RequestSpec(id="a", arrival_s=0.0, input_tokens=10, output_tokens=5), 0.0)
    e.begin(0.0)
    e.commit()
    e.begin(0.1)                     # a stretch of 4 decode steps from 0.1
    return e


def test_truncate_at_the_stretch_start_keeps_one_step() -> None:
    """A cut at the very start of a stretch: the step running then is the first; the stretch
    ends after it (0.1 + 0.11 + 0.001 · 10)."""
    e = _affine_stretch()
    assert e.truncate(0.1) == pytest.approx(0.22) and e.p_k == 1


@pytest.mark.parametrize("j", [1, 2, 3])
def test_truncate_exactly_at_a_step_end_keeps_that_step(j) -> None:
    """The end of step j, as the engine reports it after a cut inside step j, is itself a cut
    point that keeps exactly j steps (a request arriving then joins the next step)."""
    e = _affine_stretch()
    ends = [0.1 + 0.12, 0.1 + 0.241, 0.1 + 0.363, 0.1 + 0.486]
    inside = (ends[j - 1] + (ends[j - 2] if j > 1 else 0.1)) / 2
    t_end = e.truncate(inside)
    assert t_end == pytest.approx(ends[j - 1]) and e.p_k == j
    f = _affine_stretch()
    assert f.truncate(t_end) == t_end and f.p_k == j
    g = _affine_stretch()
    if j + 1 < 4:
        assert g.truncate(t_end + 1e-9) == pytest.approx(ends[j]) and g.p_k == j + 1
    else:                            # the cut keeps the whole stretch: nothing changes
        assert g.truncate(t_end + 1e-9) is None and g.p_k == 4
