"""Verdict rules (evidence/verdict.py) against the module docstring, worked by hand.

References: the interval rules (supported / rejected / pending per comparison), the margin
definition s·(value − threshold), the percentile interval of the finite draws, and the
joint relative rule (interval of draws − factor·baseline draws against 0). Every expected
value below is computed in the comment next to it, never taken from the code's output.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from servelab.evidence.verdict import (Estimate, Verdict, _num, interval, judge_absolute,
                                       judge_relative, pending, side_of)


def _est(value, lo, hi, *, kind="bench", draws=None, run_ids=("r1",), scenario="s"):
    return Estimate(value=value, lo=lo, hi=hi, n=10, run_ids=run_ids, kind=kind,
                    draws=None if draws is None else np.asarray(draws, dtype=np.float64),
                    scenario=scenario)


def test_num_maps_missing_and_non_finite_to_none():
    # _num: None and non-finite -> None (JSON has no inf); finite -> the float itself.
    assert _num(None) is None
    assert _num(math.inf) is None
    assert _num(math.nan) is None
    assert _num(2.5) == 2.5


def test_interval_percentiles_of_finite_draws():
    # draws 0..100 (101 values, linear percentile): the 90 % interval is the 5th and 95th
    # percentile, a = (1 - 0.9)/2 = 0.05 -> positions 5 and 95 -> values 5 and 95.
    # The nan and inf draws are dropped first (interval of the FINITE draws).
    d = np.concatenate([np.arange(101.0), [np.nan, np.inf]])
    lo, hi = interval(d, 0.9)
    assert lo == pytest.approx(5.0, abs=1e-12)
    assert hi == pytest.approx(95.0, abs=1e-12)


def test_interval_no_finite_draw_is_nan_pair():
    lo, hi = interval(np.array([np.nan, np.inf]), 0.9)
    assert math.isnan(lo) and math.isnan(hi)


def test_interval_is_computed_in_float64():
    # Low-precision draws are widened to float64 before the percentile. Draws {0, x1, x2}
    # in float16 (x1 = f16(0.1), x2 = f16(0.7), widened exactly): at confidence 0.5 the
    # 75th percentile sits at position 0.75·2 = 1.5 -> x1 + 0.5·(x2 − x1) in float64;
    # the 25th at position 0.5 -> 0.5·x1.
    x1, x2 = float(np.float16(0.1)), float(np.float16(0.7))
    lo, hi = interval(np.array([0.0, 0.1, 0.7], dtype=np.float16), 0.5)
    assert lo == pytest.approx(0.5 * x1, rel=1e-12)
    assert hi == pytest.approx(x1 + 0.5 * (x2 - x1), rel=1e-12)


@pytest.mark.parametrize("lo, hi", [(math.nan, 5.0), (5.0, math.nan), (math.inf, 5.0)])
def test_side_of_non_finite_bound_is_pending(lo, hi):
    # Any non-finite bound -> pending, even when the other bound clears the threshold.
    for cmp in (">=", ">", "<=", "<"):
        assert side_of(cmp, lo, hi, 1.0) == "pending"


def test_side_of_unknown_comparison_names_it():
    with pytest.raises(ValueError, match=r"^unknown comparison '=='.*<, <=, >, >=$"):
        side_of("==", 0.0, 1.0, 0.5)


def test_pending_keeps_id_reason_and_fields():
    v = pending("c7", "no evidence", threshold=3.0, evidence_kind="bench")
    assert (v.claim_id, v.verdict, v.reason, v.threshold, v.evidence_kind) == \
        ("c7", "pending", "no evidence", 3.0, "bench")


def test_judge_absolute_fields():
    # claim value >= 10 on a bench estimate 12 [11, 13]: lo 11 >= 10 -> supported;
    # margin = +1·(12 − 10) = 2, relative 2/|10| = 0.2; no reason when decided.
    v = judge_absolute("c1", ">=", 10.0, _est(12.0, 11.0, 13.0), detail={"k": 1})
    assert v.claim_id == "c1" and v.verdict == "supported"
    assert v.threshold == 10.0 and v.margin == 2.0 and v.margin_rel == pytest.approx(0.2)
    assert v.simulation_only is False and v.partly_simulated is False
    assert v.evidence_kind == "bench" and v.run_ids == ("r1",) and v.detail == {"k": 1}
    assert v.reason == "" and (v.value, v.ci_lo, v.ci_hi) == (12.0, 11.0, 13.0)


def test_judge_absolute_straddle_reason():
    # value <= 10 on 9.5 [9, 11]: hi 11 > 10 and lo 9 <= 10 -> pending, margin −1·(9.5−10)=0.5
    v = judge_absolute("c2", "<=", 10.0, _est(9.5, 9.0, 11.0, kind="simulate"))
    assert v.verdict == "pending" and v.margin == 0.5
    assert v.reason == "confidence interval straddles the threshold"
    assert v.label == "pending" and v.simulation_only is True


def test_judge_absolute_undefined_metric_is_pending_with_context():
    v = judge_absolute("c3", ">", 1.0, _est(math.nan, math.nan, math.nan, kind="simulate"),
                       detail={"x": 2})
    assert v.claim_id == "c3" and v.verdict == "pending"
    assert v.reason == "metric undefined on this evidence (no completed requests?)"
    assert v.threshold == 1.0 and v.simulation_only is True and v.evidence_kind == "simulate"
    assert v.run_ids == ("r1",) and v.detail == {"x": 2}


def test_verdict_to_dict():
    # to_dict prints every field; non-finite numbers become None (JSON-safe), run_ids a list.
    v = Verdict(claim_id="c", verdict="supported", simulation_only=True, value=1.5,
                ci_lo=math.inf, ci_hi=2.0, threshold=1.0, margin=0.5, margin_rel=0.5,
                evidence_kind="simulate", run_ids=("a", "b"), reason="r", detail={"d": 1})
    assert v.to_dict() == {
        "claim_id": "c", "verdict": "supported", "label": "supported (simulation only)",
        "simulation_only": True, "partly_simulated": False, "value": 1.5, "ci_lo": None,
        "ci_hi": 2.0, "threshold": 1.0, "margin": 0.5, "margin_rel": 0.5,
        "evidence_kind": "simulate", "run_ids": ["a", "b"], "reason": "r", "detail": {"d": 1}}
    assert Verdict(claim_id="c", verdict="pending", ci_lo=1.25).to_dict()["ci_lo"] == 1.25


def test_judge_relative_full_result():
    # claim: est >= 1.5 × base. est draws [4, 5, 6, 7, 99] (5 draws), base draws [2, 2, 3, 4]
    # (4 draws): pairs use the first min(5, 4) = 4 draws.
    # diff = [4−3, 5−3, 6−4.5, 7−6] = [1, 2, 1.5, 1] -> all > 0; at confidence 0.5 the
    # interval is the 25th/75th percentile of sorted [1, 1, 1.5, 2]: positions 0.75 and 2.25
    # -> lo = 1, hi = 1.5 + 0.25·0.5 = 1.625 -> lo >= 0 -> supported.
    # ratio = [2, 2.5, 2, 1.75] sorted [1.75, 2, 2, 2.5] -> 25th: 1.75 + 0.75·0.25 = 1.9375,
    # 75th: 2 + 0.25·0.5 = 2.125. threshold = 1.5 × 3 = 4.5; margin = 5.5 − 4.5 = 1,
    # relative 1/4.5. Point ratio 5.5 / 3.
    est = _est(5.5, 5.0, 6.0, kind="simulate", draws=[4, 5, 6, 7, 99], run_ids=("e", "x"))
    base = _est(3.0, 2.5, 3.5, kind="bench", draws=[2, 2, 3, 4], run_ids=("b", "x"),
                scenario="base-scn")
    v = judge_relative("c4", ">=", 1.5, est, base, confidence=0.5, detail={"k": 0})
    assert v.claim_id == "c4" and v.verdict == "supported" and v.reason == ""
    assert (v.value, v.ci_lo, v.ci_hi) == (5.5, 5.0, 6.0)
    assert v.threshold == 4.5 and v.margin == pytest.approx(1.0)
    assert v.margin_rel == pytest.approx(1 / 4.5)
    # one simulated side and one bench side: partly simulated, kinds sorted and joined
    assert v.evidence_kind == "bench+simulate"
    assert v.simulation_only is False and v.partly_simulated is True
    assert v.label == "supported (partly simulated)"
    assert v.run_ids == ("e", "x", "b")          # union, first-seen order
    d = v.detail
    assert d["k"] == 0 and d["baseline_scenario"] == "base-scn"
    assert d["baseline_value"] == 3.0 and d["baseline_ci"] == [2.5, 3.5]
    assert d["factor"] == 1.5 and d["baseline_run_ids"] == ["b", "x"]
    assert d["baseline_kind"] == "bench"
    assert d["diff_ci"] == pytest.approx([1.0, 1.625])
    assert d["ratio"] == pytest.approx(5.5 / 3)
    assert d["ratio_ci"] == pytest.approx([1.9375, 2.125])


def test_judge_relative_straddle_reason():
    # est <= 1 × base, diff draws [−1, 1, −1, 1]: at 0.5, lo = −1, hi = 1 -> straddles 0.
    est = _est(2.0, 1.0, 3.0, draws=[1, 3, 1, 3])
    base = _est(2.0, 1.0, 3.0, draws=[2, 2, 2, 2])
    v = judge_relative("c5", "<=", 1.0, est, base, confidence=0.5)
    assert v.verdict == "pending"
    assert v.reason == "joint interval of the difference straddles 0"
    assert v.margin == 0.0 and v.threshold == 2.0


def test_judge_relative_undefined_baseline_is_pending():
    est = _est(2.0, 1.0, 3.0, draws=[1, 2, 3])
    base = _est(math.nan, math.nan, math.nan, draws=[1, 2, 3], kind="simulate")
    v = judge_relative("c6", ">", 1.0, est, base, confidence=0.9, detail={"q": 1})
    assert v.claim_id == "c6" and v.verdict == "pending"
    assert v.reason == "metric undefined on this evidence (no completed requests?)"
    assert v.evidence_kind == "bench+simulate" and v.partly_simulated is True
    assert v.detail["q"] == 1 and v.detail["baseline_kind"] == "simulate"
    assert v.detail["baseline_value"] is None


@pytest.mark.parametrize("side", ["est", "base"])
def test_judge_relative_needs_draws_on_both_sides(side):
    est = _est(2.0, 1.0, 3.0, draws=None if side == "est" else [1, 2])
    base = _est(1.0, 0.5, 1.5, draws=None if side == "base" else [1, 2])
    with pytest.raises(ValueError, match=r"^relative claims need bootstrap draws on both sides$"):
        judge_relative("c", ">", 1.0, est, base, confidence=0.9)


def test_judge_relative_zero_baseline_silent():
    # A zero baseline: threshold = 2 × 0 = 0, ratio undefined -> None, relative margin None
    # (division by |0| undefined); ratio draws 1/0, 0/0 are dropped without a warning.
    # diff = [1, 0, 3] − 2·[0, 0, 1] = [1, 0, 1] -> at 0.5: sorted [0, 1, 1], positions 0.5
    # and 1.5 -> lo 0.5, hi 1 -> lo >= 0: supported.
    est = _est(1.0, 0.5, 2.0, draws=[1, 0, 3])
    base = _est(0.0, 0.0, 0.0, draws=[0, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = judge_relative("c8", ">=", 2.0, est, base, confidence=0.5)
    assert v.verdict == "supported" and v.threshold == 0.0
    assert v.margin == 1.0 and v.margin_rel is None
    assert v.detail["ratio"] is None
    assert v.detail["diff_ci"] == pytest.approx([0.5, 1.0])
    assert v.detail["ratio_ci"] == [3.0, 3.0]      # only finite ratio: 3 / 1


def test_judge_relative_both_simulated_is_simulation_only():
    # Both sides simulated: simulation only (not "partly"). diff = [3, 3] − [1, 1] = [2, 2]
    # -> interval [2, 2] > 0 -> supported; label says simulation only.
    est = _est(3.0, 3.0, 3.0, kind="simulate", draws=[3, 3])
    base = _est(1.0, 1.0, 1.0, kind="simulate", draws=[1, 1])
    v = judge_relative("c9", ">", 1.0, est, base, confidence=0.9)
    assert v.verdict == "supported" and v.evidence_kind == "simulate"
    assert v.simulation_only is True and v.partly_simulated is False
    assert v.label == "supported (simulation only)"
