"""`servelab estimate` on quantized checkpoints and on deployments that hold no whole request."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from servelab.cli import app

runner = CliRunner()

# Llama-3.1-8B shapes with an AutoAWQ quantization_config (e.g. hugging-quants/
# Meta-Llama-3.1-8B-Instruct-AWQ-INT4: quant_method awq, bits 4, group_size 128).
AWQ = dict(model_type="llama", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
           num_key_value_heads=8, intermediate_size=14336, vocab_size=128256,
           quantization_config={"quant_method": "awq", "bits": 4, "group_size": 128})


def _run(*args: str) -> dict:
    res = runner.invoke(app, ["estimate", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_quantized_checkpoint_estimated_at_another_dtype_warns(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(AWQ))
    r = _run("--model", str(cfg))
    assert any("int4" in w and "--dtype" in w for w in r["warnings"]), r["warnings"]
    same = _run("--model", str(cfg), "--dtype", "int4")
    assert not any("--dtype" in w for w in same["warnings"]), same["warnings"]


def test_bf16_checkpoint_at_fp8_gives_no_checkpoint_warning() -> None:
    # Quantizing a bf16 checkpoint on load (vLLM --quantization fp8) is ordinary.
    r = _run("--model", "llama-3.1-8b", "--dtype", "fp8")
    assert r["warnings"] == []


def test_kv_cache_smaller_than_one_request_is_reported() -> None:
    # Llama-2-70B NVFP4 on one L40S: 48 GB · 0.9 = 43.2 GB usable, weights ≈ 39.6 GB,
    # so the KV cache holds a few hundred tokens (327,680 B/token) — less than one
    # 2048 + 256 token request. The estimate must say so instead of an empty table.
    r = _run("--model", "llama-2-70b", "--gpu", "l40s", "--dtype", "fp4")
    assert r["max_concurrency"] == 0
    assert r["kv_capacity_tokens"] < 2304
    assert any("2304" in w and "KV" in w for w in r["warnings"]), r["warnings"]
    res = runner.invoke(app, ["estimate", "--model", "llama-2-70b", "--gpu", "l40s", "--dtype", "fp4"])
    assert res.exit_code == 0
    assert "2304" in res.output


def test_request_longer_than_the_model_context_warns() -> None:
    # Llama-3.1-8B: max_position_embeddings 131072 (HF config.json).
    r = _run("--model", "llama-3.1-8b", "--input", "200000", "--output", "256")
    assert any("131072" in w or "131,072" in w for w in r["warnings"]), r["warnings"]
    ok = _run("--model", "llama-3.1-8b", "--input", "100000", "--output", "256")
    assert not any("context" in w for w in ok["warnings"]), ok["warnings"]


def test_decode_batch_never_exceeds_the_token_budget() -> None:
    # A decode step schedules one token per sequence, so at most max_num_batched_tokens
    # sequences decode at once; vLLM rejects a budget below max_num_seqs outright, and so
    # does the scenario, naming both values.
    res = runner.invoke(app, ["estimate", "--max-num-batched-tokens", "64", "--json"])
    assert res.exit_code == 2 and "max_num_batched_tokens (64) must be >= max_num_seqs (256)" in res.output
    r = _run("--model", "llama-3.1-8b", "--max-num-batched-tokens", "64", "--max-num-seqs", "64")
    assert r["max_batch"] == 64
    assert max(int(b) for b in r["decode_step_s"]) == 64
