"""Hugging Face ``config.json`` -> :class:`ModelSpec`.

Supported ``model_type`` values: llama, mistral, qwen2, qwen3, mixtral, qwen3_moe,
deepseek_v3. Field names and defaults follow the ``transformers`` configuration classes
of each family:

* ``head_dim`` absent -> ``hidden_size // num_attention_heads``;
  ``num_key_value_heads`` absent -> ``num_attention_heads`` (MHA).
* qwen2 always has q/k/v biases; qwen3 / qwen3_moe always have per-head q/k RMSNorms.
* Sliding window: mistral's ``sliding_window``; qwen2/qwen3 only when
  ``use_sliding_window`` is true.
* qwen3_moe: ``decoder_sparse_step`` must be 1; ``mlp_only_layers`` must be empty or a
  leading block (mapped to ``first_dense_layers``).
* deepseek_v3: ``first_k_dense_replace``, ``n_shared_experts``, ``moe_intermediate_size``,
  ``n_routed_experts``, ``num_experts_per_tok``, ``q_lora_rank``, ``kv_lora_rank``,
  ``qk_nope_head_dim``, ``qk_rope_head_dim``, ``v_head_dim``; ``moe_layer_freq`` must be 1;
  ``num_nextn_predict_layers`` (MTP) is recorded in ``mtp_layers`` and not counted.
* ``quantization_config`` -> ``checkpoint_dtype``: fp8 / fbgemm_fp8 -> fp8; AWQ/GPTQ by
  ``bits`` (4 -> int4, 8 -> int8); compressed-tensors by its weights' ``num_bits`` and
  ``type`` (8 float -> fp8, 8 int -> int8, 4 int -> int4, 4 float -> fp4); ModelOpt by
  ``quant_algo`` (FP8, NVFP4). Recorded only: ``estimate --dtype`` chooses the weights.
* Ignored on purpose (no effect on shapes): ``rope_scaling``, ``rope_theta``,
  ``rms_norm_eps``, ``torch_dtype``, routing details (``topk_method``, ``n_group``,
  ``scoring_func``, ``norm_topk_prob``), token ids.

Anything the model cannot represent raises :class:`UnsupportedModelError` naming the
field or the architecture and what is supported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, UnsupportedModelError
from ._modelspec import MLASpec, MoESpec, ModelSpec

__all__ = ["SUPPORTED_MODEL_TYPES", "load_hf_config", "spec_from_hf_dict"]

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen3_moe", "deepseek_v3")
_SUPPORTED = ", ".join(SUPPORTED_MODEL_TYPES)

# Quantized checkpoints: the quant method -> weight dtype of the checkpoint (AWQ/GPTQ by
# their ``bits``, compressed-tensors by its weight ``num_bits``/``type``, ModelOpt by
# ``quant_algo``; see _checkpoint_dtype).
_QUANT_DTYPES = {"fp8": "fp8", "fbgemm_fp8": "fp8", "awq": "int4", "gptq": "int4"}
_MODELOPT_ALGOS = {"FP8": "fp8", "NVFP4": "fp4", "W4A16_AWQ": "int4", "W4A8_AWQ": "int4"}


def _req(cfg: Mapping[str, Any], key: str, where: str) -> int:
    if key not in cfg or cfg[key] is None:
        raise UnsupportedModelError(f"{where}: missing required field {key!r}")
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UnsupportedModelError(f"{where}: field {key!r} must be a positive integer, got {value!r}")
    return value


def _opt(cfg: Mapping[str, Any], key: str, default: Any) -> Any:
    value = cfg.get(key)
    return default if value is None else value


def _opt_int(cfg: Mapping[str, Any], key: str, default: Any, where: str) -> Any:
    """An optional positive integer field (``default`` when absent or null)."""
    value = cfg.get(key)
    if value is None:
        return default
    return _req(cfg, key, where)


def _opt_count(cfg: Mapping[str, Any], key: str, default: int, where: str, most: int | None = None) -> int:
    """An optional non-negative integer field (a count), at most ``most``."""
    value = cfg.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UnsupportedModelError(f"{where}: field {key!r} must be a non-negative integer, got {value!r}")
    _unsupported_if(most is not None and value > most, where, key, value, f"at most {most}")
    return value


def _opt_bool(cfg: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = cfg.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise UnsupportedModelError(f"{where}: field {key!r} must be true or false, got {value!r}")
    return value


def _unsupported_if(cond: bool, where: str, field: str, value: Any, supported: str) -> None:
    if cond:
        raise UnsupportedModelError(
            f"{where}: unsupported {field}={value!r}; supported: {supported}"
        )


def _bits_dtype(bits: Any, kind: str) -> str:
    """Weight dtype of ``bits``-wide weights of ``kind`` "int" or "float"."""
    names = {("int", 8): "int8", ("int", 4): "int4", ("float", 8): "fp8", ("float", 4): "fp4"}
    return names.get((kind, bits), f"{kind}{bits}")


def _checkpoint_dtype(cfg: Mapping[str, Any], where: str) -> str:
    q = cfg.get("quantization_config")
    if q is not None and not isinstance(q, Mapping):
        raise UnsupportedModelError(
            f"{where}: field 'quantization_config' must be an object, got {type(q).__name__}")
    if q:
        method = str(q.get("quant_method", "")).lower()
        if method in ("awq", "gptq") and q.get("bits") is not None:
            return _bits_dtype(q.get("bits"), "int")
        if method == "compressed-tensors":
            groups = q.get("config_groups") or {}
            weights = [g.get("weights") or {} for g in groups.values() if isinstance(g, Mapping)]
            kinds = {_bits_dtype(w.get("num_bits"), str(w.get("type", "int"))) for w in weights}
            return kinds.pop() if len(kinds) == 1 else "compressed-tensors"
        if method == "modelopt":
            algo = str(q.get("quant_algo", "")).upper()
            return _MODELOPT_ALGOS.get(algo, f"modelopt {algo}".strip())
        return _QUANT_DTYPES.get(method, method or "unknown")
    torch_dtype = str(cfg.get("torch_dtype", "bfloat16"))
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(torch_dtype, torch_dtype)


def spec_from_hf_dict(cfg: Mapping[str, Any], *, name: str, source: str = "",
                      aliases: tuple[str, ...] = (), display_name: str = "") -> ModelSpec:
    """Build a ModelSpec from a parsed HF config mapping (see module doc)."""
    where = f"model config {name!r}"
    if not isinstance(cfg, Mapping):
        raise UnsupportedModelError(f"{where}: expected a JSON object, got {type(cfg).__name__}")
    mt = cfg.get("model_type")
    if mt is None:
        hint = " (multimodal config with a nested text_config)" if "text_config" in cfg else ""
        raise UnsupportedModelError(
            f"{where}: missing field 'model_type'{hint}; supported model types: {_SUPPORTED}")
    if mt not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedModelError(
            f"{where}: unsupported architecture model_type={mt!r}; supported: {_SUPPORTED}")

    hidden = _req(cfg, "hidden_size", where)
    layers = _req(cfg, "num_hidden_layers", where)
    heads = _req(cfg, "num_attention_heads", where)
    vocab = _req(cfg, "vocab_size", where)
    kv_heads = _opt_int(cfg, "num_key_value_heads", heads, where)
    head_dim = _opt_int(cfg, "head_dim", None, where)
    if head_dim is None:
        _unsupported_if(hidden % heads != 0, where, "hidden_size/num_attention_heads",
                        f"{hidden}/{heads}", "hidden_size divisible by num_attention_heads, or an explicit head_dim")
        head_dim = hidden // heads
    _unsupported_if(heads % kv_heads != 0, where, "num_key_value_heads", kv_heads,
                    f"a divisor of num_attention_heads={heads}")
    act = _opt(cfg, "hidden_act", "silu")
    _unsupported_if(act not in ("silu", "swish"), where, "hidden_act", act, "silu (gated SwiGLU MLP)")
    _unsupported_if(bool(cfg.get("mlp_bias")), where, "mlp_bias", cfg.get("mlp_bias"), "false")

    attention_bias = False
    if mt in ("llama", "mistral", "mixtral"):
        _unsupported_if(bool(cfg.get("attention_bias")), where, "attention_bias",
                        cfg.get("attention_bias"), f"false for {mt}")
    elif mt == "qwen2":
        attention_bias = True  # Qwen2Attention: q/k/v have bias, o does not
    elif mt in ("qwen3", "qwen3_moe", "deepseek_v3"):
        _unsupported_if(bool(cfg.get("attention_bias")), where, "attention_bias",
                        cfg.get("attention_bias"), f"false for {mt}")

    sliding = None
    if mt == "mistral":
        sliding = cfg.get("sliding_window")
    elif mt in ("qwen2", "qwen3", "qwen3_moe") and cfg.get("use_sliding_window"):
        sliding = cfg.get("sliding_window")
        max_window_layers = cfg.get("max_window_layers", layers)
        _unsupported_if(max_window_layers not in (0, layers) and max_window_layers < layers,
                        where, "max_window_layers", max_window_layers,
                        f"sliding window on all {layers} layers or none")
    elif mt == "mixtral" and cfg.get("sliding_window"):
        sliding = cfg.get("sliding_window")

    moe: MoESpec | None = None
    mla: MLASpec | None = None
    intermediate = _opt(cfg, "intermediate_size", 0)
    mtp = 0
    if mt == "mixtral":
        intermediate = _req(cfg, "intermediate_size", where)
        moe = MoESpec(num_experts=_req(cfg, "num_local_experts", where),
                      experts_per_token=_req(cfg, "num_experts_per_tok", where),
                      expert_intermediate_size=intermediate)
    elif mt == "qwen3_moe":
        step = _opt(cfg, "decoder_sparse_step", 1)
        _unsupported_if(step != 1, where, "decoder_sparse_step", step, "1 (every layer MoE)")
        dense_layers = list(_opt(cfg, "mlp_only_layers", []))
        _unsupported_if(len(dense_layers) >= layers or dense_layers != list(range(len(dense_layers))),
                        where, "mlp_only_layers",
                        dense_layers, "[] or a leading block [0, 1, ..., k-1]")
        if dense_layers:
            intermediate = _req(cfg, "intermediate_size", where)
        moe = MoESpec(num_experts=_req(cfg, "num_experts", where),
                      experts_per_token=_req(cfg, "num_experts_per_tok", where),
                      expert_intermediate_size=_req(cfg, "moe_intermediate_size", where),
                      first_dense_layers=len(dense_layers),
                      dense_intermediate_size=intermediate if dense_layers else 0)
    elif mt == "deepseek_v3":
        freq = _opt(cfg, "moe_layer_freq", 1)
        _unsupported_if(freq != 1, where, "moe_layer_freq", freq, "1")
        intermediate = _req(cfg, "intermediate_size", where)
        n_shared = _opt_count(cfg, "n_shared_experts", 0, where)
        moe_width = _req(cfg, "moe_intermediate_size", where)
        moe = MoESpec(num_experts=_req(cfg, "n_routed_experts", where),
                      experts_per_token=_req(cfg, "num_experts_per_tok", where),
                      expert_intermediate_size=moe_width,
                      num_shared_experts=n_shared,
                      shared_expert_intermediate_size=moe_width if n_shared else 0,
                      first_dense_layers=_opt_count(cfg, "first_k_dense_replace", 0, where, layers - 1),
                      dense_intermediate_size=intermediate,
                      router_bias=_opt(cfg, "topk_method", "noaux_tc") == "noaux_tc")
        q_lora = cfg.get("q_lora_rank")
        mla = MLASpec(kv_lora_rank=_req(cfg, "kv_lora_rank", where),
                      q_lora_rank=int(q_lora) if q_lora else None,
                      qk_nope_head_dim=_req(cfg, "qk_nope_head_dim", where),
                      qk_rope_head_dim=_req(cfg, "qk_rope_head_dim", where),
                      v_head_dim=_req(cfg, "v_head_dim", where))
        head_dim = mla.qk_nope_head_dim + mla.qk_rope_head_dim
        mtp = _opt_count(cfg, "num_nextn_predict_layers", 0, where)
    else:
        intermediate = _req(cfg, "intermediate_size", where)

    if moe is not None:
        _unsupported_if(moe.experts_per_token > moe.num_experts, where, "num_experts_per_tok",
                        moe.experts_per_token, f"at most the {moe.num_experts} routed experts")
    return ModelSpec(
        name=name, family=mt, num_layers=layers, hidden_size=hidden,
        num_attention_heads=heads, num_kv_heads=int(kv_heads), head_dim=int(head_dim),
        intermediate_size=int(intermediate), vocab_size=vocab,
        tie_word_embeddings=_opt_bool(cfg, "tie_word_embeddings", False, where),
        attention_bias=attention_bias, qk_norm=mt in ("qwen3", "qwen3_moe"),
        max_context=_opt_int(cfg, "max_position_embeddings", 4096, where),
        moe=moe, mla=mla, source=source, aliases=aliases,
        sliding_window=int(sliding) if sliding else None, mtp_layers=mtp,
        checkpoint_dtype=_checkpoint_dtype(cfg, where), display_name=display_name or name,
    )


def load_hf_config(path: str | Path, *, name: str | None = None) -> ModelSpec:
    """Parse an HF config; UnsupportedModelError names the unsupported field/architecture."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise ConfigError(f"model config {str(path)!r} not found (expected a config.json or a folder holding one)")
    try:
        cfg = json.loads(p.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"model config {str(p)!r} is not valid JSON: {exc}") from None
    if name is None:
        name = p.parent.name or p.stem
    return spec_from_hf_dict(cfg, name=name, source=str(p))
