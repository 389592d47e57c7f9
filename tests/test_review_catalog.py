"""Odd Hugging Face config.json files: each is handled with a clear error or a correct value."""

from __future__ import annotations

import pytest

from servelab.catalog.hf_config import spec_from_hf_dict
from servelab.errors import UnsupportedModelError

# Llama-3.1-8B config.json (meta-llama/Llama-3.1-8B) shape fields.
LLAMA = dict(model_type="llama", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
             num_key_value_heads=8, intermediate_size=14336, vocab_size=128256,
             max_position_embeddings=131072, torch_dtype="bfloat16")


@pytest.mark.parametrize("kv", [0, -8])
def test_non_positive_kv_heads_is_a_clear_error(kv: int) -> None:
    with pytest.raises(UnsupportedModelError, match="num_key_value_heads"):
        spec_from_hf_dict({**LLAMA, "num_key_value_heads": kv}, name="x")


def test_non_positive_head_dim_is_a_clear_error() -> None:
    with pytest.raises(UnsupportedModelError, match="head_dim"):
        spec_from_hf_dict({**LLAMA, "head_dim": 0}, name="x")


def test_quantization_config_not_an_object_is_a_clear_error() -> None:
    with pytest.raises(UnsupportedModelError, match="quantization_config"):
        spec_from_hf_dict({**LLAMA, "quantization_config": [1]}, name="x")


def test_tie_word_embeddings_must_be_a_boolean() -> None:
    # bool("false") is True: a string must not silently tie the LM head.
    with pytest.raises(UnsupportedModelError, match="tie_word_embeddings"):
        spec_from_hf_dict({**LLAMA, "tie_word_embeddings": "false"}, name="x")


def test_more_experts_per_token_than_experts_is_rejected() -> None:
    cfg = {**LLAMA, "model_type": "mixtral", "num_local_experts": 2, "num_experts_per_tok": 4}
    with pytest.raises(UnsupportedModelError, match="num_experts_per_tok"):
        spec_from_hf_dict(cfg, name="x")


@pytest.mark.parametrize("qcfg, dtype", [
    # AutoGPTQ 8-bit checkpoint (quantize_config bits=8): 8-bit integer weights.
    ({"quant_method": "gptq", "bits": 8, "group_size": 128}, "int8"),
    ({"quant_method": "gptq", "bits": 4, "group_size": 128}, "int4"),
    ({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm"}, "int4"),
    # neuralmagic / RedHatAI "...-FP8-dynamic" checkpoints: compressed-tensors, float 8-bit.
    ({"quant_method": "compressed-tensors",
      "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "float"},
                                    "targets": ["Linear"]}}}, "fp8"),
    # "...-quantized.w8a8": compressed-tensors int 8-bit.
    ({"quant_method": "compressed-tensors",
      "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "int"},
                                    "targets": ["Linear"]}}}, "int8"),
    # "...-quantized.w4a16": compressed-tensors int 4-bit.
    ({"quant_method": "compressed-tensors",
      "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "int"},
                                    "targets": ["Linear"]}}}, "int4"),
    # NVIDIA ModelOpt checkpoints (nvidia/...-FP8, nvidia/...-FP4).
    ({"quant_method": "modelopt", "quant_algo": "FP8"}, "fp8"),
    ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, "fp4"),
])
def test_checkpoint_dtype_follows_the_quantization_config(qcfg: dict, dtype: str) -> None:
    spec = spec_from_hf_dict({**LLAMA, "quantization_config": qcfg}, name="x")
    assert spec.checkpoint_dtype == dtype


def test_length_file_with_infinite_value_is_a_clear_error(tmp_path) -> None:
    from servelab.catalog.lengths import read_lengths
    from servelab.errors import ConfigError
    p = tmp_path / "lens.txt"
    p.write_text("128\ninf\n")
    with pytest.raises(ConfigError, match="lens.txt:2"):
        read_lengths(p)


def test_binary_length_file_is_a_clear_error(tmp_path) -> None:
    from servelab.catalog.lengths import read_lengths
    from servelab.errors import ConfigError
    p = tmp_path / "lens.txt"
    p.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ConfigError, match="lens.txt"):
        read_lengths(p)


@pytest.mark.parametrize("patch, field", [
    ({"arrival": {"kind": "poisson", "rate_rps": 2, "burstiness": "bursty"}}, "burstiness"),
    ({"prefix": {"num_groups": "many"}}, "num_groups"),
    ({"input_len": {"kind": "normal", "mean": 100, "std": 10, "low": "one"}}, "low"),
    ({"input_len": {"kind": "normal", "mean": 100, "std": -10}}, "std"),
    ({"turns": 0}, "turns"),
    ({"think_time_s": -1}, "think_time_s"),
    ({"prefix": {"num_groups": -2, "prefix_tokens": 64}}, "num_groups"),
    ({"prefix": {"num_groups": 2, "prefix_tokens": -64}}, "prefix_tokens"),
    ({"num_requests": -5}, "num_requests"),
    ({"arrival": {"kind": "poisson", "rate_rps": "fast"}}, "rate_rps"),
])
def test_bad_workload_values_are_config_errors(patch: dict, field: str) -> None:
    from servelab.catalog.workloads import workload_from_dict
    from servelab.errors import ConfigError
    base = {"name": "w", "input_len": 100, "output_len": 50,
            "arrival": {"kind": "poisson", "rate_rps": 2}}
    with pytest.raises(ConfigError, match=field):
        workload_from_dict({**base, **patch})


def test_binary_workload_file_is_a_clear_error(tmp_path) -> None:
    from servelab.catalog.workloads import load_workload
    from servelab.errors import ConfigError
    p = tmp_path / "w.yaml"
    p.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ConfigError, match="w.yaml"):
        load_workload(p)


# DeepSeek-V2-Lite-shaped config (model_type deepseek_v3 layout; 27 layers cut to 4).
DSV = {"model_type": "deepseek_v3", "hidden_size": 2048, "num_hidden_layers": 4,
       "num_attention_heads": 16, "intermediate_size": 10944, "moe_intermediate_size": 1408,
       "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6,
       "first_k_dense_replace": 1, "q_lora_rank": None, "kv_lora_rank": 512,
       "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "vocab_size": 102400}


@pytest.mark.parametrize("patch, field", [
    ({"first_k_dense_replace": 10}, "first_k_dense_replace"),   # more dense layers than layers
    ({"first_k_dense_replace": -1}, "first_k_dense_replace"),
    ({"n_shared_experts": -2}, "n_shared_experts"),
    ({"num_nextn_predict_layers": "x"}, "num_nextn_predict_layers"),
    ({"max_position_embeddings": "long"}, "max_position_embeddings"),
])
def test_bad_deepseek_counts_are_clear_errors(patch: dict, field: str) -> None:
    with pytest.raises(UnsupportedModelError, match=field):
        spec_from_hf_dict({**DSV, **patch}, name="x")


def test_qwen3_moe_dense_block_longer_than_the_model_is_rejected() -> None:
    cfg = {"model_type": "qwen3_moe", "hidden_size": 2048, "num_hidden_layers": 4,
           "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
           "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8,
           "vocab_size": 151936, "intermediate_size": 6144, "mlp_only_layers": [0, 1, 2, 3, 4, 5]}
    with pytest.raises(UnsupportedModelError, match="mlp_only_layers"):
        spec_from_hf_dict(cfg, name="x")
