"""Review checks of the perf model's validation messages and hand-computed anchors."""

from __future__ import annotations

import re

import pytest

from servelab.catalog import get_gpu, get_model
from servelab.errors import ConfigError
from servelab.perf import Deployment, memory_budget, validate_deployment


def _valid_tp(msg: str) -> list[int]:
    m = re.search(r"valid tp: ([0-9, ]+)", msg)
    assert m, msg
    return [int(x) for x in m.group(1).split(",")]


def test_suggested_tp_values_are_all_accepted() -> None:
    # Qwen2.5-7B: 28 attention heads, 4 KV heads. tp=7 divides the heads but neither
    # divides nor is divided by the 4 KV heads (vLLM's QKVParallelLinear asserts it),
    # so the error for tp=8 must not offer 7.
    model, gpu = get_model("qwen2.5-7b"), get_gpu("h100-sxm")
    with pytest.raises(ConfigError) as err:
        validate_deployment(Deployment(model=model, gpu=gpu, tp=8))
    suggested = _valid_tp(str(err.value))
    assert suggested == [1, 2, 4]
    for tp in suggested:
        validate_deployment(Deployment(model=model, gpu=gpu, tp=tp))


def test_llama_70b_fp8_tp2_h100_memory_by_hand() -> None:
    # Llama-3.1-70B (80 layers, h 8192, 64 heads, 8 KV heads, d 128, I 28672, V 128256).
    # Linear layers per layer: q+o 2·8192·8192 + k+v 2·8192·1024 + MLP 3·8192·28672.
    per_layer = 2 * 8192 * 8192 + 2 * 8192 * 1024 + 3 * 8192 * 28672
    linear = 80 * per_layer                              # fp8: 1 byte each
    small = 80 * 2 * 8192 + 8192                          # norms, bf16
    vocab = 2 * 128256 * 8192                             # embedding + LM head, bf16
    weights_per_gpu = (linear * 1 + (vocab + 0) * 2) / 2 + small * 2
    dep = Deployment(model=get_model("llama-3.1-70b"), gpu=get_gpu("h100-sxm"), tp=2,
                     weight_dtype="fp8", kv_dtype="fp8")
    b = memory_budget(dep)
    assert b.weight_bytes == pytest.approx(weights_per_gpu, rel=1e-9)
    # KV: 80 layers · 2 (K, V) · 4 KV heads per GPU · 128 · 1 byte.
    assert b.kv_bytes_per_token_per_gpu == 80 * 2 * 4 * 128
    assert b.kv_bytes_per_token == 80 * 2 * 8 * 128
    free = 0.9 * 80e9 - b.weight_bytes - b.activation_bytes - b.overhead_bytes
    assert b.kv_capacity_tokens == int(free / (80 * 2 * 4 * 128) // 16) * 16
