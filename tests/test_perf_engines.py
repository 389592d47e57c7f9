"""Engine profiles (servelab.perf.engines): lookup, physics, the vLLM fit and the CLIs.

Anchors: the vLLM step overhead is fitted on the vLLM CI H200 latency rows (build 9515)
and checked on the held-out H100 rows of the same CI test (benchmarks/data/vllm_published.csv):
measured errors −1.0 %, +11.3 %, +14.8 % (docs/perf.md "Engine profiles").
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from servelab.catalog import get_gpu, get_model
from servelab.errors import ConfigError
from servelab.perf import (DEFAULT_ENGINE, ENGINE_PROFILES, Deployment, Efficiency, EngineProfile,
                           StepBatch, StepModel, decode_point, get_engine, memory_budget, ttft_s)




def _dep(**kw) -> Deployment:
    base = {"model": get_model("llama-3.1-8b"), "gpu": get_gpu("h100-sxm")}
    base.update(kw)
    return Deployment(**base)


# -- lookup ------------------------------------------------------------------------------
def test_lookup_and_errors():
    assert DEFAULT_ENGINE == "vllm"
    assert set(ENGINE_PROFILES) == {"vllm", "trtllm"}
    assert get_engine("vLLM ").name == "vllm"
    with pytest.raises(ConfigError) as e:
        get_engine("sglang")
    assert "'sglang'" in str(e.value) and "vllm" in str(e.value) and "trtllm" in str(e.value)
    with pytest.raises(ConfigError, match="KV memory rule"):
        EngineProfile(name="x", description="", efficiency=Efficiency(), per_request_overhead_s=0.0,
                      kv_memory_rule="half", source="")
    with pytest.raises(ConfigError, match="request_overhead_s"):
        EngineProfile(name="x", description="", efficiency=Efficiency(), per_request_overhead_s=0.01,
                      kv_memory_rule="total_fraction", source="")
    for p in ENGINE_PROFILES.values():
        assert p.source and p.description


def test_profiles_share_the_kernel_efficiencies():
    """Same GPU kernels: only the runtime overheads may differ between profiles."""
    trt, vllm = get_engine("trtllm").efficiency, get_engine("vllm").efficiency
    assert trt == Efficiency()                                   # the fitted defaults
    kernels = ("compute", "memory", "attention_compute", "attention_memory", "comm", "comm_latency_s")
    for k in kernels:
        assert getattr(trt, k) == getattr(vllm, k), k
    assert trt.step_overhead_s == 0.0
    assert vllm.step_overhead_s == pytest.approx(2.19e-3)


# -- physics -----------------------------------------------------------------------------
@pytest.mark.parametrize("gpu,model,context", [("h100-sxm", "llama-3.1-8b", 100),
                                                ("mi300x", "llama-3.1-8b", 2048),
                                                ("h200", "llama-3.1-70b", 500)])
def test_vllm_decode_step_is_trtllm_plus_exactly_the_step_overhead(gpu, model, context):
    dep = _dep(model=get_model(model), gpu=get_gpu(gpu), tp=4 if "70b" in model else 1)
    t_trt = decode_point(StepModel(get_engine("trtllm").deployment(dep)), 1, context).step_s
    t_vllm = decode_point(StepModel(get_engine("vllm").deployment(dep)), 1, context).step_s
    assert t_vllm - t_trt == pytest.approx(2.19e-3, rel=1e-9)


_SM = {e: StepModel(get_engine(e).deployment(_dep())) for e in ("trtllm", "vllm")}


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(st.tuples(st.integers(1, 4096), st.integers(0, 8192)), max_size=4),
       num_decode=st.integers(0, 256), ctx=st.integers(1, 4096))
def test_every_step_differs_by_exactly_one_step_overhead(chunks, num_decode, ctx):
    """Any non-empty step (prefill, decode or mixed) costs vLLM exactly one step overhead
    more: the overhead is per step, not per token or per sequence (seq_overhead_s = 0)."""
    b = StepBatch(prefill_chunks=tuple(chunks), num_decode=num_decode,
                  decode_context_sum=num_decode * ctx)
    t_trt, t_vllm = _SM["trtllm"].step_time_s(b), _SM["vllm"].step_time_s(b)
    if not chunks and not num_decode:
        assert t_trt == t_vllm == 0.0
    else:
        assert t_vllm - t_trt == pytest.approx(2.19e-3, rel=1e-6)


def test_request_overhead_adds_to_ttft_once():
    dep = _dep(max_num_batched_tokens=512)
    base = ttft_s(StepModel(dep), 2000)                         # 4 chunks
    eff = dataclasses.replace(dep.efficiency, request_overhead_s=0.025)
    assert ttft_s(StepModel(dataclasses.replace(dep, efficiency=eff)), 2000) == pytest.approx(base + 0.025)


def test_kv_memory_rules():
    """total_fraction keeps vLLM's utilisation; free_fraction gives the KV cache 90 % of
    what is free after weights, activations and buffers (TensorRT-LLM)."""
    dep = _dep()
    v = get_engine("vllm").deployment(dep)
    assert v.gpu_memory_utilization == 0.9
    t = get_engine("trtllm").deployment(dep)
    full = memory_budget(dataclasses.replace(dep, gpu_memory_utilization=1.0))
    assert memory_budget(t).kv_bytes == pytest.approx(0.9 * full.kv_bytes, rel=1e-9)
    # 8B bf16 on an 80 GB H100: ~16 GB of weights, so 90 % of the free memory is more than
    # 90 % of the device minus the weights
    assert t.gpu_memory_utilization > v.gpu_memory_utilization
    with pytest.raises(ConfigError):
        get_engine("vllm").deployment(dep, memory_fraction=1.5)


# -- the fit and its held-out error --------------------------------------------------------
def test_shipped_step_overhead_is_the_documented_fit(val):
    fit_rows = [r for r in val.load_rows() if r["source"] == val.VLLM_FIT_SOURCE]
    assert len(fit_rows) == 3 and {r["gpu"] for r in fit_rows} == {"h200"}
    s = val.fit_step_overhead(fit_rows)
    assert s == pytest.approx(2.186e-3, abs=5e-6)                 # measured: 2.186 ms
    assert get_engine("vllm").efficiency.step_overhead_s == pytest.approx(s, abs=1e-5)


def test_held_out_vllm_rows_are_predicted_within_bound(val):
    rep = val.vllm_fit_report()
    held = rep["held_out_rows"]
    assert len(held) == 3 and {x["gpu"] for x in held} == {"h100-sxm"}
    by = {x["model"]: x for x in held}
    assert by["llama-3.1-8b"]["published"] == 997.542         # the published table
    # measured: −1.0 %, +11.3 %, +14.8 % (MdAPE 11.3 %); bound with margin
    assert max(abs(x["error_vllm"]) for x in held) < 0.18
    assert rep["held_out_rows_mdape_pct"]["vllm"] < 13.0
    # the profile removes the systematic under-prediction the trtllm profile has on vLLM
    # (8B and 70B: −17 %, −13 % without the step overhead)
    for m in ("llama-3.1-8b", "llama-3.1-70b"):
        assert by[m]["error_trtllm"] < -0.10
        assert abs(by[m]["error_vllm"]) < abs(by[m]["error_trtllm"])


def test_per_engine_validation_keeps_other_engines_unchanged(val):
    rows, results, summary = val.run_engines()
    base_rows, base_results, _ = val.run()
    assert rows[:len(base_rows)] == base_rows                   # same rows, then the held-out ones
    assert {r["source"] for r in rows[len(base_rows):]} == {"vllm-ci-h100"}
    n = 0
    for r, x, y in zip(base_rows, base_results, results):
        if r["engine"] != "vllm":                                # trtllm profile = the defaults
            assert y["predicted"] == pytest.approx(x["predicted"], rel=1e-12)
            assert y["profile"] == "trtllm"
            n += 1
    assert n == len(base_rows) - 3
    assert summary["source:vllm-ci"]["mdape_pct"] < 5.0               # fit rows: 3.3 %
    assert summary["source:vllm-ci-h100"]["mdape_pct"] < 13.0         # held out: 11.3 %


# -- CLIs --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def app():
    from servelab.cli import app as cli_app
    return cli_app


def test_estimate_cli_reports_the_engine(app):
    runner = CliRunner()
    out = {}
    for eng in ("vllm", "trtllm"):
        r = runner.invoke(app, ["estimate", "--engine", eng, "--json", "--input", "128", "--output", "64"])
        assert r.exit_code == 0, r.output
        out[eng] = json.loads(r.output)
        assert out[eng]["engine"] == eng and out[eng]["engine_profile"]["name"] == eng
    assert out["vllm"]["efficiency"]["step_overhead_s"] == pytest.approx(2.19e-3)
    assert out["vllm"]["decode_step_s"]["1"] - out["trtllm"]["decode_step_s"]["1"] == pytest.approx(2.19e-3)
    r = runner.invoke(app, ["estimate", "--json"])
    assert json.loads(r.output)["engine"] == "vllm"                  # the default
    r = runner.invoke(app, ["estimate", "--engine", "sglang"])
    assert r.exit_code == 2 and "unknown engine" in r.output


def test_simulate_cli_reports_the_engine(app, tmp_path):
    runner = CliRunner()
    tpot = {}
    for eng in ("vllm", "trtllm"):
        r = runner.invoke(app, ["simulate", "--engine", eng, "--duration", "20", "--rate", "1",
                                "--json", "--out", str(tmp_path / eng)])
        assert r.exit_code == 0, r.output
        s = json.loads(r.output)
        assert s["engine"] == eng
        tpot[eng] = s["tpot_s"]["p50"]
        meta = json.loads((tmp_path / eng / "meta.json").read_text())
        assert meta["config"]["scenario"]["engine"]["profile"] == eng
    # light load: TPOT is close to the batch-1..few decode step, 2.19 ms longer under vLLM
    assert tpot["vllm"] - tpot["trtllm"] == pytest.approx(2.19e-3, rel=0.15)
    r = runner.invoke(app, ["simulate", "--engine", "nope", "--duration", "5"])
    assert r.exit_code == 2 and "unknown engine" in r.output


def test_plan_cli_accepts_engine_and_rejects_unknown(app):
    runner = CliRunner()
    args = ["plan", "--gpus", "h100-sxm", "--precisions", "bf16", "--tp", "1", "--no-hetero",
            "--no-sensitivity", "--max-requests", "300", "--fleet-duration", "20", "--jobs", "1", "--json"]
    tpot = {}
    for eng in ("vllm", "trtllm"):
        r = runner.invoke(app, args + ["--engine", eng])
        assert r.exit_code == 0, r.output
        res = json.loads(r.output)
        assert res["inputs"]["engine"] == eng and res["inputs"]["engine_profile"]["name"] == eng
        tpot[eng] = res["recommendation"]["tpot_p95_s"]
    # the chat workload at 20 req/s on one H100: every decode step carries the overhead
    assert tpot["vllm"] - tpot["trtllm"] > 2.0e-3
    r = runner.invoke(app, ["plan", "--engine", "nope", "--gpus", "h100-sxm", "--json"])
    assert r.exit_code == 2 and "unknown engine" in r.output
