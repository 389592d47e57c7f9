"""Shortcuts of the simulator's hot path against the general code they stand for.

- ``StepModel.mixed_time_s`` (one pass over the prefill chunks) against the sum of the
  step's parts as the perf model defines them one by one (linear layers of the token
  count, LM head of the row count, attention from ``_attention_time`` of a StepBatch):
  equal to the last bit, for dense, MoE and tensor-parallel deployments.
- ``SimRequest``'s constructor against ``reset()``: a constructed request and a used
  request reset for a retry hold the same not-yet-started state.
- The engine's direct step timing (no StepBatch) against a step model that only has the
  ``step_time_s(StepBatch)`` protocol: the same run, the same times.
"""

from __future__ import annotations

import random

import pytest

from servelab.catalog import RequestSpec, get_gpu, get_model
from servelab.perf import Deployment, StepModel
from servelab.perf.deployment import StepBatch
from servelab.sim import ReplicaEngine, SchedulerConfig, SimRequest


@pytest.mark.parametrize("model,tp", [("llama-3.1-8b", 1), ("mixtral-8x7b", 2), ("llama-3.1-8b", 4)])
def test_mixed_time_equals_sum_of_parts(model: str, tp: int) -> None:
    sm = StepModel(Deployment(model=get_model(model), gpu=get_gpu("h100-sxm"), tp=tp))
    rng = random.Random(7)
    for _ in range(300):
        chunks = tuple((rng.randint(1, 4096), rng.choice((0, rng.randint(0, 30000))))
                       for _ in range(rng.randint(1, 5)))
        B = rng.choice((0, rng.randint(1, 256)))
        C = B * rng.randint(1, 4000) if B else 0
        n = sum(c for c, _ in chunks) + B
        rows = len(chunks) + B
        parts = (sm._linear_time(n) + sm._lm_head_time(rows)
                 + sm._attention_time(StepBatch(chunks, B, C)))
        assert sm.mixed_time_s(list(chunks), B, C) == parts
        assert sm.step_time_s(StepBatch(chunks, B, C)) == parts


def _spec(i: int) -> RequestSpec:
    return RequestSpec(id=f"r{i}", arrival_s=0.5 * i, input_tokens=100 + i, output_tokens=7,
                       priority=1, prefix_group=2, prefix_tokens=32)


def test_constructed_request_equals_a_reset_one() -> None:
    fresh = SimRequest(_spec(3), 3)
    used = SimRequest(_spec(3), 3)
    used.outputs, used.computed, used.prompt_len, used.state = 5, 400, 111, 2
    used.sync, used.ctx_join, used.out_join, used.fin_s_idx = 9, 8, 7, 6
    used.shared, used.chain, used.registered, used.share_upto = [1, 2], [3], 2, 4
    used.admit_seq, used.start_s, used.first_token_s, used.finish_s = 5, 1.0, 2.0, 3.0
    used.cached_tokens, used.recompute, used.pf = 16, True, (1.0, 0.1, 3, 9.0)
    used.reset()
    for name in SimRequest.__slots__:
        assert getattr(used, name) == getattr(fresh, name), name


class _ProtocolOnly:
    """A step model with only the protocol's two methods, delegating to the perf model."""

    def __init__(self, sm: StepModel) -> None:
        self.sm = sm

    def step_time_s(self, batch: StepBatch) -> float:
        return self.sm.step_time_s(batch)

    def decode_affine(self, b: int) -> tuple[float, float]:
        return self.sm.decode_affine(b)


@pytest.mark.parametrize("exact", [False, True])
def test_direct_step_timing_matches_the_protocol(exact: bool) -> None:
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))
    sm = StepModel(dep)
    runs = []
    for model in (sm, _ProtocolOnly(sm)):
        eng = ReplicaEngine(dep, SchedulerConfig(num_kv_blocks=3000, max_num_batched_tokens=1024),
                            step_model=model, exact=exact)
        assert (eng._mixed is not None) == (model is sm)
        t, ends = 0.0, []
        for i in range(40):
            eng.add(RequestSpec(id=f"r{i}", arrival_s=0.0, input_tokens=300 + 37 * i,
                                output_tokens=20 + i), 0.0)
        while True:
            end = eng.begin(t)
            if end is None:
                break
            ends.append(end)
            eng.commit()
            t = end
        runs.append(ends)
    assert len(runs[0]) > 40
    assert runs[0] == runs[1]
