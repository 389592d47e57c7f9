"""Error bands, engine profiles, family fits and the estimate report against independent
references: numpy's percentile (the same type-7 rule the band docstring states), hand-built
residual tables, the TensorRT-LLM free-memory rule worked through the memory budget, and
the roofline's own scaling law (every term is work / (peak · efficiency)). Fast: part of
the mutation test selection (pyproject ``[tool.mutmut]``)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from servelab.catalog.gpus import get_gpu
from servelab.catalog.models import get_model
from servelab.errors import ConfigError
from servelab.perf import Deployment, Efficiency, StepBatch, StepModel, memory_budget
from servelab.perf import band, engines, families
from servelab.perf.estimate import DECODE_BATCHES, deployment_warnings, estimate_report


# ---------------------------------------------------------------------------------------
# quantiles and bands


@pytest.mark.parametrize("xs", [[0.3], [1.0, -1.0], [0.5, -0.2, 0.1, 0.9, -0.7, 0.0, 0.33], list(range(10))])
@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
def test_quantile_is_numpys_linear_percentile(xs, q):
    assert band.quantile(xs, q) == pytest.approx(float(np.percentile(xs, 100 * q)), rel=1e-12, abs=1e-15)


def test_quantile_of_nothing_is_an_error():
    with pytest.raises(ValueError, match=r"^quantile of no values$"):
        band.quantile([], 0.5)


def test_band_from_residuals_uses_the_10th_and_90th_percentiles():
    res = [math.log(x) for x in (0.8, 0.9, 1.0, 1.1, 1.2, 1.3)]
    b = band.band_from_residuals(10.0, res, level="key", key="k")
    assert b.lo == pytest.approx(10 * math.exp(np.percentile(res, 10)), rel=1e-12)
    assert b.hi == pytest.approx(10 * math.exp(np.percentile(res, 90)), rel=1e-12)
    assert (b.value, b.n_rows, b.calibrated, b.level, b.key) == (10.0, 6, True, "key", "k")
    assert band.COVERAGE == 0.80 and band.MIN_ROWS == 5 and band.DEFAULT_FACTOR == 2.0


def test_band_levels_key_then_family_then_default():
    key = band.BandKey(family="hopper", metric="time", moe=False, engine="vllm")
    assert key.label() == "hopper/time/dense/vllm"
    assert band.BandKey(family="ada", metric="throughput", moe=True, engine="trtllm").label() == \
        "ada/throughput/moe/trtllm"
    five = [0.0, 0.1, 0.2, 0.3, 0.4]
    t = {"hopper/time/dense/vllm": five}
    b = band.band_for(2.0, key, t)
    assert b.level == "key" and b.n_rows == 5 and b.key == "hopper/time/dense/vllm" and b.calibrated
    # four at the key + two elsewhere in the family and metric: pooled (6 rows)
    t = {"hopper/time/dense/vllm": five[:4], "hopper/time/moe/trtllm": [1.0, 2.0],
         "hopper/throughput/dense/vllm": [9.0] * 10, "ampere/time/dense/vllm": [9.0] * 10}
    b = band.band_for(2.0, key, t)
    assert b.level == "family-metric" and b.n_rows == 6 and b.key == "hopper/time"
    assert b.hi == pytest.approx(2.0 * math.exp(np.percentile(five[:4] + [1.0, 2.0], 90)), rel=1e-12)
    # fewer than 5 in the pool: uncalibrated, value / 2 … value · 2
    t = {"hopper/time/dense/vllm": five[:2], "hopper/time/moe/trtllm": [1.0, 2.0]}
    b = band.band_for(3.0, key, t)
    assert (b.lo, b.hi, b.n_rows, b.calibrated, b.level, b.key) == (1.5, 6.0, 0, False, "default",
                                                                     "hopper/time/dense/vllm")
    assert b.to_dict() == {"value": 3.0, "lo": 1.5, "hi": 6.0, "n_rows": 0, "calibrated": False}


def test_shipped_table_is_used_by_default():
    shipped = band.load_bands()["residuals"]
    key = band.BandKey(family="hopper", metric="throughput", moe=False, engine="trtllm")
    res = shipped["hopper/throughput/dense/trtllm"]
    b = band.band_for(1.0, key)
    assert b.n_rows == len(res) and b.lo == pytest.approx(math.exp(np.percentile(res, 10)), rel=1e-12)


def test_band_scaled_and_inverse():
    b = band.Band(value=2.0, lo=1.0, hi=5.0, n_rows=7, calibrated=True, level="key", key="x")
    s = b.scaled(3.0)
    assert (s.value, s.lo, s.hi, s.n_rows, s.calibrated, s.level, s.key) == (6.0, 3.0, 15.0, 7, True, "key", "x")
    inv = b.inverse()
    assert (inv.value, inv.lo, inv.hi, inv.n_rows, inv.calibrated, inv.level, inv.key) == \
        (0.5, 0.2, 1.0, 7, True, "key", "x")


def test_metric_kinds():
    for m in ("itl_ms", "ttft_ms", "batch_latency_ms", "time"):
        assert band.metric_kind(m) == "time"
    for m in ("output_tok_s", "static_out_tok_s_per_gpu", "throughput"):
        assert band.metric_kind(m) == "throughput"
    with pytest.raises(ValueError, match=r"unknown metric 'tpot'; valid: itl_ms, ttft_ms"):
        band.metric_kind("tpot")
    k = band.key_for(get_gpu("a100-80g"), moe=True, engine="vllm", metric="itl_ms")
    assert k == band.BandKey(family="ampere", metric="time", moe=True, engine="vllm")


def test_estimate_bands_times_rates_and_inverted_decode_rate():
    gpu = get_gpu("h100-sxm")
    t_b = band.band_for(1.0, band.key_for(gpu, moe=False, engine="trtllm", metric="time"))
    r_b = band.band_for(1.0, band.key_for(gpu, moe=False, engine="trtllm", metric="throughput"))
    result = {"ttft_s": 0.2, "decode_step_s": {"8": 0.01}, "offline_output_tokens_per_s": 1000.0,
              "offline": {"requests_per_s": 5.0, "output_tokens_per_s_per_gpu": 0.0, "step_s": 0.04}}
    out = band.estimate_bands(result, gpu=gpu, moe=False, engine="trtllm")
    assert out["ttft_s"]["lo"] == pytest.approx(0.2 * t_b.lo) and out["ttft_s"]["hi"] == pytest.approx(0.2 * t_b.hi)
    assert out["decode_step_s"]["8"]["hi"] == pytest.approx(0.01 * t_b.hi)
    # 8 / step: the rate's low edge comes from the time's high edge
    assert out["decode_tokens_per_s"]["8"]["value"] == pytest.approx(800.0)
    assert out["decode_tokens_per_s"]["8"]["lo"] == pytest.approx(800.0 / t_b.hi)
    assert out["decode_tokens_per_s"]["8"]["hi"] == pytest.approx(800.0 / t_b.lo)
    assert out["offline_output_tokens_per_s"]["lo"] == pytest.approx(1000.0 * r_b.lo)
    assert out["offline.requests_per_s"]["hi"] == pytest.approx(5.0 * r_b.hi)
    assert "offline.output_tokens_per_s_per_gpu" not in out          # zero: nothing to band
    assert out["offline.step_s"]["lo"] == pytest.approx(0.04 * t_b.lo)
    assert band.estimate_bands({}, gpu=gpu, moe=False, engine="trtllm") == {}


def test_calibration_status_and_confidence_factor():
    gpu = get_gpu("h100-sxm")
    st = band.calibration_status(gpu, "trtllm", moe=False)
    assert st["family"] == "hopper" and st["family_fit_rows"] == families.family_fit(gpu).fit_rows > 0
    tb = band.band_for(1.0, band.key_for(gpu, moe=False, engine="trtllm", metric="time"))
    assert st["time_band"]["n_rows"] == tb.n_rows and st["time_band"]["lo_factor"] == round(tb.lo, 3)
    assert st["calibrated"] is True
    mi = band.calibration_status(get_gpu("mi300x"), "trtllm", moe=True)   # no cdna3 trtllm rows
    assert mi["calibrated"] is False and mi["throughput_band"]["level"] == "default"
    f = {c: band.confidence_factor(gpu, "trtllm", moe=False, confidence=c) for c in band.CONFIDENCES}
    assert f["expected"]["factor"] == 1.0
    assert f["pessimistic"]["factor"] == tb.hi and f["optimistic"]["factor"] == tb.lo
    assert f["pessimistic"]["n_rows"] == tb.n_rows and f["pessimistic"]["key"] == tb.key
    with pytest.raises(ValueError, match=r"unknown confidence 'sure'; valid: optimistic, expected, pessimistic"):
        band.confidence_factor(gpu, "trtllm", moe=False, confidence="sure")


def test_scale_efficiency_multiplies_every_step_time_exactly():
    eff = Efficiency(step_overhead_s=1e-3, seq_overhead_s=1e-5, comm_latency_s=2e-5, request_overhead_s=0.01)
    d = Deployment(model=get_model("mixtral-8x7b"), gpu=get_gpu("h100-sxm"), tp=2, ep=2, efficiency=eff)
    f = 1.37
    d2 = dataclasses.replace(d, efficiency=band.scale_efficiency(eff, f))
    sm, sm2 = StepModel(d), StepModel(d2)
    for b in (StepBatch(num_decode=1, decode_context_sum=100), StepBatch(num_decode=64, decode_context_sum=64_000),
              StepBatch(prefill_chunks=((2048, 512),), num_decode=8, decode_context_sum=4000)):
        assert sm2.step_time_s(b) == pytest.approx(f * sm.step_time_s(b), rel=1e-12)
    assert d2.efficiency.request_overhead_s == pytest.approx(0.0137)
    assert d2.efficiency.expert_compute == eff.expert_compute          # a ratio of two rates
    with pytest.raises(ValueError, match="must be > 0"):
        band.scale_efficiency(eff, 0.0)


def test_edge_bands_span_the_edge_runs():
    value = {"ttft_s": {"mean": 1.0, "p50": 0.9, "p99": 2.0}, "goodput_rps": 5.0, "delivery": 1.0}
    low = {"ttft_s": {"mean": 0.8, "p50": 0.7, "p99": 2.5}, "goodput_rps": 6.0, "delivery": 1.0}
    high = {"ttft_s": {"mean": 1.3, "p50": 1.2}, "goodput_rps": 4.0, "delivery": 0.9}
    bd = {"n_rows": 9, "calibrated": True}
    out = band.edge_bands(value, low, high, bd)
    assert out["ttft_s"]["mean"] == {"value": 1.0, "lo": 0.8, "hi": 1.3, "n_rows": 9, "calibrated": True}
    assert out["ttft_s"]["p50"]["lo"] == 0.7 and "p99" not in out["ttft_s"]     # missing at one edge
    assert out["goodput_rps"] == {"value": 5.0, "lo": 4.0, "hi": 6.0, "n_rows": 9, "calibrated": True}
    assert out["delivery"]["lo"] == 0.9 and out["delivery"]["hi"] == 1.0
    assert "tpot_s" not in out and "slo_attainment" not in out


# ---------------------------------------------------------------------------------------
# family fits


def test_prior_penalty_by_hand():
    g = Efficiency()
    assert families.prior_penalty(g, g) == 0.0
    e = dataclasses.replace(g, compute=g.compute * math.e, step_overhead_s=2e-3, seq_overhead_s=5e-6,
                            comm_latency_s=g.comm_latency_s / math.e)
    # |ln e| + |ln 1/e| + 2 ms / 1 ms + 5 µs / 10 µs = 1 + 1 + 2 + 0.5, times PRIOR_ROWS = 2
    assert families.prior_penalty(e, g) == pytest.approx(2 * 4.5, rel=1e-12)
    assert families.prior_penalty(e, g, rows=1.0) == pytest.approx(4.5, rel=1e-12)
    # attention_compute is not a fitted field: moving it costs nothing
    assert families.prior_penalty(dataclasses.replace(g, attention_compute=0.9), g) == 0.0


def test_family_lookup_and_errors():
    assert families.family_of(get_gpu("l40s")) == "ada"
    bad = dataclasses.replace(get_gpu("l40s"), architecture="volta")
    with pytest.raises(ConfigError, match=r"architecture 'volta'; known families: ampere, ada, hopper, blackwell, cdna3"):
        families.family_of(bad)
    table = families.load_table()["families"]
    for fam in families.FAMILIES:
        fit = families._fit_for(fam)
        assert fit.fit_rows == table[fam]["fit_rows"] and fit.calibrated
        for k, v in table[fam]["raw"].items():
            assert getattr(fit.efficiency, k) == v
    assert families.family_efficiency(get_gpu("h100-sxm")) == families._fit_for("hopper").efficiency


def test_a_family_without_fit_rows_uses_the_global_values(monkeypatch):
    fit_for = families._fit_for.__wrapped__
    monkeypatch.setattr(families, "load_table", lambda: {"families": {"ampere": {"fit_rows": 0, "raw": {"compute": 0.1}}}})
    for fam in ("ampere", "hopper"):
        fit = fit_for(fam)
        assert fit.efficiency == Efficiency() and fit.fit_rows == 0 and not fit.calibrated and fit.raw == {}


# ---------------------------------------------------------------------------------------
# engine profiles


def test_engine_lookup():
    assert engines.get_engine(" VLLM ") is engines.ENGINE_PROFILES["vllm"]
    assert engines.engine_names() == ("trtllm", "vllm") and engines.DEFAULT_ENGINE == "vllm"
    with pytest.raises(ConfigError, match=r"unknown engine 'sglang'; known: trtllm, vllm"):
        engines.get_engine("sglang")
    with pytest.raises(ConfigError, match=r"unknown engine None"):
        engines.get_engine(None)


def test_engine_profile_validation():
    ok = dict(name="x", description="", efficiency=Efficiency(), per_request_overhead_s=0.0,
              kv_memory_rule="total_fraction", source="")
    engines.EngineProfile(**ok)
    with pytest.raises(ConfigError, match=r"unknown KV memory rule 'half'; valid: total_fraction, free_fraction"):
        engines.EngineProfile(**{**ok, "kv_memory_rule": "half"})
    with pytest.raises(ConfigError, match=r"per_request_overhead_s=-1.0 must be >= 0"):
        engines.EngineProfile(**{**ok, "per_request_overhead_s": -1.0})
    with pytest.raises(ConfigError, match=r"efficiency.request_overhead_s=0.0 must equal per_request_overhead_s=0.5"):
        engines.EngineProfile(**{**ok, "per_request_overhead_s": 0.5})


def test_vllm_profile_adds_its_fitted_step_overhead_to_the_family_kernels():
    v = engines.get_engine("vllm")
    gpu = get_gpu("a100-80g")
    fam = families.family_efficiency(gpu)
    e = v.efficiency_for(gpu)
    assert e.step_overhead_s == engines.VLLM_STEP_OVERHEAD_S == 2.19e-3
    assert e.seq_overhead_s == 0.0 and e.compute == fam.compute and e.memory == fam.memory
    assert v.apply(Efficiency(step_overhead_s=5.0)).step_overhead_s == 2.19e-3
    t = engines.get_engine("trtllm")
    assert t.efficiency_for(gpu) == fam
    d = t.to_dict()
    assert d["name"] == "trtllm" and d["kv_memory_rule"] == "free_fraction" and d["runtime_overrides"] == {}
    assert d["efficiency"]["compute"] == Efficiency().compute


def test_free_fraction_gives_the_kv_cache_that_share_of_the_free_memory():
    # TensorRT-LLM: KV = fraction × (memory left after weights, activations, buffers)
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))
    t = engines.get_engine("trtllm")
    full = memory_budget(dataclasses.replace(dep, efficiency=t.efficiency_for(dep.gpu), gpu_memory_utilization=1.0))
    for frac in (0.9, 0.5):
        out = t.deployment(dep, frac)
        assert memory_budget(out).kv_bytes == pytest.approx(frac * full.kv_bytes, rel=1e-9)
    # vLLM: the fraction of the whole device, unchanged
    assert engines.get_engine("vllm").deployment(dep, 0.8).gpu_memory_utilization == 0.8
    assert engines.get_engine("vllm").deployment(dep).gpu_memory_utilization == dep.gpu_memory_utilization
    with pytest.raises(ConfigError, match=r"memory fraction 1.2 must be in \(0, 1\]"):
        t.deployment(dep, 1.2)
    with pytest.raises(ConfigError, match=r"memory fraction 0.0 must be in"):
        t.deployment(dep, 0.0)
    # nothing free at all: the whole device share is what is left after (1 − frac) × 0
    huge = Deployment(model=get_model("llama-3.1-405b"), gpu=get_gpu("h100-sxm"))
    assert t.deployment(huge, 0.9).gpu_memory_utilization == 1.0


# ---------------------------------------------------------------------------------------
# the estimate report


def test_estimate_report_fields_follow_the_parts():
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"), max_num_seqs=64)
    r = estimate_report(dep, 1000, 200)
    mb = memory_budget(dep)
    sm = StepModel(dep)
    assert r["kv_capacity_tokens"] == mb.kv_capacity_tokens and r["max_concurrency"] == mb.max_concurrency(1200)
    assert r["max_batch"] == min(mb.max_concurrency(1200), 64, 8192) == 64
    assert r["decode_context_tokens"] == 1100
    assert list(r["decode_step_s"]) == ["1", "8", "32", "64"] and DECODE_BATCHES == (1, 8, 32, 128)
    assert r["decode_step_s"]["8"] == sm.step_time_s(StepBatch(num_decode=8, decode_context_sum=8 * 1100))
    assert r["decode_tokens_per_s"]["8"] == 8 / r["decode_step_s"]["8"]
    assert r["prefill_bound"] == "compute" and r["decode_bound"]["1"] == "memory"
    assert r["num_gpus"] == 1 and r["feasible"] and r["compute_dtype"] == "bf16"
    assert r["offline"]["output_tokens_per_s_per_gpu"] == r["offline_output_tokens_per_s"]
    assert r["engine"] is None and r["engine_profile"] is None
    e = engines.get_engine("vllm")
    assert estimate_report(e.deployment(dep), 10, 10, engine=e)["engine"] == "vllm"
    huge = estimate_report(Deployment(model=get_model("llama-3.1-405b"), gpu=get_gpu("h100-sxm")), 10, 10)
    assert not huge["feasible"] and huge["ttft_s"] is None and huge["offline"] is None


def test_deployment_warnings():
    ds = Deployment(model=get_model("deepseek-v3"), gpu=get_gpu("h200"), tp=8)          # an fp8 checkpoint
    w = deployment_warnings(ds, {"input_tokens": 10, "output_tokens": 10, "feasible": False})
    assert len(w) == 1 and "fp8 checkpoint" in w[0] and "--dtype fp8" in w[0]
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))
    long = dep.model.max_context
    w = deployment_warnings(dep, {"input_tokens": long, "output_tokens": 1, "feasible": True,
                                  "max_concurrency": 0, "kv_capacity_tokens": 5})
    assert len(w) == 2 and f"exceeds the {long} token context" in w[0] and "holds 5 tokens" in w[1]
    assert deployment_warnings(dep, {"input_tokens": 10, "output_tokens": 10, "feasible": True,
                                     "max_concurrency": 1, "kv_capacity_tokens": 20}) == []


# ---------------------------------------------------------------------------------------
# edges the tests above leave open


def test_prior_penalty_time_fields_are_absolute_differences():
    g = dataclasses.replace(Efficiency(), step_overhead_s=1e-3, seq_overhead_s=20e-6)
    e = dataclasses.replace(g, step_overhead_s=3e-3, seq_overhead_s=5e-6)
    # |3 − 1| ms / 1 ms + |5 − 20| µs / 10 µs = 2 + 1.5, times 2
    assert families.prior_penalty(e, g) == pytest.approx(2 * 3.5, rel=1e-12)


def test_engine_with_a_per_request_cost_passes_it_on():
    p = engines.EngineProfile(name="x", description="d", efficiency=Efficiency(request_overhead_s=0.05),
                              per_request_overhead_s=0.05, kv_memory_rule="total_fraction", source="s",
                              runtime_overrides=(("step_overhead_s", 1e-3),))
    gpu = get_gpu("h100-sxm")
    assert p.efficiency_for(gpu).request_overhead_s == 0.05 and p.efficiency_for(gpu).step_overhead_s == 1e-3
    assert p.apply(Efficiency()).request_overhead_s == 0.05
    assert p.to_dict() == {"name": "x", "description": "d", "per_request_overhead_s": 0.05,
                           "kv_memory_rule": "total_fraction", "source": "s",
                           "efficiency": dataclasses.asdict(Efficiency(request_overhead_s=0.05)),
                           "runtime_overrides": {"step_overhead_s": 1e-3}}
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=gpu)
    assert p.deployment(dep, 1.0).gpu_memory_utilization == 1.0          # the whole device is valid


def test_free_fraction_when_less_than_a_block_is_free():
    from tests.test_mut_perf_roofline import GPU_T, KV_CTX, L, UNIT, dep as toy_dep
    need = memory_budget(toy_dep(gpu_memory_utilization=1.0)).usable_bytes - \
        memory_budget(toy_dep(gpu_memory_utilization=1.0)).kv_bytes
    g = dataclasses.replace(GPU_T, memory_bytes=need + 10 * L * KV_CTX, architecture="hopper")
    d = toy_dep(gpu=g)
    full = memory_budget(dataclasses.replace(d, gpu_memory_utilization=1.0))
    assert not full.feasible and full.kv_bytes > 0                      # room, but under one block
    t = engines.get_engine("trtllm")
    assert t.deployment(d, 0.9).gpu_memory_utilization == 1.0          # nothing free counts as 0
    assert UNIT.compute == 1.0


def test_bands_and_status_follow_the_moe_flag():
    gpu = get_gpu("h100-sxm")
    moe_t = band.band_for(1.0, band.BandKey(family="hopper", metric="time", moe=True, engine="vllm"))
    dense_t = band.band_for(1.0, band.BandKey(family="hopper", metric="time", moe=False, engine="vllm"))
    assert (moe_t.level, dense_t.level) == ("key", "family-metric") and moe_t.hi != dense_t.hi
    out = band.estimate_bands({"ttft_s": 1.0, "offline_output_tokens_per_s": 1.0}, gpu=gpu, moe=True, engine="vllm")
    assert out["ttft_s"]["hi"] == moe_t.hi
    moe_r = band.band_for(1.0, band.BandKey(family="hopper", metric="throughput", moe=True, engine="vllm"))
    assert out["offline_output_tokens_per_s"]["n_rows"] == moe_r.n_rows == 4 + 89 + 135
    st = band.calibration_status(gpu, "vllm", moe=True)
    assert st["time_band"] == {"n_rows": moe_t.n_rows, "calibrated": True, "level": "key",
                               "key": "hopper/time/moe/vllm", "lo_factor": round(moe_t.lo, 3),
                               "hi_factor": round(moe_t.hi, 3)}
    f = band.confidence_factor(gpu, "vllm", moe=True, confidence="pessimistic")
    assert f == {"confidence": "pessimistic", "factor": moe_t.hi, "lo_factor": moe_t.lo, "hi_factor": moe_t.hi,
                 "n_rows": moe_t.n_rows, "calibrated": True, "key": "hopper/time/moe/vllm", "level": "key"}
    # Blackwell: a family fit and throughput rows, but no time rows: not calibrated
    b = band.calibration_status(get_gpu("b200"), "trtllm", moe=False)
    assert b["family_fit_rows"] > 0 and not b["time_band"]["calibrated"] and b["throughput_band"]["calibrated"]
    assert b["calibrated"] is False


def test_scale_efficiency_below_one_and_edge_bands_for_every_percentile():
    e = band.scale_efficiency(Efficiency(), 0.5)
    assert e.compute == Efficiency().compute / 0.5 and e.comm_latency_s == Efficiency().comm_latency_s * 0.5
    v = {"tpot_s": {p: 1.0 for p in ("mean", "p50", "p90", "p95", "p99")}}
    lo = {"tpot_s": {p: 0.5 for p in ("mean", "p50", "p90", "p95", "p99")}}
    hi = {"tpot_s": {p: 2.0 for p in ("mean", "p50", "p90", "p95", "p99")}}
    out = band.edge_bands(v, lo, hi, {"n_rows": 1, "calibrated": False})
    assert sorted(out["tpot_s"]) == ["mean", "p50", "p90", "p95", "p99"]
    assert all(x["lo"] == 0.5 and x["hi"] == 2.0 for x in out["tpot_s"].values())
    # an edge run without the quantity: left out, not an error
    assert band.edge_bands(v, {}, hi, {"n_rows": 1, "calibrated": False}) == {"tpot_s": {}}
    assert band.edge_bands(v, lo, {}, {"n_rows": 1, "calibrated": False}) == {"tpot_s": {}}


def test_estimate_report_when_no_request_fits_and_with_an_engine():
    from tests.test_mut_perf_roofline import dep as toy_dep
    d = toy_dep(max_num_seqs=8)
    b = memory_budget(d)
    too_long = b.kv_capacity_tokens + 16
    r = estimate_report(d, too_long, 0)
    assert r["feasible"] and r["max_concurrency"] == 0 and r["max_batch"] == 0
    assert r["decode_step_s"] == {} and r["offline"]["step_s"] is None and r["offline"]["concurrency"] == 0
    # the KV cache, not max_num_seqs, caps the batch
    conc = b.max_concurrency(b.kv_capacity_tokens // 5)
    r = estimate_report(toy_dep(max_num_seqs=100), b.kv_capacity_tokens // 5, 0)
    assert r["max_batch"] == memory_budget(toy_dep(max_num_seqs=100)).max_concurrency(b.kv_capacity_tokens // 5)
    assert r["max_batch"] < 100 and conc >= 4
    bad = estimate_report(toy_dep(gpu=dataclasses.replace(toy_dep().gpu, memory_bytes=1e9)), 10, 10)
    assert bad["decode_context_tokens"] is None and "decode_context_tokens" in bad
    e = engines.get_engine("trtllm")
    assert estimate_report(d, 10, 10, engine=e)["engine_profile"] == e.to_dict()


def test_deployment_warnings_checkpoint_rules():
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"), weight_dtype="fp8")
    ok = {"input_tokens": 10, "output_tokens": 10, "feasible": True, "max_concurrency": 1, "kv_capacity_tokens": 99}
    assert deployment_warnings(dep, ok) == []                             # bf16 checkpoint, quantized on load
    for ckpt in ("fp16", "fp32"):
        m = dataclasses.replace(dep.model, checkpoint_dtype=ckpt)
        assert deployment_warnings(dataclasses.replace(dep, model=m, weight_dtype="int4"), ok) == []
    m = dataclasses.replace(dep.model, checkpoint_dtype="mxfp6")
    (w,) = deployment_warnings(dataclasses.replace(dep, model=m), ok)
    assert "its format is not modelled (weight dtypes: bf16, fp16, fp8, int8, int4, fp4)" in w
    m = dataclasses.replace(dep.model, checkpoint_dtype="fp8")
    assert deployment_warnings(dataclasses.replace(dep, model=m), ok) == []   # as published
    edge = dict(ok, input_tokens=dep.model.max_context - 10, output_tokens=10)
    assert deployment_warnings(dep, edge) == []                          # exactly the context: fits


def test_pool_of_exactly_five_rows_is_calibrated_and_throughput_keys_follow_moe():
    key = band.BandKey(family="ada", metric="time", moe=False, engine="vllm")
    t = {"ada/time/dense/vllm": [0.1, 0.2], "ada/time/moe/trtllm": [0.3, 0.4, 0.5]}
    b = band.band_for(1.0, key, t)
    assert b.level == "family-metric" and b.n_rows == 5 and b.calibrated
    gpu = get_gpu("h100-sxm")
    res = {"offline_output_tokens_per_s": 10.0, "offline": {"output_tokens_per_s_per_gpu": 2.5}}
    out = band.estimate_bands(res, gpu=gpu, moe=True, engine="trtllm")
    moe_r = band.band_for(1.0, band.BandKey(family="hopper", metric="throughput", moe=True, engine="trtllm"))
    dense_r = band.band_for(1.0, band.BandKey(family="hopper", metric="throughput", moe=False, engine="trtllm"))
    assert moe_r.n_rows == 89 and dense_r.n_rows == 135
    assert out["offline_output_tokens_per_s"]["n_rows"] == 89
    assert out["offline.output_tokens_per_s_per_gpu"]["hi"] == pytest.approx(2.5 * moe_r.hi)
