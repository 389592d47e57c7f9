"""Bootstrap intervals, weighted percentiles, order invariance, time series."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servelab.metrics import bootstrap_ci, bootstrap_distribution, metric_value, summarize, timeseries_from_records
from servelab.metrics._stats import row_percentiles
from servelab.records import RequestRecord


def synthetic(n: int, seed: int = 0, token_times: bool = False) -> list[RequestRecord]:
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        a = i * 0.05
        status = "ok" if rng.random() > 0.1 else "rejected"
        out = int(rng.integers(1, 40))
        ttft = float(rng.lognormal(-1.0, 0.6))
        gaps = rng.gamma(4.0, 0.005, max(out - 1, 0))
        times = list(a + ttft + np.r_[0.0, np.cumsum(gaps)])
        recs.append(RequestRecord(
            id=str(i), arrival_s=a, input_tokens=int(rng.integers(50, 500)), output_tokens=out,
            status=status, first_token_s=times[0] if status == "ok" else None,
            finish_s=times[-1] if status == "ok" else a,
            token_times_s=times if (status == "ok" and token_times) else None))
    return recs


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=30),
       st.lists(st.integers(0, 4), min_size=30, max_size=30),
       st.floats(0, 100))
def test_weighted_percentile_equals_numpy_on_repeated_values(vals, counts, q):
    v = np.sort(np.array(vals))
    w = np.array(counts[: v.size], dtype=float)
    if w.sum() == 0:
        w[0] = 1
    got = row_percentiles(v, w[None, :], [q])[0, 0]
    assert got == pytest.approx(np.percentile(np.repeat(v, w.astype(int)), q), rel=1e-9, abs=1e-9)


record_st = st.builds(
    lambda i, a, ttft, dur, out, status, cached: RequestRecord(
        id=str(i), arrival_s=a, input_tokens=100, output_tokens=out, status=status,
        first_token_s=a + ttft, finish_s=a + ttft + dur, cached_tokens=cached, start_s=a + ttft / 2),
    st.integers(0, 10**6), st.floats(0, 100), st.floats(0, 5), st.floats(0, 20), st.integers(0, 50),
    st.sampled_from(["ok", "ok", "ok", "rejected", "failed", "timed_out"]), st.integers(0, 100))


@settings(max_examples=40, deadline=None)
@given(st.lists(record_st, min_size=1, max_size=25), st.randoms(use_true_random=False))
def test_summary_invariant_to_record_order(recs, rnd):
    shuffled = list(recs)
    rnd.shuffle(shuffled)
    slo = {"ttft_p90": 1.0, "tpot": 0.5}
    a, b = summarize(recs, slo=slo), summarize(shuffled, slo=slo)
    # conservation: every offered request has exactly one status
    assert a["completed"] + a["rejected"] + a["failed"] + a["timed_out"] + a["cancelled"] == a["offered"] == len(recs)
    assert 0.0 <= a["delivery"] <= 1.0 and 0.0 <= a["slo_attainment"] <= a["delivery"]
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            for kk in a[k]:
                assert a[k][kk] == pytest.approx(b[k][kk], rel=1e-9, abs=1e-12) if a[k][kk] is not None else b[k][kk] is None
        elif isinstance(a[k], float):
            assert a[k] == pytest.approx(b[k], rel=1e-12)
        else:
            assert a[k] == b[k]


def test_rejected_and_failed_excluded_from_latency_counted_in_delivery():
    ok = [RequestRecord(id=str(i), arrival_s=float(i), first_token_s=i + 1.0, finish_s=i + 2.0,
                        input_tokens=1, output_tokens=2) for i in range(4)]
    # a failed request with a huge TTFT must not move the latency percentiles
    bad = [RequestRecord(id="f", arrival_s=0.0, first_token_s=100.0, finish_s=200.0, input_tokens=1,
                         output_tokens=2, status="failed"),
           RequestRecord(id="r", arrival_s=0.0, input_tokens=1, status="rejected")]
    s = summarize(ok + bad)
    assert s["ttft_s"]["max"] == pytest.approx(1.0) and s["ttft_s"]["count"] == 4
    assert s["delivery"] == pytest.approx(4 / 6)


def test_bootstrap_contains_estimate_narrows_and_is_seeded():
    small, large = synthetic(300, seed=1), synthetic(4000, seed=1)
    for name in ("ttft_p95", "ttft_p50", "e2e_mean", "delivery", "tpot_p90", "throughput_tokens_per_s"):
        est = metric_value(large, name)
        lo, hi = bootstrap_ci(large, name, n_resamples=400, seed=2)
        assert lo <= est <= hi, name
        slo_, shi = bootstrap_ci(small, name, n_resamples=400, seed=2)
        assert (hi - lo) < (shi - slo_), name
    assert bootstrap_ci(small, "ttft_p95", seed=5) == bootstrap_ci(small, "ttft_p95", seed=5)
    assert bootstrap_ci(small, "ttft_p95", seed=5) != bootstrap_ci(small, "ttft_p95", seed=6)


def test_bootstrap_goodput_needs_slo_and_matches_binomial_width():
    recs = synthetic(2000, seed=3)
    assert all(math.isnan(x) for x in bootstrap_ci(recs, "goodput_rps", n_resamples=50))
    p = metric_value(recs, "slo_attainment", slo={"ttft": 0.4})
    lo, hi = bootstrap_ci(recs, "slo_attainment", slo={"ttft": 0.4}, n_resamples=1000)
    # a proportion's 95% interval is about ±1.96·sqrt(p(1−p)/n) (normal approximation)
    half = 1.96 * math.sqrt(p * (1 - p) / len(recs))
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.15)


def test_bootstrap_pooled_itl_exact_and_binned_paths():
    few = synthetic(400, seed=4, token_times=True)           # < 16 gaps/request: exact path
    est = metric_value(few, "itl_p90")
    lo, hi = bootstrap_ci(few, "itl_p90", n_resamples=300)
    assert lo <= est <= hi
    many = []
    rng = np.random.default_rng(9)
    for i in range(600):                                       # 100 gaps/request: binned path
        t0 = i * 0.1 + 0.3
        times = list(t0 + np.r_[0.0, np.cumsum(rng.gamma(4.0, 0.005, 100))])
        many.append(RequestRecord(id=str(i), arrival_s=i * 0.1, input_tokens=10, output_tokens=101,
                                  first_token_s=t0, finish_s=times[-1], token_times_s=times))
    for name in ("itl_p99", "itl_p50", "itl_mean", "itl_max"):
        est = metric_value(many, name)
        lo, hi = bootstrap_ci(many, name, n_resamples=200)
        assert lo <= est * 1.0001 and est <= hi * 1.0001, (name, est, lo, hi)
    d = bootstrap_distribution(many, "itl_mean", n_resamples=50)
    assert d.shape == (50,) and np.isfinite(d).all()


def test_timeseries_hand_computed():
    recs = [
        RequestRecord(id="a", arrival_s=0.0, first_token_s=0.5, finish_s=2.0, input_tokens=1,
                      output_tokens=2, token_times_s=[0.5, 1.5]),
        RequestRecord(id="b", arrival_s=1.0, first_token_s=2.0, finish_s=3.0, input_tokens=1,
                      output_tokens=3),
        RequestRecord(id="c", arrival_s=1.5, finish_s=1.5, input_tokens=1, status="rejected"),
    ]
    ts = timeseries_from_records(recs, 1.0)
    assert ts["t_s"] == [0.0, 1.0, 2.0, 3.0]
    assert ts["offered_rps"] == [1.0, 2.0, 0.0, 0.0]
    # in system: a over [0, 2), b over [1, 3), c for zero time
    assert ts["running"] == pytest.approx([1.0, 2.0, 1.0, 0.0])
    # tokens: a at 0.5 and 1.5; b first at 2.0, 2 more spread over (2, 3]
    assert ts["throughput_tokens_per_s"] == pytest.approx([1.0, 1.0, 3.0, 0.0])
    assert ts["delivery"] == [1.0, 0.5, None, None]
    assert ts["completed_rps"] == [0.0, 0.0, 1.0, 1.0]
    assert ts["rejected_rps"] == [0.0, 1.0, 0.0, 0.0]
    json.dumps(ts, allow_nan=False)
