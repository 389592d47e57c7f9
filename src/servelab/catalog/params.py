"""Parameter counts from a model's shape.

Counts every weight tensor of the Hugging Face implementation of each family
(``transformers`` ``modeling_llama``, ``modeling_qwen2``, ``modeling_qwen3``,
``modeling_mixtral``, ``modeling_qwen3_moe``, ``modeling_deepseek_v3``):

* embedding ``V·h``; LM head ``V·h`` unless tied; final RMSNorm ``h``.
* per layer: two RMSNorms ``2h``;
  attention (MHA/GQA) ``h·(H·d) + 2·h·(K·d) + (H·d)·h``, plus q/k/v bias
  ``H·d + 2·K·d`` (qwen2) and per-head q/k norms ``2d`` (qwen3);
  attention (MLA, DeepSeek-V2 arXiv:2405.04434 §2.1) with ``r_q`` = q_lora_rank,
  ``r_kv`` = kv_lora_rank, ``n`` = nope, ``p`` = rope, ``v`` = v_head_dim:
  ``h·r_q + r_q + r_q·H(n+p)`` (or ``h·H(n+p)`` without a Q LoRA) ``+ h·(r_kv+p) + r_kv
  + r_kv·H(n+v) + H·v·h``;
  gated MLP ``3·h·f``; MoE layer ``E·3·h·f_e + S·3·h·f_s + h·E`` (router) ``+ E`` (router
  bias, DeepSeek-V3).
* MTP (multi-token prediction) layers are not counted (they are a training aid that
  serving engines drop unless speculative decoding uses them); :func:`mtp_param_count`
  gives their size as stored in the checkpoint (DeepSeek-V3 README: 685B on Hugging Face
  = 671B main model + 14B MTP module): per MTP layer one decoder layer (of the last
  layer's kind) + ``enorm``/``hnorm`` ``2h`` + ``eh_proj`` ``2h·h`` + head norm ``h`` +
  its own copies of the embedding and LM head ``2·V·h``.

Active parameters: the same sum with ``E`` replaced by the top-k routed experts in
the expert term (the router still runs over all ``E``); embeddings and LM head are
included, as in the published "active" figures (e.g. Mixtral 12.9B).
"""

from __future__ import annotations

from ._modelspec import ModelSpec

__all__ = ["param_count", "active_param_count", "attention_params_per_layer",
           "mlp_params_per_layer", "embedding_params", "mtp_param_count"]


def attention_params_per_layer(m: ModelSpec) -> int:
    """Weights of one attention block (projections, biases, q/k norms)."""
    h, H = m.hidden_size, m.num_attention_heads
    if m.mla is not None:
        a = m.mla
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        if a.q_lora_rank:
            q = h * a.q_lora_rank + a.q_lora_rank + a.q_lora_rank * H * qk
        else:
            q = h * H * qk
        kv = h * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank \
            + a.kv_lora_rank * H * (a.qk_nope_head_dim + a.v_head_dim)
        o = H * a.v_head_dim * h
        return q + kv + o
    d, K = m.head_dim, m.num_kv_heads
    n = h * H * d + 2 * h * K * d + H * d * h
    if m.attention_bias:
        n += H * d + 2 * K * d
    if m.qk_norm:
        n += 2 * d
    return n


def _moe_layer(m: ModelSpec, experts: int) -> int:
    e = m.moe
    assert e is not None
    h = m.hidden_size
    n = experts * 3 * h * e.expert_intermediate_size
    n += e.num_shared_experts * 3 * h * e.shared_expert_intermediate_size
    n += h * e.num_experts + (e.num_experts if e.router_bias else 0)
    return n


def mlp_params_per_layer(m: ModelSpec, *, active: bool = False) -> list[int]:
    """MLP/MoE weights of each layer (all experts, or the top-k if ``active``)."""
    h = m.hidden_size
    if m.moe is None:
        return [3 * h * m.intermediate_size] * m.num_layers
    e = m.moe
    dense = 3 * h * (e.dense_intermediate_size or m.intermediate_size)
    moe = _moe_layer(m, e.experts_per_token if active else e.num_experts)
    return [dense] * e.first_dense_layers + [moe] * (m.num_layers - e.first_dense_layers)


def embedding_params(m: ModelSpec) -> int:
    """Input embedding plus LM head (once if tied)."""
    return m.vocab_size * m.hidden_size * (1 if m.tie_word_embeddings else 2)


def _count(m: ModelSpec, active: bool) -> int:
    norms = 2 * m.hidden_size * m.num_layers + m.hidden_size
    return (embedding_params(m) + norms + attention_params_per_layer(m) * m.num_layers
            + sum(mlp_params_per_layer(m, active=active)))


def param_count(model: ModelSpec) -> int:
    """Total parameters (embeddings, LM head unless tied, norms, all experts)."""
    return _count(model, active=False)


def active_param_count(model: ModelSpec) -> int:
    """Parameters touched per token (top-k routed + shared experts for MoE)."""
    return _count(model, active=True)


def mtp_param_count(model: ModelSpec) -> int:
    """Weights of the checkpoint's MTP layers (0 without any); see the module doc."""
    if model.mtp_layers <= 0:
        return 0
    m, h = model, model.hidden_size
    layer = attention_params_per_layer(m) + mlp_params_per_layer(m)[-1] + 2 * h
    extra = 2 * h + 2 * h * h + h + 2 * m.vocab_size * h
    return m.mtp_layers * (layer + extra)
