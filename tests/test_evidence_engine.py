"""The scenario's engine profile (``engine: {profile: ...}`` or ``engine: NAME``)."""

from __future__ import annotations

import pytest

from servelab.catalog import RequestSpec
from servelab.errors import ConfigError
from servelab.evidence import parse_decision
from servelab.scenario.build import deployment, sim_config
from servelab.perf import get_engine
from servelab.sim import simulate


def _decision(engine=None, **sc):
    s = {"model": "llama-3.1-8b", "gpu": "h100-sxm", "rate_rps": 1, **sc}
    if engine is not None:
        s["engine"] = engine
    return parse_decision({"name": "t", "scenarios": {"a": s},
                           "claims": [{"id": "c", "scenario": "a", "metric": "ttft_p95",
                                       "comparison": "<=", "threshold": 2.0}]})


def test_default_profile_is_vllm_and_shorthand_sets_it():
    assert _decision().scenarios["a"].engine.profile == "vllm"
    sc = _decision("TRTLLM").scenarios["a"]
    assert sc.engine.profile == "trtllm" and sc.engine.max_num_seqs == 256
    sc = _decision({"profile": "trtllm", "max_queue": 4}).scenarios["a"]
    assert (sc.engine.profile, sc.engine.max_queue) == ("trtllm", 4)


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(ConfigError) as e:
        _decision("sglang")
    assert "scenarios.a.engine.profile" in str(e.value) and "known: trtllm, vllm" in str(e.value)


def test_deployment_runs_under_the_profile():
    vllm = deployment(_decision().scenarios["a"])
    assert vllm.efficiency == get_engine("vllm").efficiency
    assert vllm.gpu_memory_utilization == 0.9          # total-fraction rule: as given
    trt = deployment(_decision("trtllm").scenarios["a"])
    assert trt.efficiency.step_overhead_s == 0.0
    assert trt.gpu_memory_utilization > 0.9            # 0.9 of the FREE memory, more of the whole GPU


def test_lone_request_ttft_differs_by_the_step_overhead():
    # one 1000-token prompt (one prefill step) and 2 output tokens: under vllm the
    # first token comes exactly one 2.19 ms step overhead later than under trtllm
    ttft = {}
    for name in ("vllm", "trtllm"):
        sc = _decision(name, input_tokens=1000, output_tokens=2, duration_s=1.5).scenarios["a"]
        req = [RequestSpec(id="x", arrival_s=0.0, input_tokens=1000, output_tokens=2)]
        (rec,) = simulate(sim_config(sc), req).records
        ttft[name] = rec.first_token_s - rec.arrival_s
    assert ttft["vllm"] - ttft["trtllm"] == pytest.approx(2.19e-3, abs=1e-12)
