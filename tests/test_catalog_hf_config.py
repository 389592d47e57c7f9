"""HF config.json parsing on files written by the tests, one per supported family."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from servelab.catalog import get_model, load_hf_config
from servelab.catalog.models import active_param_count, param_count
from servelab.errors import ConfigError, UnsupportedModelError


def write(tmp_path: Path, cfg: dict[str, Any], name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(cfg))
    return path


# Real configs (shape fields) of small published checkpoints, with their published
# parameter counts as anchors.
QWEN25_05B = {  # https://huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
    "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
    "tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": 32768,
    "hidden_act": "silu", "rope_theta": 1000000.0, "torch_dtype": "bfloat16",
}
QWEN3_06B = {  # https://huggingface.co/Qwen/Qwen3-0.6B/blob/main/config.json
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 1024,
    "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
    "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
    "max_position_embeddings": 40960, "tie_word_embeddings": True, "attention_bias": False,
    "use_sliding_window": False, "hidden_act": "silu", "torch_dtype": "bfloat16",
}
LLAMA32_1B = {  # https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048,
    "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256,
    "max_position_embeddings": 131072, "tie_word_embeddings": True, "attention_bias": False,
    "mlp_bias": False, "hidden_act": "silu",
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
}
MISTRAL_7B_V01 = {  # https://huggingface.co/mistralai/Mistral-7B-v0.1/blob/main/config.json
    "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "vocab_size": 32000, "max_position_embeddings": 32768,
    "sliding_window": 4096, "tie_word_embeddings": False, "hidden_act": "silu",
}


def test_qwen2_small_matches_published(tmp_path: Path) -> None:
    m = load_hf_config(write(tmp_path, QWEN25_05B))
    assert m.family == "qwen2" and m.attention_bias and m.tie_word_embeddings
    assert m.head_dim == 896 // 14 == 64  # head_dim absent -> hidden / heads
    assert m.sliding_window is None       # use_sliding_window false
    # Published: 494,032,768 parameters (Qwen2.5-0.5B, "0.49B"; non-embedding 0.36B).
    assert param_count(m) == 494_032_768


def test_qwen3_small_matches_published(tmp_path: Path) -> None:
    m = load_hf_config(write(tmp_path, QWEN3_06B))
    assert m.family == "qwen3" and m.qk_norm and not m.attention_bias
    assert (m.head_dim, m.num_kv_heads) == (128, 8)
    # Qwen3-0.6B model card: 0.6B total, 0.44B non-embedding; unique (tied) count 596,049,920.
    assert param_count(m) == 596_049_920


def test_llama_small_tied_with_rope_scaling(tmp_path: Path) -> None:
    m = load_hf_config(write(tmp_path, LLAMA32_1B))
    assert m.family == "llama" and m.tie_word_embeddings and m.head_dim == 64
    # Llama-3.2-1B: 1,235,814,400 parameters ("1.24B" on its model page).
    assert param_count(m) == 1_235_814_400


def test_mistral_from_folder_and_get_model_path(tmp_path: Path) -> None:
    write(tmp_path, MISTRAL_7B_V01)
    m = load_hf_config(tmp_path)  # a folder holding config.json
    assert m.sliding_window == 4096 and m.name == tmp_path.name
    assert param_count(m) == 7_241_732_096  # Mistral-7B-v0.1, "7.24B"
    assert get_model(str(tmp_path / "config.json")) == m


def test_defaults_mha_when_kv_heads_absent(tmp_path: Path) -> None:
    cfg = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
           "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100}
    m = load_hf_config(write(tmp_path, cfg), name="tiny")
    assert (m.num_kv_heads, m.head_dim, m.tie_word_embeddings) == (4, 16, False)
    # embed 100*64 = 6400, head 6400; per layer attn 4*64*64 = 16384, mlp 3*64*128 = 24576,
    # norms 128 -> 41088 * 2 = 82176; final norm 64.  6400 + 6400 + 82176 + 64 = 95040
    assert param_count(m) == 95_040


def test_mixtral_tiny_hand_count(tmp_path: Path) -> None:
    cfg = {"model_type": "mixtral", "hidden_size": 32, "intermediate_size": 64,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "num_local_experts": 4, "num_experts_per_tok": 2, "vocab_size": 50}
    m = load_hf_config(write(tmp_path, cfg), name="tiny-mixtral")
    assert m.moe is not None and m.moe.num_experts == 4 and m.moe.expert_intermediate_size == 64
    # head_dim 8. attn: q 32*32=1024, k,v 32*16=512 each, o 1024 -> 3072.
    # expert 3*32*64 = 6144; router 32*4 = 128; norms 64.
    # total layer: 3072 + 4*6144 + 128 + 64 = 27840; x2 = 55680; embed+head 2*1600; final 32.
    assert param_count(m) == 55_680 + 3_200 + 32 == 58_912
    # active: 2 experts -> 3072 + 2*6144 + 128 + 64 = 15552; x2 = 31104
    assert active_param_count(m) == 31_104 + 3_200 + 32 == 34_336


def test_qwen3_moe_tiny_hand_count(tmp_path: Path) -> None:
    cfg = {"model_type": "qwen3_moe", "hidden_size": 32, "intermediate_size": 999,
           "moe_intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "head_dim": 16, "num_experts": 8, "num_experts_per_tok": 2,
           "decoder_sparse_step": 1, "mlp_only_layers": [], "vocab_size": 50,
           "tie_word_embeddings": False}
    m = load_hf_config(write(tmp_path, cfg), name="tiny-q3moe")
    assert m.qk_norm and m.moe is not None and m.moe.first_dense_layers == 0
    # attn: q 32*64=2048, k,v 32*32=1024 each, o 64*32=2048, qk norms 2*16=32 -> 6176.
    # expert 3*32*16 = 1536; router 32*8 = 256; norms 64.  (intermediate_size unused)
    # layer: 6176 + 8*1536 + 256 + 64 = 18784; x2 = 37568; embed+head 3200; final 32.
    assert param_count(m) == 37_568 + 3_200 + 32 == 40_800
    # active layer: 6176 + 2*1536 + 256 + 64 = 9568; x2 = 19136
    assert active_param_count(m) == 19_136 + 3_232


def test_deepseek_v3_tiny_hand_count(tmp_path: Path) -> None:
    cfg = {"model_type": "deepseek_v3", "hidden_size": 32, "intermediate_size": 64,
           "moe_intermediate_size": 16, "num_hidden_layers": 3, "num_attention_heads": 2,
           "num_key_value_heads": 2, "n_routed_experts": 4, "n_shared_experts": 1,
           "num_experts_per_tok": 2, "first_k_dense_replace": 1, "moe_layer_freq": 1,
           "q_lora_rank": 8, "kv_lora_rank": 4, "qk_nope_head_dim": 6, "qk_rope_head_dim": 2,
           "v_head_dim": 5, "num_nextn_predict_layers": 1, "topk_method": "noaux_tc",
           "vocab_size": 10, "tie_word_embeddings": False,
           "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}
    m = load_hf_config(write(tmp_path, cfg), name="tiny-ds3")
    assert m.mla is not None and m.moe is not None and m.mtp_layers == 1
    assert m.head_dim == 8 and m.checkpoint_dtype == "fp8"
    # MLA: q_a 32*8=256, q_norm 8, q_b 8*2*8=128; kv_a 32*(4+2)=192, kv_norm 4,
    #      kv_b 4*2*(6+5)=88; o 2*5*32=320 -> 996 per layer.
    # dense MLP (layer 0): 3*32*64 = 6144.
    # MoE layer: 4 experts * 3*32*16 (1536) = 6144, shared 1536, router 32*4=128, bias 4 -> 7812.
    # layers: 3*996 + 6144 + 2*7812 + norms 3*64 = 2988 + 6144 + 15624 + 192 = 24948
    # embed + head 2*320 = 640, final norm 32 -> 25620 (the MTP layer is not counted).
    assert param_count(m) == 25_620
    # active MoE layer: 2*1536 + 1536 + 128 + 4 = 4740 -> 2*4740 = 9480 instead of 15624.
    assert active_param_count(m) == 25_620 - 15_624 + 9_480


@pytest.mark.parametrize("patch,needle", [
    ({"model_type": "gpt2"}, "model_type='gpt2'"),
    ({"model_type": None}, "'model_type'"),
    ({"hidden_size": None}, "'hidden_size'"),
    ({"num_hidden_layers": "32"}, "'num_hidden_layers'"),
    ({"mlp_bias": True}, "mlp_bias"),
    ({"hidden_act": "gelu"}, "hidden_act='gelu'"),
    ({"attention_bias": True}, "attention_bias"),
    ({"num_key_value_heads": 3}, "num_key_value_heads"),
])
def test_unsupported_llama_variants(tmp_path: Path, patch: dict[str, Any], needle: str) -> None:
    cfg = {**LLAMA32_1B, **patch}
    with pytest.raises(UnsupportedModelError) as e:
        load_hf_config(write(tmp_path, cfg))
    assert needle in str(e.value)


def test_unsupported_architecture_names_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError) as e:
        load_hf_config(write(tmp_path, {"model_type": "gpt2", "n_embd": 768}))
    msg = str(e.value)
    for family in ("llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen3_moe", "deepseek_v3"):
        assert family in msg


@pytest.mark.parametrize("patch,needle", [
    ({"decoder_sparse_step": 2}, "decoder_sparse_step"),
    ({"mlp_only_layers": [5]}, "mlp_only_layers"),
    ({"moe_intermediate_size": None}, "moe_intermediate_size"),
])
def test_unsupported_qwen3_moe_variants(tmp_path: Path, patch: dict[str, Any], needle: str) -> None:
    cfg = {"model_type": "qwen3_moe", "hidden_size": 32, "intermediate_size": 64,
           "moe_intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "head_dim": 16, "num_experts": 8, "num_experts_per_tok": 2,
           "vocab_size": 50, **patch}
    with pytest.raises(UnsupportedModelError) as e:
        load_hf_config(write(tmp_path, cfg))
    assert needle in str(e.value)


def test_qwen3_moe_leading_dense_layers_supported(tmp_path: Path) -> None:
    cfg = {"model_type": "qwen3_moe", "hidden_size": 32, "intermediate_size": 64,
           "moe_intermediate_size": 16, "num_hidden_layers": 3, "num_attention_heads": 4,
           "num_key_value_heads": 2, "head_dim": 16, "num_experts": 8, "num_experts_per_tok": 2,
           "mlp_only_layers": [0], "vocab_size": 50}
    m = load_hf_config(write(tmp_path, cfg))
    assert m.moe is not None and m.moe.first_dense_layers == 1 and m.moe.dense_intermediate_size == 64


@pytest.mark.parametrize("patch,needle", [
    ({"moe_layer_freq": 2}, "moe_layer_freq"),
    ({"kv_lora_rank": None}, "kv_lora_rank"),
    ({"n_routed_experts": None}, "n_routed_experts"),
])
def test_unsupported_deepseek_variants(tmp_path: Path, patch: dict[str, Any], needle: str) -> None:
    cfg = {"model_type": "deepseek_v3", "hidden_size": 32, "intermediate_size": 64,
           "moe_intermediate_size": 16, "num_hidden_layers": 3, "num_attention_heads": 2,
           "n_routed_experts": 4, "n_shared_experts": 1, "num_experts_per_tok": 2,
           "first_k_dense_replace": 1, "q_lora_rank": 8, "kv_lora_rank": 4,
           "qk_nope_head_dim": 6, "qk_rope_head_dim": 2, "v_head_dim": 5, "vocab_size": 10, **patch}
    with pytest.raises(UnsupportedModelError) as e:
        load_hf_config(write(tmp_path, cfg))
    assert needle in str(e.value)


def test_multimodal_wrapper_is_named(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="text_config"):
        load_hf_config(write(tmp_path, {"text_config": {"model_type": "llama"}}))


def test_missing_file_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_hf_config(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_hf_config(bad)
