"""Parameter counts of a transformer, split by the component they belong to.

The performance model needs more than a total: linear layers are quantized and
sharded by tensor parallelism, routed experts by expert parallelism, embeddings and
the LM head by vocabulary (vLLM's ``VocabParallelEmbedding``/``ParallelLMHead``),
while norms, biases and the MoE router stay in bf16. These counts are unsharded
(whole model) element counts.

Shapes follow the Hugging Face implementations (``modeling_llama``, ``modeling_qwen2``,
``modeling_qwen3``, ``modeling_mixtral``, ``modeling_qwen3_moe``, ``modeling_deepseek_v3``):

* GQA attention: q ``h×(n_h·d)``, k and v ``h×(n_kv·d)``, o ``(n_h·d)×h``;
  q/k/v bias ``n_h·d + 2·n_kv·d`` (qwen2); per-head q/k RMSNorm ``2·d`` (qwen3).
* MLA (DeepSeek-V2 paper, arXiv:2405.04434): q_a ``h×r_q``, q_b ``r_q×n_h(d_nope+d_rope)``
  (or q ``h×n_h(d_nope+d_rope)`` without q-LoRA), kv_a ``h×(r_kv+d_rope)``,
  kv_b ``r_kv×n_h(d_nope+d_v)``, o ``n_h·d_v×h``; norms ``r_q + r_kv``.
* Gated MLP: gate, up ``h×I`` and down ``I×h`` = ``3·h·I``.
* MoE layer: router ``h×E`` + E routed experts of ``3·h·I_e`` + shared experts.
* Two RMSNorms per layer (``2·h``), a final norm (``h``), embedding ``V×h`` and an LM
  head ``V×h`` unless tied. DeepSeek-V3's multi-token-prediction layer is not served
  by default and is not counted.
"""

from __future__ import annotations

from ..catalog.models import ModelSpec

__all__ = [
    "attention_linear_params", "attention_small_params", "dense_mlp_params",
    "expert_params", "shared_expert_params", "router_params", "num_moe_layers",
    "num_dense_layers", "dense_intermediate", "embedding_params", "lm_head_params", "layer_norm_params",
    "total_params", "active_params",
]


def attention_linear_params(m: ModelSpec) -> int:
    """Quantizable projection weights of one attention block."""
    h = m.hidden_size
    if m.mla is not None:
        a = m.mla
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        if a.q_lora_rank:
            q = h * a.q_lora_rank + a.q_lora_rank * m.num_attention_heads * qk
        else:
            q = h * m.num_attention_heads * qk
        kv = h * (a.kv_lora_rank + a.qk_rope_head_dim)
        kv += a.kv_lora_rank * m.num_attention_heads * (a.qk_nope_head_dim + a.v_head_dim)
        o = m.num_attention_heads * a.v_head_dim * h
        return q + kv + o
    d = m.head_dim
    q = h * m.num_attention_heads * d
    kv = 2 * h * m.num_kv_heads * d
    o = m.num_attention_heads * d * h
    return q + kv + o


def attention_small_params(m: ModelSpec) -> int:
    """Biases and norms inside one attention block (kept in bf16)."""
    if m.mla is not None:
        return (m.mla.q_lora_rank or 0) + m.mla.kv_lora_rank
    n = 0
    if m.attention_bias:
        n += (m.num_attention_heads + 2 * m.num_kv_heads) * m.head_dim
    if m.qk_norm:
        n += 2 * m.head_dim
    return n


def dense_mlp_params(m: ModelSpec, intermediate: int | None = None) -> int:
    """Gated MLP of one dense layer: gate, up and down projections."""
    i = m.intermediate_size if intermediate is None else intermediate
    return 3 * m.hidden_size * i


def expert_params(m: ModelSpec) -> int:
    """One routed expert (gated MLP of width ``expert_intermediate_size``)."""
    assert m.moe is not None
    return 3 * m.hidden_size * m.moe.expert_intermediate_size


def shared_expert_params(m: ModelSpec) -> int:
    """All shared (always active) experts of one MoE layer."""
    assert m.moe is not None
    return m.moe.num_shared_experts * 3 * m.hidden_size * m.moe.shared_expert_intermediate_size


def router_params(m: ModelSpec) -> int:
    assert m.moe is not None
    return m.hidden_size * m.moe.num_experts


def num_moe_layers(m: ModelSpec) -> int:
    return 0 if m.moe is None else m.num_layers - m.moe.first_dense_layers


def num_dense_layers(m: ModelSpec) -> int:
    return m.num_layers - num_moe_layers(m)


def dense_intermediate(m: ModelSpec) -> int:
    """Width of the dense MLP layers (DeepSeek's leading dense layers differ)."""
    if m.moe is not None and m.moe.dense_intermediate_size:
        return m.moe.dense_intermediate_size
    return m.intermediate_size


def embedding_params(m: ModelSpec) -> int:
    return m.vocab_size * m.hidden_size


def lm_head_params(m: ModelSpec) -> int:
    """LM head weights stored separately (0 when tied to the embedding)."""
    return 0 if m.tie_word_embeddings else m.vocab_size * m.hidden_size


def layer_norm_params(m: ModelSpec) -> int:
    """The two RMSNorms of one decoder layer."""
    return 2 * m.hidden_size


def _layer_params(m: ModelSpec, moe_layer: bool, *, active: bool) -> int:
    n = attention_linear_params(m) + attention_small_params(m) + layer_norm_params(m)
    if not moe_layer:
        return n + dense_mlp_params(m, dense_intermediate(m))
    assert m.moe is not None
    experts = m.moe.experts_per_token if active else m.moe.num_experts
    return n + router_params(m) + experts * expert_params(m) + shared_expert_params(m)


def total_params(m: ModelSpec) -> int:
    """All weights (embeddings, LM head unless tied, norms, every expert)."""
    n = num_dense_layers(m) * _layer_params(m, False, active=False)
    if m.moe is not None:
        n += num_moe_layers(m) * _layer_params(m, True, active=False)
    return n + embedding_params(m) + lm_head_params(m) + m.hidden_size


def active_params(m: ModelSpec) -> int:
    """Weights touched per token: top-k routed and shared experts for MoE."""
    n = num_dense_layers(m) * _layer_params(m, False, active=True)
    if m.moe is not None:
        n += num_moe_layers(m) * _layer_params(m, True, active=True)
    return n + embedding_params(m) + lm_head_params(m) + m.hidden_size
