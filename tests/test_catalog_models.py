"""Model catalog: parameter counts against published totals, KV-relevant shapes, lookup."""

from __future__ import annotations

import pytest

from servelab.catalog import get_model, list_models
from servelab.catalog.models import active_param_count, param_count
from servelab.catalog.params import embedding_params
from servelab.errors import ConfigError

B = 1e9

# Published totals (independent anchors; the tolerance reflects how coarsely each is
# rounded where that is coarser than 1%).
#   HF model pages ("Model size", from safetensors metadata): Llama-2-7B 6.74B,
#   Llama-2-70B 69B, Llama-3.1-8B 8.03B, Llama-3.1-70B 70.6B, Llama-3.1-405B 406B,
#   Mistral-7B-v0.1 7.24B, Mixtral-8x7B 46.7B, Qwen2.5-7B 7.62B, Qwen2.5-72B 72.7B.
#   Mixtral active 12.9B: Mistral AI, "Mixtral of experts" (arXiv:2401.04088) / model card.
#   Qwen3 model cards: 30.5B total / 3.3B activated; 235B total / 22B activated.
#   DeepSeek-V3 README / arXiv:2412.19437: 671B total, 37B activated (main model, no MTP).
PUBLISHED = [
    # name, total, active, relative tolerance
    ("llama-2-7b", 6.74 * B, None, 0.01),
    ("llama-2-70b", 68.98 * B, None, 0.01),
    ("llama-3.1-8b", 8.03 * B, None, 0.01),
    ("llama-3.1-70b", 70.6 * B, None, 0.01),
    ("llama-3.1-405b", 405.9 * B, None, 0.01),
    ("llama-3.3-70b", 70.6 * B, None, 0.01),
    ("mistral-7b-v0.1", 7.24 * B, None, 0.01),
    ("mixtral-8x7b", 46.7 * B, 12.9 * B, 0.01),
    ("qwen2.5-7b", 7.62 * B, None, 0.01),
    ("qwen2.5-72b", 72.7 * B, None, 0.01),
    ("qwen3-30b-a3b", 30.5 * B, 3.3 * B, 0.02),      # "3.3B": +-0.05B of rounding is 1.5%
    ("qwen3-235b-a22b", 235 * B, 22 * B, 0.025),     # "22B": +-0.5B of rounding is 2.3%
    ("deepseek-v3", 671 * B, 37 * B, 0.02),          # "37B": +-0.5B of rounding is 1.4%
]


@pytest.mark.parametrize("name,total,active,tol", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_param_counts_match_published(name: str, total: float, active: float | None, tol: float) -> None:
    m = get_model(name)
    assert param_count(m) == pytest.approx(total, rel=tol)
    expected_active = total if active is None else active
    assert active_param_count(m) == pytest.approx(expected_active, rel=tol)


def test_exact_counts_from_safetensors_metadata() -> None:
    # Exact parameter counts in the checkpoints' safetensors metadata (HF model pages;
    # also what transformers' num_parameters() prints).
    assert param_count(get_model("llama-3.1-8b")) == 8_030_261_248
    assert param_count(get_model("llama-2-70b")) == 68_976_648_192
    assert param_count(get_model("mixtral-8x7b")) == 46_702_792_704


def test_qwen3_non_embedding_counts() -> None:
    # Qwen3 model cards also publish non-embedding totals: 29.9B and 234B.
    m = get_model("qwen3-30b-a3b")
    assert param_count(m) - embedding_params(m) == pytest.approx(29.9 * B, rel=0.005)
    m = get_model("qwen3-235b-a22b")
    assert param_count(m) - embedding_params(m) == pytest.approx(234 * B, rel=0.005)


def test_deepseek_v3_mtp_excluded_but_recorded() -> None:
    m = get_model("deepseek-v3")
    assert m.mtp_layers == 1
    assert m.mla is not None and m.mla.kv_lora_rank == 512 and m.mla.qk_rope_head_dim == 64
    assert m.moe is not None and m.moe.first_dense_layers == 3 and m.moe.num_shared_experts == 1
    assert m.checkpoint_dtype == "fp8"


def test_dense_models_have_equal_total_and_active() -> None:
    for m in list_models():
        if m.moe is None:
            assert active_param_count(m) == param_count(m)
        else:
            assert active_param_count(m) < param_count(m)


@pytest.mark.parametrize("name,layers,kv_heads,head_dim,kv_bytes_bf16", [
    # KV bytes/token in bf16 = 2 (K and V) * layers * kv_heads * head_dim * 2 bytes:
    # Llama-3.1-8B: 2*32*8*128*2 = 131,072; Llama-3.1-70B: 2*80*8*128*2 = 327,680.
    ("llama-3.1-8b", 32, 8, 128, 131_072),
    ("llama-3.1-70b", 80, 8, 128, 327_680),
])
def test_kv_relevant_shapes(name: str, layers: int, kv_heads: int, head_dim: int, kv_bytes_bf16: int) -> None:
    m = get_model(name)
    assert (m.num_layers, m.num_kv_heads, m.head_dim) == (layers, kv_heads, head_dim)
    assert m.num_attention_heads == 32 if name.endswith("8b") else 64
    assert 2 * m.num_layers * m.num_kv_heads * m.head_dim * 2 == kv_bytes_bf16
    assert m.max_context == 131_072
    assert m.mla is None and m.moe is None


def test_lookup_by_alias_and_hf_repo_id() -> None:
    assert get_model("meta-llama/Llama-3.1-8B-Instruct").name == "llama-3.1-8b"
    assert get_model("LLAMA-3.1-70B").name == "llama-3.1-70b"
    assert get_model("mistral-7b-v0.3").name == "mistral-7b"
    assert get_model("Qwen/Qwen3-30B-A3B").name == "qwen3-30b-a3b"


def test_unknown_model_lists_known_ids() -> None:
    with pytest.raises(ConfigError) as e:
        get_model("llama-9-999b")
    msg = str(e.value)
    assert "llama-9-999b" in msg and "llama-3.1-8b" in msg and "deepseek-v3" in msg


def test_every_builtin_cites_its_hf_config() -> None:
    names = [m.name for m in list_models()]
    assert len(names) == len(set(names)) >= 15
    for m in list_models():
        assert m.source.startswith("https://huggingface.co/") and m.source.endswith("config.json")


def test_deepseek_v3_checkpoint_total_with_mtp() -> None:
    # DeepSeek-V3 README: "685B" on Hugging Face = 671B main model + 14B MTP module
    # (both figures rounded to 1B, so the MTP share is 14 +- 1 B). The checkpoint also
    # stores one fp8 scale per 128x128 weight block (~0.04B values) that are not weights,
    # hence 0.6B rather than 0.5B of slack on the rounded 685B.
    from servelab.catalog.params import mtp_param_count

    m = get_model("deepseek-v3")
    assert param_count(m) + mtp_param_count(m) == pytest.approx(685 * B, abs=0.6 * B)
    assert mtp_param_count(m) == pytest.approx(14 * B, abs=1 * B)
    assert mtp_param_count(get_model("llama-3.1-8b")) == 0
