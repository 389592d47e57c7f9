"""Rate curves and non-homogeneous Poisson arrivals against closed forms.

Counts are checked with Pearson's chi-square against the expected counts Λ(window)
(hand-integrated), at the 0.999 quantile of χ²(k) (Abramowitz & Stegun table 26.8):
a correct sampler fails one seed in a thousand; the seeds are fixed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from servelab.catalog import ratecurve as rc
from servelab.errors import ConfigError
from servelab.scenario import build, resolve

# χ²_{0.999}(k), Abramowitz & Stegun table 26.8
CHI2_999 = {10: 29.59, 20: 45.31, 24: 51.18}


def _chi2(counts: np.ndarray, expected: np.ndarray) -> float:
    return float(np.sum((counts - expected) ** 2 / expected))


def test_integral_of_a_ramp_is_the_triangle():
    c = rc.points([(0, 0.0), (100, 10.0)])
    assert c.integral(0, 100) == pytest.approx(500.0)          # ½·100·10
    assert c.integral(0, 50) == pytest.approx(125.0)           # ½·50·5
    assert c.integral(50, 100) == pytest.approx(375.0)
    assert c.rate(25.0) == pytest.approx(2.5)
    assert c.peak_rps() == pytest.approx(10.0)


def test_hourly_table_step_and_linear():
    step = rc.table([1.0, 3.0], step_s=10)
    assert step.integral(0, 20) == pytest.approx(40.0)
    assert step.rate(9.99) == pytest.approx(1.0) and step.rate(10.0) == pytest.approx(3.0)
    lin = rc.table([1.0, 3.0], step_s=10, interpolate="linear")
    # flat 1 over [0,5], ramp 1→3 over [5,15], flat 3 over [15,20]: 5 + 20 + 15
    assert lin.integral(0, 20) == pytest.approx(40.0)
    assert lin.rate(10.0) == pytest.approx(2.0)


def test_diurnal_mean_peak_and_trough():
    c = rc.diurnal(peak_rps=30.0, peak_to_trough=3.0, peak_hour=14.0)
    # the trapezoid rule integrates one full period of a cosine exactly: mean = (peak + trough)/2
    assert c.integral(0, rc.DAY_S) == pytest.approx((30 + 10) / 2 * rc.DAY_S, rel=1e-12)
    assert c.rate(14 * 3600.0) == pytest.approx(30.0)
    assert c.rate(2 * 3600.0) == pytest.approx(10.0)
    assert c.peak_rps() == pytest.approx(30.0)
    # start_hour shifts the day: t = 0 is 14:00
    assert rc.diurnal(peak_rps=30, peak_to_trough=3, start_hour=14).rate(0.0) == pytest.approx(30.0)


def test_weekly_and_burst_scale_the_integral():
    day = rc.table([2.0], step_s=rc.DAY_S)
    week = rc.table([2.0] * 7, step_s=rc.DAY_S).weekly([1, 1, 1, 1, 1, 0.5, 0.25], start_day=0)
    assert week.integral(0, 7 * rc.DAY_S) == pytest.approx(day.integral(0, rc.DAY_S) * 5.75)
    assert week.rate(5.5 * rc.DAY_S) == pytest.approx(1.0)
    b = rc.points([(0, 0.0), (100, 10.0)]).burst(factor=3.0, start_s=40, duration_s=20)
    # inside [40, 60): 3 × ½(4 + 6)·20 = 300; outside unchanged: 80 + 320
    assert b.integral(40, 60) == pytest.approx(300.0)
    assert b.integral(0, 100) == pytest.approx(80 + 300 + 320)


def test_window_shifts_the_curve():
    c = rc.points([(0, 0.0), (100, 10.0)]).window(50, 40)
    assert c.end_s == pytest.approx(40.0)
    assert c.rate(0.0) == pytest.approx(5.0)
    assert c.integral(0, 40) == pytest.approx((5 + 9) / 2 * 40)
    with pytest.raises(ConfigError, match="outside"):
        rc.points([(0, 0.0), (100, 10.0)]).window(90, 20)


@pytest.mark.parametrize("seed", [1, 2])
def test_thinning_counts_match_the_integral_on_a_ramp(seed):
    c = rc.points([(0, 0.0), (1000, 100.0)])
    t = rc.nhpp_arrivals(c, np.random.default_rng(seed))
    edges = np.linspace(0, 1000, 21)
    counts, _ = np.histogram(t, edges)
    expected = np.array([c.integral(a, b) for a, b in zip(edges[:-1], edges[1:])])
    assert expected.sum() == pytest.approx(50_000.0)
    assert _chi2(counts, expected) < CHI2_999[20]
    assert np.all(np.diff(t) >= 0)


def test_thinning_over_a_diurnal_day_hour_by_hour():
    c = rc.diurnal(peak_rps=5.0, peak_to_trough=3.0, peak_hour=15.0)
    t = rc.nhpp_arrivals(c, np.random.default_rng(7))
    counts, _ = np.histogram(t, np.arange(25) * 3600.0)
    expected = np.array([c.integral(h * 3600.0, (h + 1) * 3600.0) for h in range(24)])
    assert _chi2(counts, expected) < CHI2_999[24]
    # and it is not a homogeneous process at the mean rate: that would fail the same test
    flat = np.full(24, expected.sum() / 24)
    assert _chi2(counts, flat) > CHI2_999[24]


def test_noise_overdisperses_counts_as_a_negative_binomial():
    lam, cv, win = 10.0, 0.5, 60.0
    c = rc.table([lam], step_s=2000 * win).noisy(cv=cv, interval_s=win, seed=3)
    t = rc.nhpp_arrivals(c, np.random.default_rng(4))
    counts, _ = np.histogram(t, np.arange(2001) * win)
    m = lam * win
    # mean Λ, variance Λ + cv²Λ² = 600 + 90,000 (plain Poisson would be 600)
    assert counts.mean() == pytest.approx(m, rel=0.05)     # SE of the mean ≈ 300/√2000 = 6.7 (1.1 %)
    assert counts.var(ddof=1) == pytest.approx(m + cv**2 * m**2, rel=0.2)
    assert rc.table([lam], step_s=win).noisy(cv=0.0, interval_s=win, seed=3).integral(0, win) == m


def test_counts_csv_replay_is_exact_per_minute(tmp_path):
    p = tmp_path / "gw.csv"
    p.write_text("timestamp,count\n2026-01-05T00:00:00Z,120\n2026-01-05T00:01:00Z,0\n"
                 "2026-01-05T00:02:00Z,37\n2026-01-05T00:03:00Z,5\n")
    counts, step = rc.read_counts_csv(p)
    assert step == 60.0 and counts.tolist() == [120, 0, 37, 5]
    t = rc.replay_counts(counts, step, np.random.default_rng(0))
    assert np.histogram(t, np.arange(5) * 60.0)[0].tolist() == [120, 0, 37, 5]
    curve = rc.from_counts_csv(p)
    assert curve.integral(0, 240) == pytest.approx(162.0)
    assert curve.rate(130.0) == pytest.approx(37 / 60)


def test_counts_csv_errors_name_the_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("timestamp,count\n0,1\n60,x\n120,2\n")
    with pytest.raises(ConfigError, match=r"line 3: count 'x'"):
        rc.read_counts_csv(p)
    p.write_text("timestamp,count\n0,1\n60,1\n180,2\n")
    with pytest.raises(ConfigError, match="equally spaced"):
        rc.read_counts_csv(p)
    p.write_text("when,n\n0,1\n60,1\n")
    with pytest.raises(ConfigError, match="timestamp column"):
        rc.read_counts_csv(p)


def test_scenario_rate_curve_requests_follow_the_curve():
    sc = resolve({"rate_curve": {"kind": "diurnal", "peak_rps": 20, "peak_to_trough": 3, "peak_hour": 12,
                                 "start_s": 6 * 3600}, "duration_s": 3600, "seed": 5})
    reqs = build.requests(sc)
    lam = build.rate_curve(sc).integral(0, 3600)
    # 06:00–07:00 on a cosine day between 20/3 and 20 req/s, integrated by hand
    trough, peak = 20 / 3, 20.0
    # ∫_6^7 cos(2π(h − 12)/24) dh = 24/(2π)·(sin(−5π/12) − sin(−π/2)) hours
    cos_int_h = 24 / (2 * math.pi) * (math.sin(-5 * math.pi / 12) - math.sin(-math.pi / 2))
    hand = 3600 * (trough + (peak - trough) / 2 * (1 + cos_int_h))
    assert lam == pytest.approx(hand, rel=1e-4)
    assert abs(len(reqs) - lam) < 4 * math.sqrt(lam)       # Poisson: sd = √Λ
    assert build.rate_rps(sc) == pytest.approx(lam / 3600)
    assert all(0 <= r.arrival_s < 3600 for r in reqs)


def test_scenario_multi_turn_curve_keeps_the_request_rate():
    sc = resolve({"workload": "agentic", "duration_s": 2000, "seed": 1,
                  "rate_curve": {"kind": "table", "rates_rps": [4.0], "step_s": 4000}})
    reqs = build.requests(sc)
    # agentic: 8 turns, 2 s mean think time. Conversations start at 4/8 per second, so
    # requests in [0, 1000) ≈ 8 · 500 (less ≈ 8 turns' think time at the edge: ~30);
    # the count is 8 × Poisson(500): sd = 8·√500 ≈ 179
    early = sum(r.arrival_s < 1000 for r in reqs)
    assert abs(early - 4000) < 4 * 8 * math.sqrt(500)
    assert len({r.conversation for r in reqs if r.arrival_s < 1000}) == pytest.approx(500, abs=4 * math.sqrt(500))


def test_scenario_rate_curve_errors():
    with pytest.raises(ConfigError, match="rate_rps or rate_curve"):
        resolve({"rate_rps": 3, "rate_curve": {"kind": "table", "rates_rps": [1.0]}})
    with pytest.raises(ConfigError, match="needs peak_rps"):
        resolve({"rate_curve": {"kind": "diurnal"}})
    with pytest.raises(ConfigError, match="kind"):
        resolve({"rate_curve": {"kind": "weekly"}})
    sc = resolve({"rate_curve": {"kind": "table", "rates_rps": [1.0], "step_s": 100}, "duration_s": 200})
    with pytest.raises(ConfigError, match="outside"):
        build.requests(sc)
