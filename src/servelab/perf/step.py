"""Roofline time of one engine step (see docs/perf.md)."""

from __future__ import annotations

from .deployment import Deployment, StepBatch

__all__ = ["StepModel"]


class StepModel:
    """Step times for one deployment; coefficients precomputed once (hot path of the simulator)."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep

    def step_time_s(self, batch: StepBatch) -> float:
        """Wall time of one engine step processing ``batch``."""
        raise NotImplementedError

    def decode_affine(self, num_decode: int) -> tuple[float, float]:
        """(t0_s, t1_s_per_context_token): a pure-decode step of ``num_decode`` sequences
        whose contexts sum to C takes exactly ``t0 + t1 * C`` seconds."""
        raise NotImplementedError
