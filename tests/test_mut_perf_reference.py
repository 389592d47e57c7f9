"""servelab.perf against independent references: published parameter counts, storage
formats' byte layouts, ring all-reduce volumes, and roofline/memory figures worked out by
hand on a synthetic model and GPU with round numbers (every expected value below is
written from the formula in the docstring of the module under test or from the cited
source, never from the code's output). Fast (milliseconds each): part of the mutation
test selection (pyproject ``[tool.mutmut]``)."""

from __future__ import annotations

import math

import pytest

from servelab.catalog.gpus import GPU, get_gpu
from servelab.catalog.models import MLASpec, MoESpec, ModelSpec, get_model
from servelab.errors import ConfigError
from servelab.perf import comm, quant, shapes, sharding
from servelab.units import GB

# ---------------------------------------------------------------------------------------
# Storage formats (module docstring of perf.quant and its sources)


def test_weight_bytes_per_element_from_the_storage_layouts():
    # bf16/fp16: 2 bytes; fp8/int8: 1 byte
    assert quant.weight_storage_bytes("bf16") == 2.0
    assert quant.weight_storage_bytes("fp16") == 2.0
    assert quant.weight_storage_bytes("fp8") == 1.0
    assert quant.weight_storage_bytes("int8") == 1.0
    # AWQ/GPTQ group 128: int32 qweight (8 nibbles) + fp16 scale + int32-packed 4-bit zero per group
    assert quant.weight_storage_bytes("int4") == 0.5 + (2 + 0.5) / 128 == 0.51953125
    # NVFP4: E2M1 nibble + one FP8 E4M3 scale per 16 elements
    assert quant.weight_storage_bytes("fp4") == 0.5 + 1 / 16 == 0.5625
    assert quant.UNQUANTIZED_BYTES == 2.0


def test_kv_bytes_per_element_and_unknown_dtypes_name_the_valid_ones():
    assert quant.kv_storage_bytes("bf16") == 2.0
    assert quant.kv_storage_bytes("fp16") == 2.0
    assert quant.kv_storage_bytes("fp8") == 1.0
    with pytest.raises(ConfigError) as e:
        quant.kv_storage_bytes("int4")
    assert "'int4'" in str(e.value) and "bf16, fp16, fp8" in str(e.value)
    with pytest.raises(ConfigError) as e:
        quant.weight_storage_bytes("fp32")
    assert "'fp32'" in str(e.value) and "bf16, fp16, fp8, int8, int4, fp4" in str(e.value)


def _gpu(**kw) -> GPU:
    base = dict(name="testgpu", display_name="Test GPU", vendor="nvidia", architecture="hopper",
                memory_bytes=100e9, hbm_bytes_per_s=1e12, peak_flops={"bf16": 1e15},
                interconnect_bytes_per_s=0.0, pcie_bytes_per_s=0.0, gpus_per_node=8)
    base.update(kw)
    return GPU(**base)


def test_peak_flops_falls_back_between_fp16_and_bf16_only():
    g = _gpu(peak_flops={"fp16": 3e14, "fp8": 6e14})
    assert quant.peak_flops(g, "bf16") == 3e14          # fp16 stands in for bf16
    assert quant.peak_flops(g, "fp8") == 6e14
    g2 = _gpu(peak_flops={"bf16": 2e14})
    assert quant.peak_flops(g2, "fp16") == 2e14         # and bf16 for fp16
    with pytest.raises(ConfigError) as e:
        quant.peak_flops(g2, "fp8")
    assert "'testgpu'" in str(e.value) and "fp8" in str(e.value) and "has: bf16" in str(e.value)
    with pytest.raises(ConfigError) as e:
        quant.peak_flops(_gpu(peak_flops={"bf16": 0.0}), "bf16")
    assert "has: none" in str(e.value)


def test_gemm_compute_dtype_weight_only_rules():
    hopper = _gpu(peak_flops={"bf16": 1e15, "fp8": 2e15, "int8": 2e15})
    ampere = _gpu(name="amp", peak_flops={"bf16": 3e14, "int8": 6e14})
    assert quant.gemm_compute_dtype(hopper, "bf16") == ("bf16", "")
    assert quant.gemm_compute_dtype(hopper, "fp16") == ("fp16", "")
    assert quant.gemm_compute_dtype(hopper, "fp8") == ("fp8", "")
    assert quant.gemm_compute_dtype(ampere, "int8") == ("int8", "")
    dt, note = quant.gemm_compute_dtype(hopper, "int4")         # W4A16 everywhere
    assert dt == "bf16" and "W4A16" in note
    dt, note = quant.gemm_compute_dtype(ampere, "fp8")          # no fp8 tensor cores
    assert dt == "bf16" and "amp has no fp8 tensor cores" in note and "weight-only" in note
    dt, note = quant.gemm_compute_dtype(hopper, "fp4")          # fp4 before Blackwell
    assert dt == "bf16" and "fp4" in note
    with pytest.raises(ConfigError):
        quant.gemm_compute_dtype(hopper, "int3")


# ---------------------------------------------------------------------------------------
# Communication (Patarasuk & Yuan 2009 ring all-reduce; PCI-SIG; ConnectX-7 NDR)


def test_ring_allreduce_and_alltoall_volumes():
    assert comm.allreduce_bytes_factor(1) == 0.0
    assert comm.allreduce_bytes_factor(0) == 0.0
    assert comm.allreduce_bytes_factor(2) == 1.0              # 2·1/2
    assert comm.allreduce_bytes_factor(4) == 1.5              # 2·3/4
    assert comm.allreduce_bytes_factor(8) == 1.75             # 2·7/8
    # (N/ep)·k·h·2·(ep−1)/ep per GPU, per byte of one token's hidden state: k·(ep−1)/ep²
    assert comm.alltoall_bytes_factor(1, 8) == 0.0
    assert comm.alltoall_bytes_factor(0, 8) == 0.0
    assert comm.alltoall_bytes_factor(2, 2) == 2 * 1 / 4
    assert comm.alltoall_bytes_factor(4, 8) == 8 * 3 / 16
    assert comm.alltoall_bytes_factor(8, 1) == 7 / 64


def test_link_bandwidth_fallbacks():
    assert comm.PCIE_FALLBACK_BYTES_PER_S == 31.5e9           # 16 GT/s · 16 lanes · 128/130 / 8
    assert comm.INTER_NODE_BYTES_PER_S == 50e9                # 400 Gb/s
    nvl = _gpu(interconnect_bytes_per_s=450e9, pcie_bytes_per_s=64e9)
    pcie = _gpu(interconnect_bytes_per_s=0.0, pcie_bytes_per_s=32e9)
    bare = _gpu(interconnect_bytes_per_s=0.0, pcie_bytes_per_s=0.0)
    assert comm.link_bytes_per_s(nvl) == 450e9
    assert comm.link_bytes_per_s(pcie) == 32e9
    assert comm.link_bytes_per_s(bare) == 31.5e9
    assert comm.inter_node_bytes_per_s(nvl) == 50e9           # NIC slower than NVLink
    assert comm.inter_node_bytes_per_s(pcie) == 32e9          # never above the node link
    assert GB == 1e9


# ---------------------------------------------------------------------------------------
# Parameter counts against published totals

PUBLISHED_TOTAL = {
    # Hugging Face safetensors metadata ("total") of the official checkpoints
    "llama-3.1-8b": 8_030_261_248,
    "llama-3.1-70b": 70_553_706_496,
    "llama-2-7b": 6_738_415_616,
    "mixtral-8x7b": 46_702_792_704,
    "qwen2.5-7b": 7_615_616_512,        # attention bias (qwen2)
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_TOTAL))
def test_total_params_equal_the_published_checkpoints(name):
    m = get_model(name)
    assert shapes.total_params(m) == PUBLISHED_TOTAL[name]
    if m.moe is None:
        assert shapes.active_params(m) == PUBLISHED_TOTAL[name]


@pytest.mark.parametrize("name,total_b,active_b,tol_b", [
    ("mixtral-8x7b", 46.7, 12.9, 0.05),          # Mistral AI, "Mixtral of experts" (2023)
    ("qwen3-30b-a3b", 30.5, 3.3, 0.06),          # Qwen3 model card: 30.5B total, 3.3B activated
    ("qwen3-235b-a22b", 235.0, 22.0, 0.2),       # Qwen3 model card: 235B total, 22B activated
    ("deepseek-v3", 671.0, 37.0, 0.6),           # DeepSeek-V3 report: 671B total, 37B activated (MTP not counted)
])
def test_moe_total_and_active_params_match_published_figures(name, total_b, active_b, tol_b):
    m = get_model(name)
    assert abs(shapes.total_params(m) / 1e9 - total_b) <= tol_b
    assert abs(shapes.active_params(m) / 1e9 - active_b) <= tol_b


def test_qwen3_qk_norm_and_qwen2_bias_counted_by_hand():
    q3 = get_model("qwen3-30b-a3b")      # head_dim 128, qk_norm: q and k RMSNorm weights
    assert shapes.attention_small_params(q3) == 2 * 128
    q2 = get_model("qwen2.5-7b")         # 28 heads, 4 KV heads, head_dim 128, q/k/v bias
    assert shapes.attention_small_params(q2) == (28 + 2 * 4) * 128
    assert shapes.attention_small_params(get_model("llama-3.1-8b")) == 0
    ds = get_model("deepseek-v3")        # MLA: q_a and kv_a layernorms
    assert shapes.attention_small_params(ds) == 1536 + 512


def test_deepseek_v3_shapes_by_hand():
    m = get_model("deepseek-v3")         # 61 layers, first 3 dense (first_k_dense_replace)
    h = 7168
    assert shapes.num_moe_layers(m) == 58
    assert shapes.num_dense_layers(m) == 3
    assert shapes.dense_intermediate(m) == 18432
    assert shapes.expert_params(m) == 3 * h * 2048
    assert shapes.shared_expert_params(m) == 1 * 3 * h * 2048
    assert shapes.router_params(m) == h * 256
    # MLA: q_a h×1536, q_b 1536×128·192, kv_a h×576, kv_b 512×128·256, o 128·128×h
    assert shapes.attention_linear_params(m) == (h * 1536 + 1536 * 128 * 192 + h * 576
                                                 + 512 * 128 * 256 + 128 * 128 * h)
    assert shapes.embedding_params(m) == 129280 * h
    assert shapes.lm_head_params(m) == 129280 * h
    assert shapes.layer_norm_params(m) == 2 * h


# ---------------------------------------------------------------------------------------
# Sharding (vLLM layout, perf.sharding docstring)


def _naive_ranges(layers: int, pp: int) -> list[tuple[int, int]]:
    sizes = [layers // pp] * pp
    for i in range(layers % pp):
        sizes[i] += 1
    out, at = [], 0
    for s in sizes:
        out.append((at, at + s))
        at += s
    return out


@pytest.mark.parametrize("layers,pp", [(32, 1), (32, 4), (61, 4), (7, 3), (80, 8), (5, 5)])
def test_stage_layer_ranges_are_contiguous_and_front_loaded(layers, pp):
    assert sharding.stage_layer_ranges(layers, pp) == _naive_ranges(layers, pp)


def test_kv_heads_replicate_when_fewer_than_tp():
    m = get_model("llama-3.1-8b")        # 8 KV heads
    assert sharding.kv_heads_per_gpu(m, 1) == 8
    assert sharding.kv_heads_per_gpu(m, 4) == 2
    assert sharding.kv_heads_per_gpu(m, 8) == 1
    assert sharding.kv_heads_per_gpu(get_model("qwen2.5-7b"), 8) == 1   # 4 KV heads, replicated
    # per token per layer per GPU: 2 (k and v) · heads · 128
    assert sharding.kv_elems_per_token_per_layer_gpu(m, 2) == 2 * 4 * 128
    ds = get_model("deepseek-v3")        # latent 512 + rope 64, replicated over TP
    assert sharding.kv_elems_per_token_per_layer_gpu(ds, 8) == 576


def test_llama_attention_params_per_gpu_by_hand():
    m = get_model("llama-3.1-8b")        # h 4096, 32 heads, 8 KV heads, d 128
    h = 4096
    assert sharding.attention_params_per_gpu(m, 1) == h * 4096 * 2 + 2 * h * 1024
    assert sharding.attention_params_per_gpu(m, 4) == (h * 4096 * 2 + 2 * h * 1024) / 4
    assert sharding.attention_params_per_gpu(m, 8) == 2 * h * 512 + 2 * h * 128
