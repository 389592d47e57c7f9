"""End-to-end tests of the fleet planner on small cases (1–2 GPUs, short simulations).

Golden file: ``tests/golden/plan_small.json``; regenerate with
``SERVELAB_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_plan.py -k golden``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from servelab.catalog import get_gpu
from servelab.plan import PlanRequest, PlanResult, SearchSettings, TaskRunner
from servelab.plan import plan as plan_typed
from servelab.errors import ConfigError

GOLDEN = Path(__file__).parent / "golden" / "plan_small.json"
FAST = SearchSettings(max_requests=800, min_requests=200)


def plan(req: PlanRequest) -> dict:
    """The plan in its ``--json`` layout (what these tests check), from the typed result."""
    res = plan_typed(req)
    assert isinstance(res, PlanResult)
    return res.to_dict()


def small(**kw) -> PlanRequest:
    base = dict(gpus=("l40s", "h100-sxm"), weight_dtypes=("bf16",), tps=(1, 2), search=FAST,
                fleet_duration_s=30.0, jobs=1)
    base.update(kw)
    return PlanRequest(**base)


@pytest.fixture(scope="module")
def small_plan():
    return plan(small())


def test_typed_result_carries_the_steps_and_the_recommendation():
    res = plan_typed(small(gpus=("h100-sxm",), tps=(1,), heterogeneous=False, sensitivity=False))
    rec = res.recommendation
    assert rec is not None and rec.gpu == "h100-sxm" and rec.replicas == rec.active_replicas + rec.spare_replicas
    assert res.steps.characterize["num_requests"] > 0 and rec.key in res.steps.replicas
    d = res.to_dict()
    assert list(d["steps"]) == [f"{i}_{n}" for i, n in enumerate(
        ("characterize", "weights", "kv_cache", "candidates", "memory", "roofline", "quantization",
         "operating_point", "search", "replicas", "cost", "heterogeneous", "recommendation"), start=1)]
    assert d["recommendation"]["replicas"] == rec.replicas


def test_every_step_is_in_the_output(small_plan):
    steps = small_plan["steps"]
    for key in ("1_characterize", "2_weights", "3_kv_cache", "4_candidates", "5_memory", "6_roofline",
                "7_quantization", "8_operating_point", "9_search", "10_replicas", "11_cost",
                "12_heterogeneous", "13_recommendation"):
        assert key in steps, key
    rec = small_plan["recommendation"]
    for key in ("gpu", "tp", "replicas", "gpus_total", "cost_per_hour", "cost_per_million_tokens",
                "ttft_p95_s", "tpot_p95_s"):
        assert rec[key] is not None, key
    assert all(c["verdict"] for c in small_plan["candidates"])


def test_recommended_fleet_meets_the_slo_in_simulation(small_plan):
    rec = small_plan["recommendation"]
    # Workload preset chat: ttft_p95 <= 2 s, tpot_p95 <= 50 ms (checked by a fleet simulation).
    assert rec["slo_met"] is True
    assert rec["ttft_p95_s"] <= 2.0
    assert rec["tpot_p95_s"] <= 0.050
    assert rec["delivery"] >= 0.99


def test_cost_arithmetic_of_the_recommendation(small_plan):
    rec = small_plan["recommendation"]
    price = get_gpu(rec["gpu"]).price_per_hour_usd
    assert rec["cost_per_hour"] == pytest.approx(rec["gpus_total"] * price)
    prof = small_plan["steps"]["1_characterize"]
    tokens_per_hour = small_plan["inputs"]["rate_rps"] * prof["output_tokens"]["mean"] * 3600
    assert rec["cost_per_million_tokens"] == pytest.approx(rec["cost_per_hour"] / tokens_per_hour * 1e6)
    assert rec["monthly_usd"]["on_demand"] == pytest.approx(rec["cost_per_hour"] * 730.5)
    # N+1: one spare on top of the replicas that carry the peak.
    assert rec["replicas"] >= rec["active_replicas"] + 1
    assert rec["active_replicas"] * rec["capacity_per_replica_rps"] >= rec["peak_rate_rps"]


def test_cheapest_meeting_candidate_is_recommended(small_plan):
    met = [c for c in small_plan["candidates"] if c["verdict"] in ("meets-slo", "recommended")]
    chosen = [c for c in met if c["verdict"] == "recommended"]
    assert len(chosen) == 1
    assert chosen[0]["cost"]["cost_per_hour_usd"] == min(c["cost"]["cost_per_hour_usd"] for c in met)
    assert chosen[0]["key"] in small_plan["steps"]["13_recommendation"]["pareto"]


def test_hand_planned_tiny_case_with_whole_nodes():
    # One candidate: L40S TP2, bf16, whole 8-GPU nodes, 10 req/s Poisson. Peak (p99 of 10-s
    # windows) ~ 10 + 2.33 * sqrt(10 / 10) ~ 12.3 req/s; x 1.1 headroom ~ 13.6 req/s, below one
    # TP2 L40S replica's capacity (~21 req/s), so 1 active + 1 spare = 2 replicas = 4 GPUs,
    # which round up to ONE 8-GPU node: 8 GPUs billed at the catalog price.
    res = plan(small(gpus=("l40s",), tps=(2,), node_sizes=(8,), rate_rps=10.0, heterogeneous=False,
                     sensitivity=False))
    rec = res["recommendation"]
    assert rec["key"] == "l40s/tp2/bf16/kv-bf16"
    assert 11.0 < rec["peak_rate_rps"] < 13.5
    assert rec["capacity_per_replica_rps"] >= rec["peak_rate_rps"] * 1.1
    assert (rec["active_replicas"], rec["replicas"]) == (1, 2)
    assert rec["gpus_total"] == 8 and rec["nodes"] == [{"gpus_per_node": 8, "count": 1}]
    assert rec["cost_per_hour"] == pytest.approx(8 * get_gpu("l40s").price_per_hour_usd)


def test_infeasible_candidates_carry_reasons():
    res = plan(small(model="llama-3.1-70b", gpus=("l40s", "a10g"), tps=(1, 3, 8), heterogeneous=False,
                     sensitivity=False))
    by_key = {c["key"]: c for c in res["candidates"]}
    assert "weights need" in by_key["l40s/tp1/bf16/kv-bf16"]["reason"]        # 141 GB > 48 GB
    assert "not divisible by TP3" in by_key["l40s/tp3/bf16/kv-bf16"]["reason"]
    assert "no dense tensor-core rates" in by_key["a10g/tp1/bf16/kv-bf16"]["reason"]
    for c in res["candidates"]:
        if c["verdict"] in ("infeasible", "hopeless", "pruned", "no-capacity", "error"):
            assert c["reason"], c["key"]


@pytest.mark.parametrize("loose,tight", [
    ("ttft_p95=2s,tpot_p95=50ms", "ttft_p95=500ms,tpot_p95=50ms"),
    ("ttft_p95=2s,tpot_p95=50ms", "ttft_p95=2s,tpot_p95=15ms"),
])
def test_tighter_slo_never_gives_a_cheaper_plan(loose, tight):
    kw = dict(gpus=("l40s", "h100-sxm"), weight_dtypes=("bf16", "fp8"), kv_dtypes=("bf16",), tps=(1,),
              heterogeneous=False, sensitivity=False)
    a = plan(small(slo=loose, **kw))
    b = plan(small(slo=tight, **kw))
    cost = lambda r: r["recommendation"]["cost_per_hour"] if r["recommendation"] else math.inf  # noqa: E731
    assert cost(b) >= cost(a)
    cap_a = {c["key"]: c.get("capacity_rps", 0.0) for c in a["candidates"]}
    for c in b["candidates"]:       # per candidate too, wherever both simulated it
        if "capacity_rps" in c and c["key"] in cap_a and cap_a[c["key"]]:
            assert c["capacity_rps"] <= cap_a[c["key"]] + 1e-9


def test_results_do_not_depend_on_the_number_of_workers(small_plan):
    par = plan(small(jobs=2))
    assert par["recommendation"] == small_plan["recommendation"]
    assert [c["verdict"] for c in par["candidates"]] == [c["verdict"] for c in small_plan["candidates"]]


def test_unknown_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown GPU 'h1000'"):
        plan(small(gpus=("h1000",)))


def test_ray_executor_errors_clearly_or_runs():
    try:
        import ray  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="needs the 'ray' package"):
            with TaskRunner("ray", 1):
                pass
        return
    kw = dict(heterogeneous=False, sensitivity=False)
    on_ray = plan(small(executor="ray", jobs=2, **kw))
    inline = plan(small(jobs=1, **kw))
    assert on_ray["recommendation"] == inline["recommendation"]
    assert [c["verdict"] for c in on_ray["candidates"]] == [c["verdict"] for c in inline["candidates"]]


def _projection(res: dict) -> dict:
    """The seed-determined part of a plan (no wall times), rounded for stable comparison."""
    def r(x, nd=4):
        return None if x is None else round(float(x), nd)
    rec = res["recommendation"]
    return {
        "recommendation": {k: (r(v) if isinstance(v, float) else v) for k, v in rec.items()
                           if k in ("key", "replicas", "active_replicas", "gpus_total", "cost_per_hour",
                                    "cost_per_million_tokens", "ttft_p95_s", "tpot_p95_s", "slo_met")},
        "peak_rate_rps": r(res["steps"]["1_characterize"]["peak_rate_rps"]),
        "candidates": [{"key": c["key"], "verdict": c["verdict"], "capacity_rps": r(c.get("capacity_rps"))}
                       for c in res["candidates"]],
        "pareto": res["steps"]["13_recommendation"]["pareto"],
        "heterogeneous_beats_single": res["steps"]["12_heterogeneous"].get("beats_single"),
    }


def test_golden_small_default_plan(small_plan):
    got = _projection(small_plan)
    if os.environ.get("SERVELAB_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert got == want
