"""`servelab estimate` through the CLI runner: defaults, --json keys, infeasible, errors."""

import json

from typer.testing import CliRunner

from servelab.cli import app

runner = CliRunner()
KEYS = {"weight_bytes", "kv_bytes_per_token", "kv_capacity_tokens", "max_concurrency", "ttft_s",
        "decode_step_s", "offline_output_tokens_per_s", "feasible", "reason"}


def run_json(*args: str) -> dict:
    r = runner.invoke(app, ["estimate", *args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_default_scenario_prints_tables():
    r = runner.invoke(app, ["estimate"])
    assert r.exit_code == 0, r.output
    for text in ("llama-3.1-8b", "h100-sxm", "Memory per GPU", "KV capacity", "TTFT",
                 "offline output throughput", "ridge point"):
        assert text in r.stdout


def test_json_keys_and_values_llama_70b_tp4_fp8():
    d = run_json("--model", "llama-3.1-70b", "--gpu", "h100-sxm", "--tp", "4", "--dtype", "fp8",
                 "--kv-dtype", "fp8", "--input", "2048", "--output", "256")
    assert KEYS <= d.keys()
    assert d["feasible"] is True and d["reason"] == ""
    assert d["kv_bytes_per_token"] == 163_840                 # 327,680 halved by fp8
    assert set(d["decode_step_s"]) >= {"1", "8", "32", "128"}
    steps = [d["decode_step_s"][k] for k in ("1", "8", "32", "128")]
    assert steps == sorted(steps) and all(s > 0 for s in steps)
    assert d["max_concurrency"] == d["kv_capacity_tokens"] // 16 // 144  # 2304 tokens = 144 blocks
    assert d["ttft_s"] > 0 and d["offline_output_tokens_per_s"] > 0


def test_infeasible_exit_zero_with_reason():
    d = run_json("--model", "llama-3.1-70b")
    assert d["feasible"] is False
    assert d["reason"].startswith("weights need 141.1 GB per GPU at TP1; 80.0 GB available")
    assert d["ttft_s"] is None and d["decode_step_s"] == {} and d["kv_capacity_tokens"] == 0
    r = runner.invoke(app, ["estimate", "--model", "llama-3.1-70b"])
    assert r.exit_code == 0 and "infeasible" in r.stdout and "141.1 GB" in r.stdout


def test_hf_config_path(tmp_path):
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048,
        "intermediate_size": 8192, "num_attention_heads": 32, "num_key_value_heads": 8,
        "num_hidden_layers": 16, "vocab_size": 128256, "max_position_embeddings": 131072,
        "tie_word_embeddings": True, "head_dim": 64, "rms_norm_eps": 1e-5, "torch_dtype": "bfloat16",
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    d = run_json("--model", str(path))
    # 2 · 16 layers · 8 KV heads · 64 · 2 bytes
    assert d["kv_bytes_per_token"] == 32_768 and d["feasible"] is True


def test_bad_names_exit_2_with_clear_message():
    r = runner.invoke(app, ["estimate", "--gpu", "h1000"])
    assert r.exit_code == 2 and "unknown GPU 'h1000'" in r.output and "h100-sxm" in r.output
    r = runner.invoke(app, ["estimate", "--model", "llama-9"])
    assert r.exit_code == 2 and "llama-3.1-8b" in r.output
    r = runner.invoke(app, ["estimate", "--tp", "3"])
    assert r.exit_code == 2 and "valid tp: 1, 2, 4, 8" in r.output
    r = runner.invoke(app, ["estimate", "--dtype", "int3"])
    assert r.exit_code == 2 and "valid: bf16, fp16, fp8, int8, int4, fp4" in r.output
