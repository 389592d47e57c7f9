"""Fleet sizing (plan/sizing.py) against its documented rules, worked by hand.

    active      = ceil(round(peak / capacity × headroom, 9))   (at least 1)
    replicas    = active + spares                               (default spares = 1)
    utilization = peak / (active × saturation)   (or × capacity when no saturation rate)
    warning above the knee (0.8, strict), and a warning when, with one replica lost,
    peak / ((active + spares − 1) × capacity) > 1.

Note: with spares >= 1 the remaining replicas are >= active >= peak·headroom/capacity, so
the "one replica lost" warning can only fire through the 1e-9 rounding of the ratio
(peak/capacity just above an integer); the tests below use exactly that case.
"""

from __future__ import annotations

import pytest

from servelab.plan.sizing import size_replicas


def test_fields_with_saturation_basis():
    # peak 19, capacity 10, headroom 1.1: 19/10·1.1 = 2.09 -> active 3; default spares 1 ->
    # 4 replicas. Utilization vs saturation 20: 19 / (3·20) = 0.31666… <= 0.8, no warning.
    # One lost: 19 / ((3 + 1 − 1)·10) = 0.633 <= 1, no warning.
    s = size_replicas(peak_rate_rps=19.0, capacity_per_replica_rps=10.0, saturation_rate_rps=20.0)
    assert s.peak_rate_rps == 19.0 and s.capacity_per_replica_rps == 10.0
    assert s.headroom == 1.1
    assert (s.active_replicas, s.spare_replicas, s.replicas) == (3, 1, 4)
    assert s.utilization == pytest.approx(19 / 60)
    assert s.utilization_basis == "saturation"
    assert s.warnings == ()
    assert s.to_dict()["warnings"] == [] and s.to_dict()["replicas"] == 4


def test_small_positive_saturation_rate_is_used():
    # Any saturation rate > 0 is the basis, also one below 1 rps: peak 0.3, capacity 0.5,
    # headroom 1 -> 0.6 -> active 1; utilization 0.3 / (1·0.5) = 0.6 on "saturation".
    s = size_replicas(peak_rate_rps=0.3, capacity_per_replica_rps=0.5, headroom=1.0,
                      saturation_rate_rps=0.5)
    assert s.utilization_basis == "saturation" and s.utilization == pytest.approx(0.6)


def test_slo_capacity_basis_and_knee_warning_text():
    # No saturation rate: basis is SLO capacity. peak 9, capacity 10, headroom 1 -> 0.9 ->
    # active 1, utilization 9 / 10 = 0.9 > 0.8 -> knee warning naming "slo capacity rate".
    s = size_replicas(peak_rate_rps=9.0, capacity_per_replica_rps=10.0, headroom=1.0)
    assert s.utilization_basis == "slo_capacity" and s.utilization == pytest.approx(0.9)
    assert s.warnings == (
        "utilization 90% of slo capacity rate at peak is above the ~80% queueing knee: "
        "latency is sensitive to small rate increases",)


def test_saturation_knee_warning_text():
    # peak 9, capacity 10, saturation 10, headroom 1 -> active 1, utilization 0.9.
    s = size_replicas(peak_rate_rps=9.0, capacity_per_replica_rps=10.0, headroom=1.0,
                      saturation_rate_rps=10.0)
    assert s.warnings[0].startswith("utilization 90% of saturation rate at peak")


def test_utilization_exactly_at_knee_does_not_warn():
    # peak 8, capacity 10, headroom 1 -> active 1, utilization 8/10 = 0.8: not ABOVE the knee.
    s = size_replicas(peak_rate_rps=8.0, capacity_per_replica_rps=10.0, headroom=1.0)
    assert s.utilization == 0.8 and s.warnings == ()


def test_exact_capacity_with_one_spare_does_not_warn():
    # peak 20, capacity 10, headroom 1 -> active 2, spares 1 -> 3. One lost: 20 / (2·10) = 1.0,
    # not above 1 -> no loss warning; utilization 20 / 20 = 1.0 > 0.8 -> only the knee warning.
    s = size_replicas(peak_rate_rps=20.0, capacity_per_replica_rps=10.0, headroom=1.0)
    assert s.active_replicas == 2 and s.replicas == 3
    assert len(s.warnings) == 1 and "queueing knee" in s.warnings[0]


def test_no_spares_no_loss_warning():
    # spares = 0: the loss check is skipped. peak 20, capacity 10, headroom 1 -> active 2.
    s = size_replicas(peak_rate_rps=20.0, capacity_per_replica_rps=10.0, headroom=1.0,
                      spares=0, saturation_rate_rps=100.0)
    # utilization 20 / (2·100) = 0.1: no knee warning either.
    assert s.replicas == 2 and s.warnings == ()


def test_ratio_rounded_to_1e9_and_loss_warning():
    # peak 10.000000004, capacity 10, headroom 1: ratio 1.0000000004 rounds (1e-9) to 1 ->
    # active 1, replicas 2. Saturation 100: utilization ~0.1, no knee warning. One lost:
    # 10.000000004 / (max(1, 1 + 1 − 1)·10) = 1.0000000004 > 1 -> loss warning at "100%".
    s = size_replicas(peak_rate_rps=10.000000004, capacity_per_replica_rps=10.0, headroom=1.0,
                      saturation_rate_rps=100.0)
    assert s.active_replicas == 1 and s.replicas == 2
    assert s.warnings == ("with one replica lost the peak needs 100% of SLO capacity",)


def test_round_keeps_nine_decimals_only():
    # 2.0000000004 rounds to 2.0 at 9 decimals -> active 2 (not 3).
    s = size_replicas(peak_rate_rps=20.000000004, capacity_per_replica_rps=10.0, headroom=1.0,
                      spares=0)
    assert s.active_replicas == 2


@pytest.mark.parametrize("kw, msg", [
    (dict(capacity_per_replica_rps=0.0), r"^capacity_per_replica_rps must be > 0, got 0.0$"),
    (dict(capacity_per_replica_rps=-1.0), r"^capacity_per_replica_rps must be > 0, got -1.0$"),
    (dict(headroom=0.9), r"^headroom must be >= 1, got 0.9$"),
    (dict(spares=-1), r"^spares must be >= 0, got -1$"),
])
def test_bad_input_is_named(kw, msg):
    args = dict(peak_rate_rps=1.0, capacity_per_replica_rps=1.0) | kw
    with pytest.raises(ValueError, match=msg):
        size_replicas(**args)
