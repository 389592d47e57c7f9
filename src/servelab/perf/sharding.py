"""How weights and KV cache split over the GPUs of one replica (vLLM's layout).

* Tensor parallelism (TP, Megatron-LM column/row split): q and o projections and the
  MLP are split by ``tp``; k/v projections hold ``max(1, n_kv/tp)`` KV heads per GPU
  (vLLM's ``QKVParallelLinear`` replicates KV heads when ``n_kv < tp``); the embedding
  and LM head are split over the vocabulary (``VocabParallelEmbedding``,
  ``ParallelLMHead``); norms, biases of replicated parts and the MoE router are
  replicated. MLA (DeepSeek) keeps ``q_a``/``kv_a`` projections replicated
  (vLLM's ``ReplicatedLinear`` for ``fused_qkv_a_proj``) and its latent KV cache is
  replicated on every TP rank (one latent per token, not per head).
* Expert parallelism (EP, within the TP group): each GPU holds ``E/ep`` experts, each
  split ``tp/ep`` ways, so routed-expert weights per GPU are ``E·P_e/tp`` whatever ``ep``.
* Pipeline parallelism (PP): contiguous layer ranges, as even as possible (the first
  ``L mod pp`` stages get one layer more); the embedding lives on the first stage, the
  final norm and LM head on the last (a tied LM head is a second copy when pp > 1).

All counts are per GPU and in elements; bytes follow from :mod:`servelab.perf.quant`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog.models import ModelSpec
from . import shapes

__all__ = [
    "StageParams", "stage_layer_ranges", "kv_heads_per_gpu", "attention_params_per_gpu",
    "stage_params", "kv_elems_per_token_per_layer_gpu",
]


@dataclass(frozen=True, kw_only=True)
class StageParams:
    """Per-GPU element counts on one pipeline stage, split by storage precision."""
    quantized: float       # linear layers (stored in the weight dtype)
    unquantized: float     # embeddings, LM head, norms, biases, router (bf16)
    num_layers: int
    num_moe_layers: int


def stage_layer_ranges(num_layers: int, pp: int) -> list[tuple[int, int]]:
    base, extra = divmod(num_layers, pp)
    out, start = [], 0
    for i in range(pp):
        n = base + (1 if i < extra else 0)
        out.append((start, start + n))
        start += n
    return out


def kv_heads_per_gpu(m: ModelSpec, tp: int) -> float:
    return max(1.0, m.num_kv_heads / tp)


def attention_params_per_gpu(m: ModelSpec, tp: int) -> float:
    """Projection weights of one attention block held by one GPU."""
    h = m.hidden_size
    if m.mla is not None:
        a = m.mla
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        heads = m.num_attention_heads / tp
        replicated = h * (a.kv_lora_rank + a.qk_rope_head_dim)
        if a.q_lora_rank:
            replicated += h * a.q_lora_rank
            sharded = a.q_lora_rank * heads * qk
        else:
            sharded = h * heads * qk
        sharded += a.kv_lora_rank * heads * (a.qk_nope_head_dim + a.v_head_dim)
        sharded += heads * a.v_head_dim * h
        return replicated + sharded
    d = m.head_dim
    q_o = 2 * h * (m.num_attention_heads / tp) * d
    kv = 2 * h * kv_heads_per_gpu(m, tp) * d
    return q_o + kv


def kv_elems_per_token_per_layer_gpu(m: ModelSpec, tp: int) -> float:
    """KV-cache elements one GPU stores per token per layer."""
    if m.mla is not None:
        return float(m.mla.kv_lora_rank + m.mla.qk_rope_head_dim)   # replicated across TP
    return 2.0 * kv_heads_per_gpu(m, tp) * m.head_dim


def _layer_params_gpu(m: ModelSpec, tp: int, moe_layer: bool) -> tuple[float, float]:
    """(quantized, unquantized) elements of one decoder layer on one GPU."""
    quant = attention_params_per_gpu(m, tp)
    unq = float(shapes.attention_small_params(m) + shapes.layer_norm_params(m))
    if moe_layer:
        assert m.moe is not None
        quant += m.moe.num_experts * shapes.expert_params(m) / tp
        quant += shapes.shared_expert_params(m) / tp
        unq += shapes.router_params(m)
    else:
        quant += shapes.dense_mlp_params(m, shapes.dense_intermediate(m)) / tp
    return quant, unq


def stage_params(m: ModelSpec, tp: int, pp: int) -> list[StageParams]:
    """Per-GPU parameter counts of every pipeline stage."""
    first_moe = m.num_layers - shapes.num_moe_layers(m)
    dense_q, dense_u = _layer_params_gpu(m, tp, False)
    moe_q, moe_u = _layer_params_gpu(m, tp, True) if m.moe is not None else (0.0, 0.0)
    vocab_shard = m.vocab_size * m.hidden_size / tp
    out = []
    ranges = stage_layer_ranges(m.num_layers, pp)
    for i, (start, end) in enumerate(ranges):
        n_moe = max(0, end - max(start, first_moe))
        n_dense = (end - start) - n_moe
        quant = n_dense * dense_q + n_moe * moe_q
        unq = n_dense * dense_u + n_moe * moe_u
        if i == 0:
            unq += vocab_shard                         # embedding
        if i == pp - 1:
            unq += m.hidden_size                       # final norm
            if not m.tie_word_embeddings or pp > 1:
                unq += vocab_shard                     # LM head (a copy when tied and pp > 1)
        out.append(StageParams(quantized=quant, unquantized=unq,
                               num_layers=end - start, num_moe_layers=n_moe))
    return out
