"""Bootstrap distribution and interval against a plain-Python bootstrap.

Reference: the documented scheme (a resample draws n requests with replacement; the
metric is evaluated on the drawn requests, each as often as it was drawn; throughput
keeps the run's duration fixed) re-implemented here in plain Python/numpy on lists,
with the draws ``np.random.default_rng(seed).integers(0, n, size=(R, n))`` (row r =
the request indices of resample r), then ``np.mean``/``np.std``/``np.percentile`` of
the drawn values. The interval is ``np.percentile`` of the finite resampled values at
(1 − c)/2 and (1 + c)/2.
"""

from __future__ import annotations

import numpy as np
import pytest

from servelab.metrics import bootstrap_ci, bootstrap_distribution
from servelab.records import RequestRecord


def _recs(n: int, gaps_per_req: int, seed: int, discrete: bool = False, fail_every: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = 0.1 * i
        ttft = float(rng.integers(1, 50)) / 100 if discrete else float(rng.lognormal(-1, 0.5))
        k = gaps_per_req + int(rng.integers(0, 3))
        gaps = (rng.integers(1, 6, k) / 100) if discrete else rng.gamma(3.0, 0.01, k)
        times = [a + ttft + float(t) for t in np.r_[0.0, np.cumsum(gaps)]]
        bad = fail_every and i % fail_every == 0
        out.append(RequestRecord(
            id=str(i), arrival_s=a, input_tokens=10, output_tokens=len(times),
            status="failed" if bad else "ok", first_token_s=None if bad else times[0],
            finish_s=a if bad else times[-1], token_times_s=None if bad else times))
    return out


def _draws(seed: int, n: int, R: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(R, n))


def _stat(vals: list[float], stat: str) -> float:
    if not vals:
        return float("nan")
    x = np.array(vals)
    if stat.startswith("p"):
        return float(np.percentile(x, float(stat[1:])))
    return {"mean": x.mean, "std": x.std, "min": x.min, "max": x.max,
            "count": lambda: float(x.size)}[stat]()


def _ttft(r):
    return None if r.status != "ok" else r.first_token_s - r.arrival_s


def _itl(r):
    return [] if r.status != "ok" else list(np.diff(r.token_times_s))


def _ref(recs, name, seed, R, duration_s=None):
    rows = _draws(seed, len(recs), R)
    out = []
    for row in rows:
        drawn = [recs[i] for i in row]
        if name == "delivery":
            out.append(sum(r.status == "ok" for r in drawn) / len(drawn))
        elif name == "request_throughput_rps":
            out.append(sum(r.status == "ok" for r in drawn) / duration_s)
        elif name.startswith("ttft_"):
            out.append(_stat([_ttft(r) for r in drawn if _ttft(r) is not None], name[5:]))
        elif name.startswith("itl_"):
            out.append(_stat([g for r in drawn for g in _itl(r)], name[4:]))
    return np.array(out)


STATS = ["mean", "std", "min", "max", "count", "p50", "p90", "p99", "p0", "p100"]


@pytest.mark.parametrize("stat", STATS)
def test_ttft_distribution_matches_plain_bootstrap(stat):
    # Ranked (sample-space) path, with failed requests that carry no TTFT sample.
    recs = _recs(13, 2, seed=1, fail_every=4)
    got = bootstrap_distribution(recs, f"ttft_{stat}", n_resamples=40, seed=7)
    assert got == pytest.approx(_ref(recs, f"ttft_{stat}", 7, 40), rel=1e-9, abs=1e-12)


def test_ttft_many_resamples_span_chunks():
    # n = 4001 requests → 2e6 // 4001 = 499 resamples per chunk: 1000 resamples use three
    # chunks; the draws are still the first R×n integers of the seeded generator.
    recs = _recs(4001, 0, seed=2, discrete=True)
    got = bootstrap_distribution(recs, "ttft_p90", n_resamples=1000, seed=3)
    ttft = np.array([_ttft(r) for r in recs])
    rows = _draws(3, len(recs), 1000)
    ref = np.percentile(ttft[rows], 90, axis=1)
    assert np.allclose(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("stat", ["mean", "std", "max", "p50", "p95"])
def test_small_itl_exact_weights(stat):
    # ≤ 16 gaps per request: pooled ITL through exact per-request weights.
    recs = _recs(9, 3, seed=4, fail_every=5)
    got = bootstrap_distribution(recs, f"itl_{stat}", n_resamples=30, seed=5)
    assert got == pytest.approx(_ref(recs, f"itl_{stat}", 5, 30), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("stat", STATS)
def test_binned_itl_discrete_gaps_exact(stat):
    # > 16 gaps per request → binned path. Gaps take only the values 0.01 … 0.05 s, so
    # every quantile bin holds one distinct value; its bin mean is that value and the
    # binned percentiles equal np.percentile of the pooled drawn gaps exactly.
    recs = _recs(7, 20, seed=6, discrete=True, fail_every=3)
    got = bootstrap_distribution(recs, f"itl_{stat}", n_resamples=25, seed=8)
    assert got == pytest.approx(_ref(recs, f"itl_{stat}", 8, 25), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("stat", ["mean", "std", "min", "max", "count"])
def test_binned_itl_continuous_moments_exact(stat):
    # Mean/std/count come from per-request sums, min/max from per-request extremes: exact.
    recs = _recs(6, 30, seed=9)
    got = bootstrap_distribution(recs, f"itl_{stat}", n_resamples=20, seed=10)
    assert got == pytest.approx(_ref(recs, f"itl_{stat}", 10, 20), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("q", [50, 99])
def test_binned_itl_continuous_percentile_within_bins(q):
    # Percentiles are exact up to one bin: ≥ 256 uniform quantile bins over 6×31+ gaps
    # hold at most one or two gaps each, so the error is below the gap spacing near
    # the answer; bound it by the largest distance between neighbouring sorted gaps.
    recs = _recs(6, 30, seed=11)
    pooled = np.sort([g for r in recs for g in _itl(r)])
    tol = float(np.max(np.diff(pooled)))
    got = bootstrap_distribution(recs, f"itl_p{q}", n_resamples=20, seed=12)
    ref = _ref(recs, f"itl_p{q}", 12, 20)
    assert np.all(np.abs(got - ref) <= tol)


def test_scalar_metrics_match_plain_bootstrap():
    recs = _recs(11, 1, seed=13, fail_every=3)
    assert bootstrap_distribution(recs, "delivery", n_resamples=50, seed=14) == pytest.approx(
        _ref(recs, "delivery", 14, 50), abs=1e-12)
    assert bootstrap_distribution(recs, "request_throughput_rps", n_resamples=50, seed=14,
                                  duration_s=4.0) == pytest.approx(
        _ref(recs, "request_throughput_rps", 14, 50, duration_s=4.0), abs=1e-12)


def test_empty_records_and_bad_resamples():
    got = bootstrap_distribution([], "ttft_p50", n_resamples=3)
    assert got.shape == (3,) and np.isnan(got).all()
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_distribution(_recs(2, 1, 0), "ttft_p50", n_resamples=0)
    bootstrap_distribution(_recs(2, 1, 0), "ttft_p50", n_resamples=1)   # 1 is valid


@pytest.mark.parametrize("conf", [0.5, 0.9, 0.95])
def test_ci_is_percentile_of_finite_resamples(conf):
    recs = _recs(10, 2, seed=15, fail_every=2)
    ref = _ref(recs, "ttft_p90", 16, 60)
    ref = ref[np.isfinite(ref)]
    a = (1 - conf) / 2
    lo, hi = bootstrap_ci(recs, "ttft_p90", confidence=conf, n_resamples=60, seed=16)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(ref, [100 * a, 100 * (1 - a)])), abs=1e-12)
    assert type(lo) is float and type(hi) is float


def test_ci_defaults_and_passthrough():
    # Defaults: 95 %, 1000 resamples, seed 0; duration and thresholds are passed on.
    recs = _recs(8, 1, seed=17, fail_every=3)
    ref = _ref(recs, "request_throughput_rps", 0, 1000, duration_s=2.0)
    assert bootstrap_ci(recs, "request_throughput_rps", duration_s=2.0) == pytest.approx(
        tuple(np.percentile(ref, [2.5, 97.5])), abs=1e-12)


def test_ci_undefined_and_bad_confidence():
    recs = [RequestRecord(id="0", arrival_s=0.0, input_tokens=1, status="failed", finish_s=0.0)]
    lo, hi = bootstrap_ci(recs, "ttft_p50", n_resamples=5)
    assert np.isnan(lo) and np.isnan(hi)
    for c in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="confidence"):
            bootstrap_ci(recs, "ttft_p50", confidence=c)
