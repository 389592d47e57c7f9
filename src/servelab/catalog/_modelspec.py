"""Transformer shape records: what servelab needs to know about a model.

Everything the memory and roofline models consume, and nothing else: layer count,
widths, attention layout (MHA/GQA/MLA), MLP or mixture-of-experts layout, vocabulary.
Widths are element counts (no units); ``max_context`` is in tokens.
Re-exported by :mod:`servelab.catalog.models`, which documents the catalog.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["MoESpec", "MLASpec", "ModelSpec"]


@dataclass(frozen=True, kw_only=True)
class MoESpec:
    num_experts: int                    # routed experts per MoE layer
    experts_per_token: int              # top-k routed experts per token
    expert_intermediate_size: int       # FFN width of one routed expert
    num_shared_experts: int = 0         # always-active experts (DeepSeek, Qwen2-MoE)
    shared_expert_intermediate_size: int = 0  # FFN width of ONE shared expert
    first_dense_layers: int = 0         # leading layers with a dense MLP instead (DeepSeek first_k_dense_replace)
    dense_intermediate_size: int = 0    # FFN width of those dense layers
    router_bias: bool = False           # per-expert router bias (DeepSeek-V3 e_score_correction_bias)


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
    """Shape of a decoder-only transformer.

    ``intermediate_size`` is the dense gated-MLP width. For MoE models it is the HF
    ``intermediate_size`` value: Mixtral uses it as the expert width, DeepSeek-V3 for its
    leading dense layers, Qwen3-MoE not at all (every layer is MoE); the MoE layout itself
    is in ``moe``. ``head_dim`` for MLA models is qk_nope + qk_rope (the query/key width).
    """
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
    sliding_window: int | None = None  # attention window in tokens (Mistral-7B-v0.1: 4096); None = full
    mtp_layers: int = 0                # multi-token-prediction layers in the checkpoint, NOT counted (DeepSeek-V3: 1)
    checkpoint_dtype: str = "bf16"     # dtype of the published weights (DeepSeek-V3: fp8)
    display_name: str = ""             # e.g. "Llama 3.1 8B"

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for ``--json`` output and run metadata)."""
        d = asdict(self)
        d["aliases"] = list(self.aliases)
        return d
