"""Step-time models with known closed forms, for queueing-theory checks and tests.

Both implement the two methods the simulator needs from ``perf.StepModel``:
``step_time_s(StepBatch)`` and ``decode_affine(num_decode) -> (t0_s, t1_s)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..perf.deployment import StepBatch

__all__ = ["ConstantStepModel", "AffineStepModel"]


@dataclass(frozen=True, kw_only=True)
class ConstantStepModel:
    """Every step takes ``step_s`` whatever the batch (deterministic service)."""
    step_s: float

    def step_time_s(self, batch: StepBatch) -> float:
        return self.step_s

    def decode_affine(self, num_decode: int) -> tuple[float, float]:
        return (self.step_s, 0.0)


@dataclass(frozen=True, kw_only=True)
class AffineStepModel:
    """step = base_s + per_seq_s·B + per_ctx_s·C + per_prefill_token_s·Σ chunk tokens
    + per_prefill_ctx_s·Σ chunk·context_before (a roofline-shaped toy: weights read once,
    KV read ∝ context, prefill FLOPs ∝ tokens and ∝ tokens·context)."""
    base_s: float = 0.010
    per_seq_s: float = 2e-5
    per_ctx_s: float = 2e-8
    per_prefill_token_s: float = 5e-5
    per_prefill_ctx_s: float = 0.0

    def step_time_s(self, batch: StepBatch) -> float:
        t = self.base_s + self.per_seq_s * batch.num_decode + self.per_ctx_s * batch.decode_context_sum
        for n, ctx in batch.prefill_chunks:
            t += self.per_prefill_token_s * n + self.per_prefill_ctx_s * n * ctx
        return t

    def decode_affine(self, num_decode: int) -> tuple[float, float]:
        return (self.base_s + self.per_seq_s * num_decode, self.per_ctx_s)
