"""Memory budget: hand-computed anchors, sharding arithmetic, infeasible reasons."""

import math

import pytest

from servelab.catalog import get_gpu, get_model
from servelab.errors import ConfigError
from servelab.perf import Deployment, memory_budget
from servelab.perf.memory import kv_bytes_per_token, weight_bytes_total
from servelab.perf.quant import weight_storage_bytes


def dep(model="llama-3.1-8b", gpu="h100-sxm", **kw):
    return Deployment(model=get_model(model), gpu=get_gpu(gpu), **kw)


# --- KV bytes per token (hand-computed) ---------------------------------------------------

def test_kv_bytes_per_token_anchors():
    # 2 (K and V) · 32 layers · 8 KV heads · 128 head dim · 2 bytes
    assert kv_bytes_per_token(get_model("llama-3.1-8b"), "bf16") == 131_072
    # 2 · 80 · 8 · 128 · 2
    assert kv_bytes_per_token(get_model("llama-3.1-70b"), "bf16") == 327_680
    assert kv_bytes_per_token(get_model("llama-3.1-70b"), "fp8") == 163_840
    # MLA: 61 layers · (512 latent + 64 rope) · 2 bytes, no factor 2 for K and V
    assert kv_bytes_per_token(get_model("deepseek-v3"), "bf16") == 70_272


def test_kv_per_gpu_split_by_tp_and_replicated_when_fewer_heads():
    b = memory_budget(dep("llama-3.1-70b", tp=4, weight_dtype="fp8"))
    assert b.kv_bytes_per_token == 327_680
    assert b.kv_bytes_per_token_per_gpu == 327_680 / 4          # 2 of 8 KV heads per GPU
    # Qwen3-30B-A3B has 4 KV heads: at TP8 each GPU keeps one whole head (vLLM replicates)
    q = memory_budget(dep("qwen3-30b-a3b", tp=8))
    assert q.kv_bytes_per_token == 2 * 48 * 4 * 128 * 2
    assert q.kv_bytes_per_token_per_gpu == 2 * 48 * 1 * 128 * 2   # not /8
    # MLA latent is replicated on every TP rank
    d = memory_budget(dep("deepseek-v3", gpu="h200", tp=8, weight_dtype="fp8"))
    assert d.kv_bytes_per_token_per_gpu == 70_272


def test_kv_split_over_pipeline_stages():
    b = memory_budget(dep("llama-3.1-70b", tp=2, pp=2, weight_dtype="fp8"))
    # 40 layers per stage, 4 KV heads per GPU: 2 · 40 · 4 · 128 · 2
    assert b.kv_bytes_per_token_per_gpu == 2 * 40 * 4 * 128 * 2


# --- weights --------------------------------------------------------------------------------

def test_weight_bytes_llama_8b_bf16_is_two_bytes_per_published_parameter():
    b = memory_budget(dep())
    assert b.weight_bytes == pytest.approx(2 * 8.03e9, rel=1e-3)
    assert b.weight_bytes == 2 * 8_030_261_248


def test_tp_sharding_arithmetic_llama_70b_tp4():
    # per layer: q 8192² + k,v 2·8192·1024 + o 8192² + MLP 3·8192·28672 = 855,638,016
    # ×80 layers /4 + (embedding + LM head) 2·128256·8192/4 + norms 80·2·8192 + 8192
    elems = 855_638_016 * 80 // 4 + 2 * 128_256 * 8192 // 4 + 80 * 2 * 8192 + 8192
    b = memory_budget(dep("llama-3.1-70b", tp=4))
    assert b.weight_bytes == pytest.approx(2 * elems, rel=1e-12)
    assert b.weight_bytes_per_replica == pytest.approx(4 * 2 * elems, rel=1e-12)


def test_int4_awq_group128_overhead():
    # nibble + fp16 scale and 4-bit zero per group of 128 (AutoGPTQ/AutoAWQ layout)
    assert weight_storage_bytes("int4") == 0.5 + 2.5 / 128
    # Llama-3.1-8B: 6,979,321,856 linear weights at int4 + 1,050,939,392 bf16 (embeddings, norms)
    assert weight_bytes_total(get_model("llama-3.1-8b"), "int4") == pytest.approx(5_727_854_592)
    assert weight_bytes_total(get_model("llama-3.1-8b"), "fp8") == 6_979_321_856 + 2 * 1_050_939_392


def test_moe_experts_sharded_by_ep_same_bytes_per_gpu():
    a = memory_budget(dep("mixtral-8x7b", tp=2, ep=1))
    b = memory_budget(dep("mixtral-8x7b", tp=2, ep=2))
    assert a.weight_bytes == b.weight_bytes
    assert a.weight_bytes_per_replica == pytest.approx(2 * 46.70e9, rel=2e-3)


# --- capacity and concurrency ----------------------------------------------------------

def test_kv_capacity_and_max_concurrency():
    b = memory_budget(dep())
    assert b.feasible and b.reason == ""
    assert b.kv_capacity_tokens == b.kv_blocks * 16
    assert b.kv_capacity_tokens * 131_072 <= b.kv_bytes < (b.kv_capacity_tokens + 16) * 131_072
    # 72 GB usable − 16.06 GB weights leaves at most ~56 GB: ≤ 427k tokens
    assert 350_000 < b.kv_capacity_tokens < 56e9 / 131_072
    assert b.max_concurrency(2048) == b.kv_blocks // 128
    assert b.max_concurrency(2049) == b.kv_blocks // 129
    assert memory_budget(dep(kv_dtype="fp8")).kv_capacity_tokens > 1.9 * b.kv_capacity_tokens


def test_more_utilization_more_kv():
    lo = memory_budget(dep(gpu_memory_utilization=0.8))
    hi = memory_budget(dep(gpu_memory_utilization=0.95))
    assert hi.kv_capacity_tokens > lo.kv_capacity_tokens


# --- infeasible and invalid ------------------------------------------------------------

def test_infeasible_reason_text():
    b = memory_budget(dep("llama-3.1-70b"))
    assert not b.feasible and b.kv_capacity_tokens == 0 and b.max_concurrency(100) == 0
    assert b.reason == ("weights need 141.1 GB per GPU at TP1; 80.0 GB available "
                        "(72.0 GB at gpu_memory_utilization 0.9)")


def test_infeasible_when_no_room_left_for_kv():
    # 70B fp8: 72.7 GB of weights (bf16 embeddings) fit in 73.6 GB, activations and overhead do not
    b = memory_budget(dep("llama-3.1-70b", weight_dtype="fp8", gpu_memory_utilization=0.92))
    assert not b.feasible
    assert "nothing left for the KV cache" in b.reason


@pytest.mark.parametrize("kw, message", [
    (dict(tp=3), "tp=3 must divide the 32 attention heads of llama-3.1-8b; valid tp: 1, 2, 4, 8"),
    (dict(ep=2), "ep=2 needs a mixture-of-experts model"),
    (dict(weight_dtype="int3"), "unknown weight dtype 'int3'; valid: bf16, fp16, fp8, int8, int4, fp4"),
    (dict(kv_dtype="int4"), "unknown KV dtype 'int4'; valid: bf16, fp16, fp8"),
    (dict(gpu_memory_utilization=1.5), "gpu_memory_utilization=1.5 must be in (0, 1]"),
    (dict(tp=16), "tp=16 exceeds the 8 GPUs"),
])
def test_config_errors_name_valid_values(kw, message):
    with pytest.raises(ConfigError) as e:
        memory_budget(dep(**kw))
    assert message in str(e.value)


def test_ep_must_divide_tp():
    with pytest.raises(ConfigError, match="valid ep: 1, 2"):
        memory_budget(dep("mixtral-8x7b", tp=2, ep=4))


def test_fp8_on_a100_runs_weight_only_and_says_so():
    b = memory_budget(dep("llama-3.1-8b", gpu="a100-80g", weight_dtype="fp8"))
    assert b.feasible
    assert any("weight-only" in n and "fp8" in n for n in b.notes)
    assert b.weight_bytes == pytest.approx(6_979_321_856 + 2 * 1_050_939_392)
    assert math.isclose(memory_budget(dep(weight_dtype="fp8")).weight_bytes, b.weight_bytes)


def test_public_api_is_what_all_lists():
    import servelab.perf as perf
    for name in perf.__all__:
        assert hasattr(perf, name), name
    for contract in ("Deployment", "Efficiency", "StepBatch", "MemoryBudget", "memory_budget", "StepModel"):
        assert contract in perf.__all__
