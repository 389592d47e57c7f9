"""Error bands from held-out residuals: quantiles, fallbacks, coverage, estimate output."""

from __future__ import annotations

import math

import pytest

from servelab.catalog import get_gpu
from servelab.perf.band import (DEFAULT_FACTOR, MIN_ROWS, BandKey, band_for, estimate_bands, load_bands,
                                metric_kind, quantile)

KEY = BandKey(family="hopper", metric="time", moe=False, engine="vllm")


def test_quantile_matches_order_statistics():
    xs = [3.0, 0.0, 4.0, 1.0, 2.0]
    assert quantile(xs, 0.0) == 0.0 and quantile(xs, 1.0) == 4.0
    assert quantile(xs, 0.5) == 2.0
    assert quantile(xs, 0.1) == pytest.approx(0.4)      # (5−1)·0.1 = 0.4 between 0 and 1
    assert quantile(xs, 0.9) == pytest.approx(3.6)


def test_band_edges_are_the_residual_quantiles():
    res = [math.log(x) for x in (0.8, 0.9, 1.0, 1.1, 1.2, 1.3)]
    b = band_for(10.0, KEY, {KEY.label(): res})
    assert b.calibrated and b.n_rows == 6 and b.level == "key"
    # type-7 quantiles of the published/predicted ratios: 0.1 → 0.85 (between 0.8 and 0.9) in log
    assert b.lo == pytest.approx(10 * math.exp(quantile(res, 0.1)))
    assert b.hi == pytest.approx(10 * math.exp(quantile(res, 0.9)))
    assert 8.0 < b.lo < 9.0 and 12.0 < b.hi < 13.0


def test_too_few_rows_fall_back_then_go_uncalibrated():
    few = {KEY.label(): [0.1] * (MIN_ROWS - 1)}
    b = band_for(2.0, KEY, few)
    assert not b.calibrated and b.n_rows == 0 and b.level == "default"
    assert (b.lo, b.hi) == (2.0 / DEFAULT_FACTOR, 2.0 * DEFAULT_FACTOR)
    other = BandKey(family="hopper", metric="time", moe=True, engine="trtllm")
    pooled = band_for(2.0, KEY, {**few, other.label(): [0.0] * 3})
    assert pooled.calibrated and pooled.level == "family-metric" and pooled.n_rows == MIN_ROWS + 2
    with pytest.raises(ValueError, match="valid"):
        metric_kind("joules")


def test_shipped_residuals_are_the_validation_residuals(val):
    obs, preds, _ = val.run_all()
    fresh = val.band_residuals(obs, preds)
    assert fresh == load_bands()["residuals"]
    assert sum(len(v) for v in fresh.values()) == len(obs)


def test_stated_band_covers_about_80_percent_leave_one_out(val):
    obs, preds, _ = val.run_all()
    cov = val.loo_coverage(obs, preds)
    # each row's band is built without that row; the nominal coverage is 80 %
    assert cov["all"]["rows"] >= 300
    assert 70.0 <= cov["calibrated"]["coverage_pct"] <= 90.0


def test_estimate_carries_a_band_for_every_predicted_time_and_throughput():
    from servelab.catalog import get_model
    from servelab.perf import Deployment
    from servelab.perf.band import calibration_status
    from servelab.perf.engines import get_engine
    from servelab.perf.estimate import estimate_report
    eng = get_engine("vllm")
    for gpu, calibrated in (("h100-sxm", True), ("mi300x", False)):
        dep = eng.deployment(Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu(gpu)))
        r = estimate_report(dep, 512, 256, eng)
        r["calibration_status"] = calibration_status(dep.gpu, eng.name, moe=False)
        bands = estimate_bands(r, gpu=dep.gpu, moe=False, engine=eng.name)
        assert set(bands["decode_step_s"]) == set(r["decode_step_s"])
        assert set(bands["decode_tokens_per_s"]) == set(r["decode_tokens_per_s"])
        for k in ("ttft_s", "offline_output_tokens_per_s", "offline.step_s", "offline.requests_per_s"):
            assert k in bands
        flat = [bands["ttft_s"], bands["offline_output_tokens_per_s"], *bands["decode_step_s"].values()]
        for b in flat:
            assert set(b) == {"value", "lo", "hi", "n_rows", "calibrated"}
            assert 0 < b["lo"] < b["hi"] and b["calibrated"] == (b["n_rows"] > 0)
        assert bands["ttft_s"]["value"] == r["ttft_s"]
        assert bands["offline_output_tokens_per_s"]["value"] == r["offline_output_tokens_per_s"]
        assert r["calibration_status"]["time_band"]["calibrated"] is calibrated
        # tokens/s = batch / step: the time band inverted
        s, t = bands["decode_step_s"]["8"], bands["decode_tokens_per_s"]["8"]
        assert t["lo"] == pytest.approx(8 / s["hi"]) and t["hi"] == pytest.approx(8 / s["lo"])
    assert get_gpu("mi300x").architecture == "cdna3"


def test_estimate_cli_json_carries_bands():
    import json
    from typer.testing import CliRunner
    from servelab.cli import app
    r = CliRunner().invoke(app, ["estimate", "--model", "llama-3.1-8b", "--gpu", "mi300x", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout if hasattr(r, "stdout") else r.output)
    assert d["bands"]["ttft_s"]["calibrated"] is False and d["bands"]["ttft_s"]["n_rows"] == 0
    assert d["calibration_status"]["family"] == "cdna3"


def test_scaled_efficiency_scales_every_step_time_exactly():
    import dataclasses
    from servelab.catalog import get_model
    from servelab.perf import Deployment, StepBatch, StepModel
    from servelab.perf.band import scale_efficiency
    from servelab.perf.engines import get_engine
    dep = get_engine("vllm").deployment(Deployment(model=get_model("mixtral-8x7b"), gpu=get_gpu("h100-sxm"),
                                                   tp=2, weight_dtype="fp8"))
    slow = dataclasses.replace(dep, efficiency=scale_efficiency(dep.efficiency, 1.7))
    a, b = StepModel(dep), StepModel(slow)
    for batch in (StepBatch(num_decode=1, decode_context_sum=300),
                  StepBatch(num_decode=64, decode_context_sum=64 * 900),
                  StepBatch(prefill_chunks=((2048, 0), (512, 100)), num_decode=16, decode_context_sum=8000)):
        assert b.step_time_s(batch) == pytest.approx(1.7 * a.step_time_s(batch), rel=1e-12)


def test_confidence_edges_come_from_the_time_band():
    from servelab.perf.band import confidence_factor
    h = get_gpu("h100-sxm")
    p = confidence_factor(h, "vllm", moe=False, confidence="pessimistic")
    o = confidence_factor(h, "vllm", moe=False, confidence="optimistic")
    e = confidence_factor(h, "vllm", moe=False, confidence="expected")
    assert p["factor"] == p["hi_factor"] and o["factor"] == o["lo_factor"] and e["factor"] == 1.0
    assert o["factor"] < 1.0 < p["factor"] and p["calibrated"]
    mi = confidence_factor(get_gpu("mi300x"), "vllm", moe=False, confidence="pessimistic")
    assert not mi["calibrated"] and mi["factor"] == DEFAULT_FACTOR
    with pytest.raises(ValueError, match="valid: optimistic"):
        confidence_factor(h, "vllm", moe=False, confidence="sure")


def test_plan_headline_states_band_price_source_and_calibration():
    import json
    from typer.testing import CliRunner
    from servelab.cli import app
    r = CliRunner().invoke(app, ["plan", "--model", "llama-3.1-8b", "--workload", "chat", "--rate", "4",
                                 "--gpus", "h100-sxm,mi300x", "--precisions", "fp8", "--tp", "1",
                                 "--no-sensitivity", "--no-hetero", "--json"])
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)["recommendation"]
    assert rec["confidence"] == "pessimistic"                  # the command's default
    assert rec["band"]["factor"] == rec["band"]["hi_factor"]
    g = rec["gpus_by_confidence"]
    assert g["optimistic"] <= g["expected"] <= g["pessimistic"]
    assert "price:" in rec["headline"] and rec["price_source"] in rec["headline"]
    assert ("UNCALIBRATED" in rec["headline"]) == (not rec["calibrated"])
    # the recommended fleet re-simulated at each edge: slower steps, longer p95 TPOT
    e = rec["fleet_at_band_edges"]
    assert set(e) == {"optimistic", "expected", "pessimistic"}
    assert e["optimistic"]["tpot_p95_s"] < e["expected"]["tpot_p95_s"] < e["pessimistic"]["tpot_p95_s"]
    assert e["pessimistic"]["tpot_p95_s"] == rec["tpot_p95_s"]       # sized at that edge


def test_simulate_bands_rerun_at_the_band_edges():
    import json
    from typer.testing import CliRunner
    from servelab.cli import app
    r = CliRunner().invoke(app, ["simulate", "--duration", "20", "--rate", "1", "--bands", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    b, bands = d["band"], d["bands"]
    assert b["lo_factor"] < 1.0 < b["hi_factor"]
    tpot = bands["tpot_s"]["p50"]
    # at 1 req/s the batch barely changes, so TPOT follows the step-time factor
    assert tpot["hi"] == pytest.approx(tpot["value"] * b["hi_factor"], rel=0.05)
    assert tpot["lo"] == pytest.approx(tpot["value"] * b["lo_factor"], rel=0.05)
    for m in ("ttft_s", "e2e_s"):
        x = bands[m]["p95"]
        assert x["lo"] <= x["hi"] and x["calibrated"] == b["calibrated"]
    assert bands["delivery"]["lo"] <= 1.0
