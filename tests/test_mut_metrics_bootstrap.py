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


def _recs(n: int, gaps_per_req: int, seed: int, discrete: bool = False, fail_every: int = 0,
          no_times_every: int = 0):
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
            finish_s=a if bad else times[-1],
            token_times_s=None if bad or (no_times_every and i % no_times_every == 1) else times))
    return out


def _draws(seed: int, n: int, R: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(R, n))


def _stat(vals: list[float], stat: str) -> float:
    if not vals:   # no sample: count 0, every other statistic undefined
        return 0.0 if stat == "count" else float("nan")
    x = np.array(vals)
    if stat.startswith("p"):
        return float(np.percentile(x, float(stat[1:])))
    return {"mean": x.mean, "std": x.std, "min": x.min, "max": x.max,
            "count": lambda: float(x.size)}[stat]()


def _ttft(r):
    return None if r.status != "ok" else r.first_token_s - r.arrival_s


def _itl(r):
    # Gaps of the token times; without token times, (out − 1) gaps of TPOT =
    # (finish − first token) / (out − 1).
    if r.status != "ok":
        return []
    if r.token_times_s is None:
        k = r.output_tokens - 1
        return [(r.finish_s - r.first_token_s) / k] * k
    return list(np.diff(r.token_times_s))


def _ref(recs, name, seed, R, duration_s=None):
    rows = _draws(seed, len(recs), R)
    out = []
    for row in rows:
        drawn = [recs[i] for i in row]
        if name == "slo_attainment":   # goodput {"ttft": 0.3}: ok and TTFT ≤ 0.3 s
            out.append(sum(_ttft(r) is not None and _ttft(r) <= 0.3 for r in drawn) / len(drawn))
        elif name == "delivery":
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
    # 7 requests, the first and last failed (no gaps), 5 × (40–42) gaps > 16 × 7.
    recs = _recs(7, 40, seed=6, discrete=True, fail_every=6)
    got = bootstrap_distribution(recs, f"itl_{stat}", n_resamples=25, seed=8)
    assert got == pytest.approx(_ref(recs, f"itl_{stat}", 8, 25), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("stat", ["mean", "std", "min", "max", "count"])
def test_binned_itl_continuous_moments_exact(stat):
    # Mean/std/count come from per-request sums, min/max from per-request extremes: exact.
    # One request without token times: its TPOT counts (out − 1) times (weighted sample).
    recs = _recs(6, 30, seed=9, no_times_every=4)
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


@pytest.mark.parametrize("stat", ["mean", "std", "min", "max", "count", "p50", "p90"])
def test_binned_itl_weighted_and_empty_rows(stat):
    # Request 0 has 80 gaps, request 1 a single gap (2 tokens), request 2 failed,
    # request 3 one weighted sample (below): 82 samples > 16 × 4 → binned. Resamples drawing only requests 1 and 2 have 1 or 2 gaps;
    # those drawing only request 2 have none (NaN). Request 3 has no token times:
    # 9 tokens → 8 gaps of its TPOT (weight 8).
    recs = [
        RequestRecord(id="0", arrival_s=0.0, input_tokens=1, output_tokens=81, first_token_s=0.5,
                      finish_s=0.5 + 0.01 * 80, token_times_s=[0.5 + 0.01 * k for k in range(81)]),
        RequestRecord(id="1", arrival_s=0.0, input_tokens=1, output_tokens=2, first_token_s=0.2,
                      finish_s=0.27, token_times_s=[0.2, 0.27]),
        RequestRecord(id="2", arrival_s=0.0, input_tokens=1, status="failed", finish_s=0.0),
        RequestRecord(id="3", arrival_s=0.0, input_tokens=1, output_tokens=9, first_token_s=0.1,
                      finish_s=0.1 + 8 * 0.03),
    ]
    got = bootstrap_distribution(recs, f"itl_{stat}", n_resamples=1000, seed=21)
    ref = _ref(recs, f"itl_{stat}", 21, 1000)
    assert (ref == 0).any() if stat == "count" else np.isnan(ref).any()
    assert np.isnan(got).tolist() == np.isnan(ref).tolist()
    ok = ~np.isnan(ref)
    # std from per-request sums: exact up to rounding, ~1e-9 s where the variance is 0.
    assert got[ok] == pytest.approx(ref[ok], rel=1e-9, abs=1e-8 if stat == "std" else 1e-12)


@pytest.mark.parametrize("stat", ["p50", "p37", "p90", "p99"])
def test_itl_at_threshold_uses_exact_weights(stat):
    # 40 requests × exactly 16 gaps = 16·n: not above the threshold, so the pooled ITL is
    # resampled exactly (640 continuous gaps; binning would merge neighbours).
    recs = []
    rng = np.random.default_rng(22)
    for i in range(40):
        times = list(np.r_[0.0, np.cumsum(rng.gamma(3.0, 0.01, 16))] + 1.0)
        recs.append(RequestRecord(id=str(i), arrival_s=0.5, input_tokens=1, output_tokens=17,
                                  first_token_s=times[0], finish_s=times[-1], token_times_s=times))
    got = bootstrap_distribution(recs, f"itl_{stat}", n_resamples=5, seed=23)
    assert got == pytest.approx(_ref(recs, f"itl_{stat}", 23, 5), rel=1e-12, abs=1e-15)


def test_ttft_on_long_outputs_is_not_itl():
    # > 16 gaps per request must not send a TTFT metric down the ITL path.
    recs = _recs(6, 30, seed=24)
    for stat in ("p50", "mean"):
        got = bootstrap_distribution(recs, f"ttft_{stat}", n_resamples=10, seed=25)
        assert got == pytest.approx(_ref(recs, f"ttft_{stat}", 25, 10), rel=1e-9)


def test_distribution_defaults_are_1000_resamples_seed_0():
    recs = _recs(5, 1, seed=26)
    got = bootstrap_distribution(recs, "ttft_mean")
    assert got.shape == (1000,)
    assert got == pytest.approx(_ref(recs, "ttft_mean", 0, 1000), rel=1e-12)


def test_goodput_thresholds_passed_through():
    # slo_attainment with goodput {"ttft": 0.3 s}: share of drawn requests that are ok
    # with TTFT ≤ 0.3 s (request 0, 5, 10 failed).
    recs = _recs(12, 1, seed=27, fail_every=5)
    ref = _ref(recs, "slo_attainment", 28, 80)
    got = bootstrap_distribution(recs, "slo_attainment", n_resamples=80, seed=28,
                                 goodput={"ttft": 0.3})
    assert got == pytest.approx(ref, abs=1e-12)
    assert bootstrap_ci(recs, "slo_attainment", n_resamples=80, seed=28,
                        goodput={"ttft": 0.3}) == pytest.approx(
        tuple(np.percentile(ref, [2.5, 97.5])), abs=1e-12)


def test_ci_default_resample_count():
    # Default 1000 resamples, seed 0, on a continuous statistic.
    recs = _recs(7, 1, seed=29)
    ref = _ref(recs, "ttft_mean", 0, 1000)
    assert bootstrap_ci(recs, "ttft_mean") == pytest.approx(
        tuple(np.percentile(ref, [2.5, 97.5])), rel=1e-12)


def test_scalar_and_exact_itl_multi_chunk():
    # delivery: n = 4001 → 499 resamples per chunk; 600 resamples = 499 + 101.
    recs = _recs(4001, 0, seed=30, discrete=True, fail_every=7)
    ok = np.array([r.status == "ok" for r in recs], dtype=float)
    rows = _draws(31, 4001, 600)
    got = bootstrap_distribution(recs, "delivery", n_resamples=600, seed=31)
    assert np.allclose(got, ok[rows].mean(axis=1), rtol=0, atol=1e-12)
    # Exact pooled ITL: 2001 requests × 1 gap, 2e6 // 2001 = 999 per chunk; 1200 = 999 + 201.
    recs = [RequestRecord(id=str(i), arrival_s=0.0, input_tokens=1, output_tokens=2,
                          first_token_s=0.1, finish_s=0.1 + 0.001 * (i % 37 + 1),
                          token_times_s=[0.1, 0.1 + 0.001 * (i % 37 + 1)]) for i in range(2001)]
    gap = np.array([_itl(r)[0] for r in recs])
    rows = _draws(33, 2001, 1200)
    got = bootstrap_distribution(recs, "itl_mean", n_resamples=1200, seed=33)
    assert np.allclose(got, gap[rows].mean(axis=1), rtol=1e-12, atol=1e-15)


def _gappy(counts, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i, k in enumerate(counts):
        times = list(1.0 + np.r_[0.0, np.cumsum(rng.gamma(3.0, 0.01, k))])
        out.append(RequestRecord(id=str(i), arrival_s=0.5, input_tokens=1, output_tokens=k + 1,
                                 first_token_s=times[0], finish_s=times[-1], token_times_s=times))
    return out


@pytest.mark.parametrize("stat", ["p0", "p25", "p50", "p90", "p100"])
def test_binned_itl_singleton_bins_exact(stat):
    # 257 continuous gaps over 15 requests (257 > 16 × 15 → binned). The bin edges include
    # the quantiles at levels k/256, i.e. at sorted positions k·256/256 = k: every sample
    # is an edge (the denser upper levels only add edges between samples), so each bin
    # holds at most one gap and the binned percentiles are the exact ones.
    recs = _gappy([17] * 14 + [19], seed=40)
    got = bootstrap_distribution(recs, f"itl_{stat}", n_resamples=30, seed=41)
    assert got == pytest.approx(_ref(recs, f"itl_{stat}", 41, 30), rel=1e-12, abs=1e-15)


def test_binned_itl_two_chunks():
    # 7 requests, ≈ 440 bins: 2e6 // 440 = 4545 resamples per chunk, so 4600 = 4545 + 55.
    # Reference mean of resample r: Σ_drawn (sum of gaps) / Σ_drawn (number of gaps).
    recs = _gappy([18] * 6 + [21], seed=42)
    s1 = np.array([sum(_itl(r)) for r in recs])
    s0 = np.array([len(_itl(r)) for r in recs], dtype=float)
    rows = _draws(43, 7, 4600)
    got = bootstrap_distribution(recs, "itl_mean", n_resamples=4600, seed=43)
    assert np.allclose(got, s1[rows].sum(axis=1) / s0[rows].sum(axis=1), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name,stat", [("ttft_p50.0", "p50"), ("ttft_median", "p50"),
                                       ("ttft_p95.0", "p95")])
def test_ttft_percentile_spellings(name, stat):
    # "p50.0" and "median" name the same percentile as "p50".
    recs = _recs(9, 1, seed=44)
    got = bootstrap_distribution(recs, name, n_resamples=20, seed=45)
    assert got == pytest.approx(_ref(recs, f"ttft_{stat}", 45, 20), rel=1e-12)


def test_binned_itl_empty_resamples_give_nan_without_warnings():
    # Resamples that draw only the failed request have no ITL sample: NaN, quietly
    # (no numpy RuntimeWarning from the 0/0 of an empty resample).
    import warnings
    recs = _gappy([40], seed=46) + [
        RequestRecord(id="f", arrival_s=0.0, input_tokens=1, status="failed", finish_s=0.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for stat in ("mean", "std"):
            got = bootstrap_distribution(recs, f"itl_{stat}", n_resamples=40, seed=47)
            ref = _ref(recs, f"itl_{stat}", 47, 40)
            assert np.isnan(ref).any() and np.isnan(got).tolist() == np.isnan(ref).tolist()


# ---- weighted order statistics (_stats) against np.repeat + numpy ----------------------

from servelab.metrics._stats import row_moments, row_percentiles  # noqa: E402


def test_row_moments_match_numpy_on_repeated_values():
    # Integer weights: the weighted population moments are those of the repeated values.
    # Large offset (1e8 s) with millisecond spread: E[x²] − E[x]² without centring loses
    # every digit (x² ≈ 1e16, spacing ≈ 2), the centred form keeps them.
    v = 1e8 + np.array([0.0, 0.001, 0.003, 0.004])
    W = np.array([[1.0, 2.0, 0.0, 3.0], [0.0, 0.0, 1.0, 0.0], [4.0, 1.0, 1.0, 1.0]])
    N, mean, std = row_moments(v, W)
    for r in range(3):
        x = np.repeat(v, W[r].astype(int))
        assert N[r] == x.size
        assert mean[r] == pytest.approx(np.mean(x), rel=1e-15)
        assert std[r] == pytest.approx(np.std(x), rel=1e-6, abs=1e-12)


def test_row_stats_empty_rows_are_nan_quietly():
    import warnings
    v = np.array([1.0, 2.0, 3.0])
    W = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        N, mean, std = row_moments(v, W)
        P = row_percentiles(v, W, [0, 50, 100])
        N0, mean0, std0 = row_moments(np.empty(0), np.zeros((2, 0)))   # no samples at all
    assert N0.tolist() == [0.0, 0.0] and np.isnan(mean0).all() and np.isnan(std0).all()
    assert N[0] == 0 and np.isnan(mean[0]) and np.isnan(std[0])
    assert np.isnan(P[0]).all()
    assert P[1].tolist() == [2.0, 2.5, 3.0]     # np.percentile([2, 3], [0, 50, 100])


def test_row_percentiles_single_weight():
    # One drawn value: every percentile is that value (np.percentile([1.0], q) = 1.0),
    # not an interpolation towards later sorted values.
    v = np.array([1.0, 2.0, 3.0])
    P = row_percentiles(v, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), [0, 30, 50, 100])
    assert P.tolist() == [[1.0] * 4, [2.0] * 4]


@pytest.mark.parametrize("q", [-0.1, 100.5, 101.0])
def test_row_percentiles_rejects_q_outside_0_100(q):
    with pytest.raises(ValueError, match=r"percentile .* outside \[0, 100\]"):
        row_percentiles(np.array([1.0]), np.array([[1.0]]), [q])
