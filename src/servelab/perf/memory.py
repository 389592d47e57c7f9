"""Memory budget of one replica: weights, KV cache, activations, runtime overhead.

Per GPU (the pipeline stage with the least room decides)::

    usable     = gpu_memory_utilization · memory_bytes                 (vLLM semantics)
    weights    = quantized_elems · bytes(weight_dtype) + unquantized_elems · 2
    activation = N · 2 B · (4h + (q + k + v widths)/tp + 3·I_eff/tp [+ k·h for MoE])
                 + max_num_seqs · (V/tp) · 4 B                      (N = max_num_batched_tokens)
    overhead   = framework + CUDA graphs [+ NCCL buffers when tp·pp > 1]
    kv_bytes   = usable − weights − activation − overhead
    capacity   = floor(kv_bytes / kv_bytes_per_token_per_gpu / block_size) · block_size

KV bytes per token (whole replica): GQA/MHA ``2·L·n_kv·d·b``; MLA ``L·(r_kv + d_rope)·b``.
Per GPU: KV heads split over TP (``max(1, n_kv/tp)`` — replicated when ``n_kv < tp``),
MLA's latent replicated on every TP rank (vLLM), layers split over PP.

The activation peak mirrors what vLLM's start-up profile run allocates for a
``max_num_batched_tokens`` forward pass: the residual stream and norm output, the QKV
output, the gate/up output and its activation (``I_eff = I`` dense, ``k·I_e`` plus
shared experts for MoE, whose fused kernel also keeps an ``N·k·h`` output cache), and
the fp32 logits of ``max_num_seqs`` rows. It is an estimate, not a profile.

Runtime overhead (estimates from typical vLLM start-up logs, stated as such): CUDA
context, cuBLAS workspaces and allocator slack ≈ 0.75 GiB; CUDA-graph pools
("Graph capturing finished … took 0.3–1.0 GiB") ≈ 0.5 GiB; NCCL and custom
all-reduce buffers ≈ 0.5 GiB when the replica spans GPUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..catalog.models import ModelSpec
from ..units import GiB, fmt_bytes
from .deployment import Deployment, validate_deployment
from .quant import UNQUANTIZED_BYTES, kv_storage_bytes, weight_storage_bytes
from .sharding import kv_elems_per_token_per_layer_gpu, kv_heads_per_gpu, stage_params

__all__ = [
    "MemoryBudget", "memory_budget", "kv_bytes_per_token", "weight_bytes_total",
    "FRAMEWORK_OVERHEAD_BYTES", "CUDA_GRAPH_BYTES", "NCCL_BUFFER_BYTES",
]

FRAMEWORK_OVERHEAD_BYTES = 0.75 * GiB   # CUDA context + workspaces (estimate, vLLM logs)
CUDA_GRAPH_BYTES = 0.5 * GiB            # CUDA-graph memory pool (estimate, vLLM logs)
NCCL_BUFFER_BYTES = 0.5 * GiB           # NCCL + custom all-reduce buffers (estimate)
ACT_BYTES = 2.0                         # bf16 activations
LOGIT_BYTES = 4.0                       # fp32 logits in the sampler


@dataclass(frozen=True, kw_only=True)
class MemoryBudget:
    """Per GPU unless the name says per replica."""
    gpu_memory_bytes: float
    usable_bytes: float            # gpu_memory_utilization * memory
    weight_bytes: float            # per GPU (the most loaded pipeline stage)
    activation_bytes: float        # peak for the token budget, per GPU
    overhead_bytes: float          # CUDA graphs, NCCL buffers, framework
    kv_bytes: float                # left for the KV cache, per GPU
    kv_bytes_per_token: float      # per replica (all layers), before sharding
    kv_bytes_per_token_per_gpu: float
    kv_capacity_tokens: int        # per replica
    kv_blocks: int                 # per replica
    feasible: bool
    reason: str                    # "" when feasible
    weight_bytes_per_replica: float = 0.0   # summed over every GPU of the replica
    block_size: int = 16
    notes: tuple[str, ...] = ()    # how the configuration really runs (weight-only, …)

    def max_concurrency(self, context_tokens: int) -> int:
        """Sequences of ``context_tokens`` that fit at once (block-rounded, KV limit only)."""
        if not self.feasible:
            return 0
        blocks_per_seq = max(1, math.ceil(context_tokens / self.block_size))
        return self.kv_blocks // blocks_per_seq


def kv_bytes_per_token(model: ModelSpec, kv_dtype: str) -> float:
    """KV-cache bytes one token occupies across all layers of the whole model."""
    b = kv_storage_bytes(kv_dtype)
    if model.mla is not None:
        return model.num_layers * (model.mla.kv_lora_rank + model.mla.qk_rope_head_dim) * b
    return 2.0 * model.num_layers * model.num_kv_heads * model.head_dim * b


def weight_bytes_total(model: ModelSpec, weight_dtype: str) -> float:
    """Unsharded weight bytes of the model in ``weight_dtype`` (linear layers quantized)."""
    (stage,) = stage_params(model, 1, 1)
    return stage.quantized * weight_storage_bytes(weight_dtype) + stage.unquantized * UNQUANTIZED_BYTES


def _activation_bytes(dep: Deployment) -> float:
    m, tp, n = dep.model, dep.tp, dep.max_num_batched_tokens
    if m.mla is not None:
        a = m.mla
        qkv = (m.num_attention_heads / tp) * (a.qk_nope_head_dim + a.qk_rope_head_dim + a.v_head_dim) \
            + a.kv_lora_rank + a.qk_rope_head_dim
    else:
        qkv = (m.num_attention_heads / tp + 2 * kv_heads_per_gpu(m, tp)) * m.head_dim
    inter = float(m.intermediate_size)
    moe_out = 0.0
    if m.moe is not None:
        e = m.moe
        moe_i = e.experts_per_token * e.expert_intermediate_size \
            + e.num_shared_experts * e.shared_expert_intermediate_size
        inter = max(inter if e.first_dense_layers else 0.0, float(moe_i))
        moe_out = e.experts_per_token * m.hidden_size
    per_token = ACT_BYTES * (4 * m.hidden_size + qkv + 3 * inter / tp + moe_out)
    logits = dep.max_num_seqs * (m.vocab_size / tp) * LOGIT_BYTES
    return n * per_token + logits


def memory_budget(dep: Deployment) -> MemoryBudget:
    """Per-GPU memory budget and the replica's KV capacity; ConfigError on bad values."""
    notes = validate_deployment(dep)
    m, g = dep.model, dep.gpu
    wb = weight_storage_bytes(dep.weight_dtype)
    kvb = kv_storage_bytes(dep.kv_dtype)
    usable = dep.gpu_memory_utilization * g.memory_bytes
    act = _activation_bytes(dep)
    overhead = FRAMEWORK_OVERHEAD_BYTES + CUDA_GRAPH_BYTES
    if dep.num_gpus > 1:
        overhead += NCCL_BUFFER_BYTES
    per_layer_kv = kv_elems_per_token_per_layer_gpu(m, dep.tp) * kvb

    stages = stage_params(m, dep.tp, dep.pp)
    weights = [s.quantized * wb + s.unquantized * UNQUANTIZED_BYTES for s in stages]
    weight_gpu = max(weights)
    # The stage with the fewest tokens of room limits the replica.
    tokens, kv_free, kv_tok_gpu = math.inf, 0.0, 0.0
    for s, w in zip(stages, weights):
        free = usable - w - act - overhead
        per_tok = s.num_layers * per_layer_kv
        t = free / per_tok if per_tok > 0 else math.inf
        if t < tokens:
            tokens, kv_free, kv_tok_gpu = t, free, per_tok

    where = f"TP{dep.tp}" + (f" PP{dep.pp}" if dep.pp > 1 else "")
    reason = ""
    if weight_gpu > usable:
        reason = (f"weights need {fmt_bytes(weight_gpu)} per GPU at {where}; "
                  f"{fmt_bytes(g.memory_bytes)} available ({fmt_bytes(usable)} at "
                  f"gpu_memory_utilization {dep.gpu_memory_utilization:g})")
    elif kv_free <= 0:
        reason = (f"weights ({fmt_bytes(weight_gpu)}) + activations ({fmt_bytes(act)}) + "
                  f"runtime overhead ({fmt_bytes(overhead)}) need "
                  f"{fmt_bytes(weight_gpu + act + overhead)} per GPU at {where}; only "
                  f"{fmt_bytes(usable)} usable at gpu_memory_utilization "
                  f"{dep.gpu_memory_utilization:g}, nothing left for the KV cache")
    blocks = 0 if reason else int(tokens // dep.block_size)
    if not reason and blocks < 1:
        reason = (f"KV cache room per GPU ({fmt_bytes(kv_free)}) holds fewer than one block "
                  f"of {dep.block_size} tokens at {where}")
    feasible = not reason
    return MemoryBudget(
        gpu_memory_bytes=g.memory_bytes,
        usable_bytes=usable,
        weight_bytes=weight_gpu,
        activation_bytes=act,
        overhead_bytes=overhead,
        kv_bytes=max(0.0, kv_free),
        kv_bytes_per_token=kv_bytes_per_token(m, dep.kv_dtype),
        kv_bytes_per_token_per_gpu=kv_tok_gpu,
        kv_capacity_tokens=blocks * dep.block_size if feasible else 0,
        kv_blocks=blocks if feasible else 0,
        feasible=feasible,
        reason=reason,
        weight_bytes_per_replica=sum(weights) * dep.tp,
        block_size=dep.block_size,
        notes=notes,
    )
