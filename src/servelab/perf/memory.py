"""Memory budget of one replica: weights, KV cache, activations, runtime overhead."""

from __future__ import annotations

from dataclasses import dataclass

from .deployment import Deployment

__all__ = ["MemoryBudget", "memory_budget"]


@dataclass(frozen=True, kw_only=True)
class MemoryBudget:
    """Per GPU unless the name says per replica."""
    gpu_memory_bytes: float
    usable_bytes: float            # gpu_memory_utilization * memory
    weight_bytes: float            # per GPU
    activation_bytes: float        # peak for the token budget, per GPU
    overhead_bytes: float          # CUDA graphs, NCCL buffers, framework
    kv_bytes: float                # left for the KV cache, per GPU
    kv_bytes_per_token: float      # per replica (all layers), before sharding
    kv_bytes_per_token_per_gpu: float
    kv_capacity_tokens: int        # per replica
    kv_blocks: int                 # per replica
    feasible: bool
    reason: str                    # "" when feasible

    def max_concurrency(self, context_tokens: int) -> int:
        """Sequences of ``context_tokens`` that fit at once (block-rounded)."""
        raise NotImplementedError


def memory_budget(dep: Deployment) -> MemoryBudget:
    raise NotImplementedError
