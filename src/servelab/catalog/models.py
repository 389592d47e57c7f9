"""Model catalog: transformer shapes of built-in models and any HF ``config.json``.

Data: ``catalog/data/models.yaml`` (each entry cites its Hugging Face config).
Parameter counts are computed from the shapes and tested against published totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MoESpec", "MLASpec", "ModelSpec", "get_model", "list_models", "load_hf_config",
    "param_count", "active_param_count",
]


@dataclass(frozen=True, kw_only=True)
class MoESpec:
    num_experts: int                    # routed experts per MoE layer
    experts_per_token: int              # top-k routed experts per token
    expert_intermediate_size: int       # FFN width of one routed expert
    num_shared_experts: int = 0         # always-active experts (DeepSeek, Qwen2-MoE)
    shared_expert_intermediate_size: int = 0  # FFN width of ONE shared expert
    first_dense_layers: int = 0         # leading layers with a dense MLP instead (DeepSeek first_k_dense_replace)
    dense_intermediate_size: int = 0    # FFN width of those dense layers


@dataclass(frozen=True, kw_only=True)
class MLASpec:
    """DeepSeek multi-head latent attention (DeepSeek-V2 paper, arXiv:2405.04434)."""
    kv_lora_rank: int          # compressed KV latent width (512 on V3)
    q_lora_rank: int | None    # compressed Q width (1536 on V3); None = full-rank Q
    qk_nope_head_dim: int      # 128 on V3
    qk_rope_head_dim: int      # 64 on V3 (the decoupled RoPE key, shared across heads)
    v_head_dim: int            # 128 on V3


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    name: str                  # canonical id, e.g. "llama-3.1-8b"
    family: str                # HF model_type: llama, mistral, qwen2, qwen3, mixtral, qwen3_moe, deepseek_v3
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int     # dense MLP width (gated: gate, up and down projections)
    vocab_size: int
    tie_word_embeddings: bool = False
    attention_bias: bool = False   # q/k/v projection bias (qwen2)
    qk_norm: bool = False          # per-head q/k RMSNorm weights (qwen3)
    max_context: int = 4096
    moe: MoESpec | None = None
    mla: MLASpec | None = None
    source: str = ""
    aliases: tuple[str, ...] = ()


def get_model(name_or_path: str) -> ModelSpec:
    """A built-in model by id/alias, or a path to an HF ``config.json`` (or its folder)."""
    raise NotImplementedError


def list_models() -> list[ModelSpec]:
    raise NotImplementedError


def load_hf_config(path: str | Path, *, name: str | None = None) -> ModelSpec:
    """Parse an HF config; UnsupportedModelError names the unsupported field/architecture."""
    raise NotImplementedError


def param_count(model: ModelSpec) -> int:
    """Total parameters (embeddings, LM head unless tied, norms, all experts)."""
    raise NotImplementedError


def active_param_count(model: ModelSpec) -> int:
    """Parameters touched per token (top-k routed + shared experts for MoE)."""
    raise NotImplementedError
