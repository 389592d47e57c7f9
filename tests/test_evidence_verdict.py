"""Verdict logic on constructed records: passing, failing, borderline, missing, precedence."""

from __future__ import annotations

import numpy as np
import pytest

from servelab.evidence import judge_claim, parse_decision, side_of
from servelab.evidence.estimates import RunEvidence, wilson_interval
from servelab.evidence.verdict import Estimate, judge_absolute, margin_of
from servelab.records import RequestRecord


def recs(ttfts, *, failed: int = 0, out: int = 11, tpot: float = 0.02) -> list[RequestRecord]:
    """One ok record per TTFT value (arrival i·0.1 s), plus ``failed`` failed records."""
    rs = []
    for i, t in enumerate(ttfts):
        a = i * 0.1
        rs.append(RequestRecord(id=f"r{i}", arrival_s=a, input_tokens=100, output_tokens=out,
                                dispatch_s=a, start_s=a, first_token_s=a + t,
                                finish_s=a + t + (out - 1) * tpot))
    for j in range(failed):
        rs.append(RequestRecord(id=f"f{j}", arrival_s=j * 0.1, input_tokens=100, status="failed",
                                reason="test"))
    return rs


def ev(run_id, kind, records, scenario="a", duration_s=None, usd=0.0):
    return RunEvidence(run_id=run_id, kind=kind, scenario=scenario, records=records,
                       duration_s=duration_s, fleet_usd_per_hour=usd)


def claim(metric, comparison, threshold, *, kinds=("simulate", "bench"), min_requests=100,
          scenario="a"):
    d = parse_decision({
        "name": "t",
        "scenarios": {"a": {"model": "llama-3.1-8b", "gpu": "h100-sxm", "rate_rps": 1},
                      "b": {"model": "llama-3.1-8b", "gpu": "h100-sxm", "rate_rps": 1}},
        "claims": [{"id": "c", "scenario": scenario, "metric": metric, "comparison": comparison,
                    "threshold": threshold,
                    "evidence": {"kinds": list(kinds), "min_requests": min_requests}}],
    })
    return d.claims[0]


RNG = np.random.default_rng(7)
FAST = list(RNG.uniform(0.2, 0.6, 400))       # p95 ≈ 0.58 s
SLOW = list(RNG.uniform(4.0, 6.0, 400))       # p95 ≈ 5.9 s


def test_side_of_table():
    # hand-made intervals against threshold 1.0
    assert side_of(">=", 1.0, 2.0, 1.0) == "supported"
    assert side_of(">", 1.0, 2.0, 1.0) == "pending"
    assert side_of(">=", 0.2, 0.9, 1.0) == "rejected"
    assert side_of(">", 0.2, 1.0, 1.0) == "rejected"
    assert side_of("<=", 0.2, 1.0, 1.0) == "supported"
    assert side_of("<", 0.2, 1.0, 1.0) == "pending"
    assert side_of("<=", 1.1, 3.0, 1.0) == "rejected"
    assert side_of("<", 1.0, 3.0, 1.0) == "rejected"
    assert side_of("<=", 0.5, 1.5, 1.0) == "pending"
    assert side_of("<=", float("nan"), 1.5, 1.0) == "pending"


def test_margin_sign_positive_on_good_side():
    assert margin_of("<=", 1.5, 2.0) == (0.5, 0.25)
    assert margin_of(">=", 0.98, 0.99)[0] == pytest.approx(-0.01)
    assert margin_of(">=", 0.98, 0.99)[1] == pytest.approx(-0.01 / 0.99)
    assert margin_of(">", 3.0, 0.0) == (3.0, None)


def test_clearly_passing_ttft():
    v = judge_claim(claim("ttft_p95", "<=", 2.0), {"a": [ev("s1", "simulate", recs(FAST))]})
    assert v.verdict == "supported"
    assert v.simulation_only and v.label == "supported (simulation only)"
    assert v.ci_hi < 2.0 and v.ci_lo <= v.value <= v.ci_hi
    assert v.value == pytest.approx(np.percentile(FAST, 95))
    assert v.margin == pytest.approx(2.0 - v.value)
    assert v.run_ids == ("s1",) and v.evidence_kind == "simulate"


def test_clearly_failing_ttft():
    v = judge_claim(claim("ttft_p95", "<=", 2.0), {"a": [ev("b1", "bench", recs(SLOW))]})
    assert v.verdict == "rejected" and v.label == "rejected"
    assert not v.simulation_only and v.ci_lo > 2.0 and v.margin < 0


def test_borderline_is_pending():
    # 990 ok of 1000 offered: delivery = 0.99 exactly; the interval straddles 0.99.
    rs = recs([0.3] * 990, failed=10)
    v = judge_claim(claim("delivery", ">=", 0.99), {"a": [ev("s1", "simulate", rs)]})
    assert v.value == pytest.approx(0.99)
    assert v.verdict == "pending" and "straddles" in v.reason
    assert v.ci_lo < 0.99 < v.ci_hi


def test_wilson_interval_anchors():
    # all ok: lower bound = n / (n + z²) (z = 1.959964 at 95%): 500/503.8415 = 0.992376
    assert wilson_interval(500, 500, 0.95) == (pytest.approx(500 / (500 + 1.959964**2)), 1.0)
    # 10 of 20 (Wilson's own kind of example): centre 0.5, half-width 0.2066 → [0.2993, 0.7007]
    lo, hi = wilson_interval(10, 20, 0.95)
    assert lo == pytest.approx(0.29929, abs=1e-4) and hi == pytest.approx(0.70071, abs=1e-4)


def test_all_ok_needs_enough_requests_for_delivery():
    # 133 of 133 delivered: the bootstrap alone would say [1, 1]; Wilson lower bound
    # 133/136.84 = 0.972 < 0.99, so the claim stays pending.
    v = judge_claim(claim("delivery", ">=", 0.99), {"a": [ev("s1", "simulate", recs([0.3] * 133))]})
    assert v.verdict == "pending" and v.ci_lo == pytest.approx(133 / (133 + 1.959964**2))


def test_delivery_all_ok_supported_and_low_rejected():
    v = judge_claim(claim("delivery", ">=", 0.99), {"a": [ev("s1", "simulate", recs([0.3] * 500))]})
    assert (v.verdict, v.value, v.ci_hi) == ("supported", 1.0, 1.0)
    assert v.ci_lo == pytest.approx(0.992376, abs=1e-6)
    v = judge_claim(claim("delivery", ">=", 0.99),
                    {"a": [ev("s1", "simulate", recs([0.3] * 900, failed=100))]})
    assert v.verdict == "rejected" and v.value == pytest.approx(0.9)


def test_pending_without_evidence_of_required_kind():
    c = claim("ttft_p95", "<=", 2.0, kinds=("bench",))
    v = judge_claim(c, {"a": [ev("s1", "simulate", recs(FAST))]})
    assert v.verdict == "pending" and "no bench evidence" in v.reason
    v = judge_claim(c, {})
    assert v.verdict == "pending"


def test_pending_with_too_few_requests():
    c = claim("ttft_p95", "<=", 2.0, min_requests=500)
    v = judge_claim(c, {"a": [ev("s1", "simulate", recs(FAST))]})
    assert v.verdict == "pending"
    assert "too few requests in simulate run s1: 400 < min_requests 500" in v.reason


def test_undefined_metric_is_pending():
    rs = recs([], failed=200)
    v = judge_claim(claim("ttft_p95", "<=", 2.0), {"a": [ev("s1", "simulate", rs)]})
    assert v.verdict == "pending" and "undefined" in v.reason


def test_measured_outranks_simulated_and_disagreement_is_reported():
    sim = ev("s1", "simulate", recs([0.3] * 500))                   # delivery 1.0
    meas = ev("b1", "bench", recs([0.3] * 450, failed=50))          # delivery 0.9
    v = judge_claim(claim("delivery", ">=", 0.99), {"a": [sim, meas]})
    assert v.verdict == "rejected" and not v.simulation_only
    assert v.run_ids == ("b1",) and v.evidence_kind == "bench"
    (cal,) = v.detail["calibration"]
    assert cal["measured_value"] == pytest.approx(0.9) and cal["simulated_value"] == 1.0
    assert cal["rel_diff"] == pytest.approx(-0.1)
    assert cal["disagree"] and cal["simulated_verdict"] == "supported"


def test_relative_claim_joint_bootstrap():
    a = recs(FAST)                          # p95 ≈ 0.58
    b = recs(SLOW)                          # p95 ≈ 5.9 → 0.5 × b ≈ 2.95
    c = claim("ttft_p95", "<=", {"scenario": "b", "factor": 0.5})
    v = judge_claim(c, {"a": [ev("sa", "simulate", a)], "b": [ev("sb", "simulate", b, "b")]})
    assert v.verdict == "supported"
    assert v.threshold == pytest.approx(0.5 * np.percentile(SLOW, 95))
    assert set(v.run_ids) == {"sa", "sb"}
    lo, hi = v.detail["ratio_ci"]
    assert lo <= v.detail["ratio"] <= hi < 0.5
    # The reverse claim (b at most half of a) is rejected.
    c2 = claim("ttft_p95", "<=", {"scenario": "a", "factor": 0.5}, scenario="b")
    v2 = judge_claim(c2, {"a": [ev("sa", "simulate", a)], "b": [ev("sb", "simulate", b, "b")]})
    assert v2.verdict == "rejected"


def _renamed(rs, prefix):
    return [RequestRecord.from_dict({**r.to_dict(), "id": prefix + r.id}) for r in rs]


def test_relative_claim_identical_runs_paired():
    # Same requests, same values: every paired resample has difference exactly 0.
    same = recs(FAST)
    evidence = {"a": [ev("sa", "simulate", same)], "b": [ev("sb", "simulate", same, "b")]}
    v = judge_claim(claim("ttft_p95", "<=", {"scenario": "b", "factor": 1.0}), evidence)
    assert v.verdict == "supported" and v.detail["paired"] and v.detail["diff_ci"] == [0.0, 0.0]
    v = judge_claim(claim("ttft_p95", "<", {"scenario": "b", "factor": 1.0}), evidence)
    assert v.verdict == "rejected" and v.margin == pytest.approx(0.0)


def test_pairing_detects_a_small_shift_independent_resampling_cannot():
    # b's every TTFT is 10 ms longer than a's for the same request: p95 differs by 10 ms.
    b = recs([t + 0.01 for t in FAST])
    c = claim("ttft_p95", "<", {"scenario": "b", "factor": 1.0})
    v = judge_claim(c, {"a": [ev("sa", "simulate", recs(FAST))], "b": [ev("sb", "simulate", b, "b")]})
    assert v.detail["paired"] and v.verdict == "supported"
    assert v.detail["diff_ci"] == [pytest.approx(-0.01), pytest.approx(-0.01)]
    # The same values under other request ids: resampled independently, undecided.
    v = judge_claim(c, {"a": [ev("sa", "simulate", recs(FAST))],
                        "b": [ev("sb", "simulate", _renamed(b, "x"), "b")]})
    assert not v.detail["paired"] and v.verdict == "pending"
    assert v.detail["diff_ci"][0] < 0 < v.detail["diff_ci"][1]


def test_cost_per_million_tokens_hand_computed():
    # 400 requests × 10 output tokens over 40 s = 100 tokens/s; fleet $36/h = $0.01/s
    # → $0.01 / 100 tokens × 1e6 = $100 per 1M tokens.
    rs = recs(FAST, out=10)
    v = judge_claim(claim("cost_per_million_tokens", "<", 150.0),
                    {"a": [ev("s1", "simulate", rs, duration_s=40.0, usd=36.0)]})
    assert v.value == pytest.approx(100.0)
    assert v.verdict == "supported"


def test_judge_absolute_nan_value_pending():
    e = Estimate(value=float("nan"), lo=float("nan"), hi=float("nan"), n=0, run_ids=("x",),
                 kind="bench")
    assert judge_absolute("c", "<", 1.0, e).verdict == "pending"


# -- invariants (hypothesis) -------------------------------------------------------------
from hypothesis import given, strategies as st  # noqa: E402

finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(finite, finite, finite, st.sampled_from(["<", "<=", ">", ">="]))
def test_side_of_mirror_symmetry(a, b, t, cmp):
    """x ⋄ t on [lo, hi] is the same verdict as −x ⋄' −t on [−hi, −lo] (⋄' mirrored)."""
    lo, hi = min(a, b), max(a, b)
    mirror = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[cmp]
    assert side_of(cmp, lo, hi, t) == side_of(mirror, -hi, -lo, -t)


@given(finite, finite, finite, finite)
def test_side_of_monotone_in_threshold(a, b, t1, t2):
    """Raising the bar of an upper-bound claim never turns supported into rejected."""
    lo, hi = min(a, b), max(a, b)
    t_lo, t_hi = min(t1, t2), max(t1, t2)
    order = {"rejected": 0, "pending": 1, "supported": 2}
    assert order[side_of("<=", lo, hi, t_lo)] <= order[side_of("<=", lo, hi, t_hi)]
    assert order[side_of(">=", lo, hi, t_lo)] >= order[side_of(">=", lo, hi, t_hi)]


@given(finite, finite, finite)
def test_side_of_matches_its_definition(a, b, t):
    """supported means hi ≤ t and rejected lo > t for <=; a point on t passes <= and fails <."""
    lo, hi = min(a, b), max(a, b)
    v = side_of("<=", lo, hi, t)
    if v == "supported":
        assert hi <= t
    if v == "rejected":
        assert lo > t
    assert side_of("<=", t, t, t) == "supported" and side_of("<", t, t, t) == "rejected"
