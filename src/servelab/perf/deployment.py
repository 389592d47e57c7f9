"""What is being served, and the batch one engine step processes."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..catalog.gpus import GPU
from ..catalog.models import ModelSpec

__all__ = ["Efficiency", "Deployment", "StepBatch"]


@dataclass(frozen=True, kw_only=True)
class Efficiency:
    """Achieved fractions of peak; named so they can be fitted (benchmarks/calibrate.py).

    Defaults and their sources are documented where they are set (perf/step.py).
    """
    compute: float = 0.7           # fraction of dense peak FLOP/s reached by GEMMs
    memory: float = 0.8            # fraction of peak HBM bandwidth reached by streaming reads
    attention_compute: float = 0.5
    attention_memory: float = 0.7
    comm: float = 0.7              # fraction of link bandwidth reached by all-reduce
    step_overhead_s: float = 0.0   # fixed per engine step (scheduler, launch, sampling)


@dataclass(frozen=True, kw_only=True)
class Deployment:
    model: ModelSpec
    gpu: GPU
    tp: int = 1
    pp: int = 1
    ep: int = 1                    # expert-parallel degree (MoE only): experts sharded over ep of the tp*pp GPUs
    weight_dtype: str = "bf16"     # bf16 | fp16 | fp8 | int8 | int4 (AWQ/GPTQ, group 128)
    kv_dtype: str = "bf16"         # bf16 | fp16 | fp8
    gpu_memory_utilization: float = 0.9   # vLLM's fraction of GPU memory the engine may use
    max_num_seqs: int = 256        # vLLM default scheduler limit
    max_num_batched_tokens: int = 8192    # token budget per step (chunked prefill)
    block_size: int = 16           # KV block size in tokens (vLLM default)
    efficiency: Efficiency = field(default_factory=Efficiency)

    @property
    def num_gpus(self) -> int:
        return self.tp * self.pp


@dataclass(frozen=True, slots=True)
class StepBatch:
    """One engine step: prefill chunks and decoding sequences.

    ``prefill_chunks``: (new_tokens, context_before) per prefilling sequence — the chunk
    length this step and the tokens already in that sequence's KV cache.
    Decode step time depends on the decoding sequences only through their count and
    the sum of their contexts (the attention term is linear in context).
    """
    prefill_chunks: tuple[tuple[int, int], ...] = ()
    num_decode: int = 0
    decode_context_sum: int = 0
