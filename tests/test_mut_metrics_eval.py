"""``metrics._eval``: metric names, SLO/goodput thresholds and the evaluator's scalars.

References: the name grammar and threshold forms in docs/metrics.md and the docstrings
of ``parse_name``/``parse_thresholds`` (percentiles in [0, 100]; SLO dict in seconds,
vLLM ``--goodput`` string in milliseconds, the tighter of two thresholds on one base;
a request with at most one output token has TPOT 0 for goodput, as in vLLM), and
rates/ratios of a four-request set computed by hand in the comments.
"""

from __future__ import annotations

import numpy as np
import pytest

from servelab.catalog._workload_types import SLO, SLOTarget
from servelab.errors import ConfigError
from servelab.metrics._columns import columns
from servelab.metrics._eval import Evaluator, Thresholds, parse_name, parse_thresholds
from servelab.records import RequestRecord


def rec(i, arrival, status="ok", out=0, first=None, finish=None, start=None):
    return RequestRecord(id=str(i), arrival_s=arrival, input_tokens=10, output_tokens=out, status=status,
                         first_token_s=first, finish_s=finish, start_s=start)


# ---------------------------------------------------------------- names
@pytest.mark.parametrize("name, want", [
    ("ttft_p0", ("ttft", "p0", 0.0)),          # both ends of [0, 100] are valid percentiles
    ("ttft_p100", ("ttft", "p100", 100.0)),
    ("e2el_median", ("e2e", "p50", 50.0)),
    ("itl_p99.9", ("itl", "p99.9", 99.9)),
    ("delivery", ("delivery", "", None)),
])
def test_parse_name(name, want):
    assert parse_name(name) == want


def test_parse_name_errors():
    with pytest.raises(ConfigError, match=r"percentile in metric 'ttft_p100.5' outside \[0, 100\]"):
        parse_name("ttft_p100.5")
    with pytest.raises(ConfigError, match=r"percentile in metric 'tpot_p101' outside \[0, 100\]"):
        parse_name("tpot_p101")
    with pytest.raises(ConfigError) as e:
        parse_name("ttft_p9x")
    msg = str(e.value)
    assert "unknown metric 'ttft_p9x'; valid: offered, completed, rejected, timed_out" in msg
    assert "<ttft|tpot|itl|e2e|queue|dispatch_lateness>_<mean|std|min|max|count|median|pQ>" in msg


# ---------------------------------------------------------------- thresholds
def test_slo_dict_takes_the_tighter_threshold_in_either_order():
    # ttft 2 s and ttft_p95 1 s: a request must meet the tighter, 1 s
    for slo in ({"ttft": 2.0, "ttft_p95": 1.0}, {"ttft_p95": 1.0, "ttft": 2.0}):
        th = parse_thresholds(slo)
        assert th.per_request_s == {"ttft": 1.0}
        assert th.targets == (("ttft_p95", "ttft", 95.0, 1.0),)


def test_zero_threshold_is_valid_nan_and_negative_are_not():
    assert parse_thresholds({"queue": 0}).per_request_s == {"queue": 0.0}
    with pytest.raises(ConfigError, match=r"SLO threshold for 'ttft' must be a non-negative number, got nan"):
        parse_thresholds({"ttft": float("nan")})
    with pytest.raises(ConfigError, match=r"SLO threshold for 'e2e' must be a non-negative number, got -1.0"):
        parse_thresholds({"e2e": -1})


@pytest.mark.parametrize("key", ["ttft_mean", "dispatch_lateness_p95"])
def test_slo_key_must_be_a_threshold_base_or_percentile(key):
    with pytest.raises(ConfigError, match=rf"SLO key '{key}' must be a metric \(ttft, tpot, itl, e2e, queue\) "
                                          r"or a percentile target like ttft_p95"):
        parse_thresholds({key: 1.0})


def test_slo_of_a_wrong_type():
    with pytest.raises(ConfigError, match=r"slo must be a catalog SLO or a dict, got int"):
        parse_thresholds(5)


def test_catalog_slo():
    th = parse_thresholds(SLO(targets=(SLOTarget(metric="ttft", percentile=95, threshold_s=2.0),
                                       SLOTarget(metric="tpot", percentile=50, threshold_s=0.05))))
    assert th.per_request_s == {"ttft": 2.0, "tpot": 0.05}
    assert th.targets == (("ttft_p95", "ttft", 95.0, 2.0), ("tpot_p50", "tpot", 50.0, 0.05))


def test_goodput_string_in_milliseconds():
    # vLLM form, commas or spaces between terms: 2000 ms = 2 s, 50 ms = 0.05 s, e2el -> e2e
    th = parse_thresholds(goodput="ttft:2000,tpot:50 e2el:5000")
    assert th.per_request_s == pytest.approx({"ttft": 2.0, "tpot": 0.05, "e2e": 5.0})
    # goodput replaces the SLO's per-request thresholds, the SLO's targets stay
    th = parse_thresholds({"ttft_p95": 1.0}, goodput={"tpot": 0.1, "e2el": 5})
    assert th.per_request_s == {"tpot": 0.1, "e2e": 5.0}
    assert th.targets == (("ttft_p95", "ttft", 95.0, 1.0),)


@pytest.mark.parametrize("term", ["ttft:20:00", "ttft", "ttft:abc"])
def test_goodput_bad_terms(term):
    with pytest.raises(ConfigError, match=rf"bad goodput term '{term}'; expected KEY:MS"):
        parse_thresholds(goodput=term)


def test_goodput_errors():
    with pytest.raises(ConfigError, match=r"unknown SLO metric 'foo'; valid: ttft, tpot, itl, e2e, queue, e2el"):
        parse_thresholds(goodput={"foo": 1.0})
    with pytest.raises(ConfigError, match=r"goodput must be a dict or a 'ttft:MS tpot:MS' string, got 5"):
        parse_thresholds(goodput=5)


# ---------------------------------------------------------------- evaluator
def four():
    # r0 ok  arrival 0, start 0.5, first 1,   finish 3,   3 tokens: ttft 1,   tpot (3-1)/2 = 1,   queue 0.5
    # r1 ok  arrival 1, start 1.2, first 1.5, finish 2,   2 tokens: ttft 0.5, tpot 0.5,           queue 0.2
    # r2 rejected at 2
    # r3 ok  arrival 2, start 2.1, first 2.2, finish 2.5, 1 token:  ttft 0.2, no tpot (0 for goodput), queue 0.1
    # observed duration: last finish 3 - first arrival 0 = 3 s
    return columns([rec(0, 0, out=3, first=1, finish=3, start=0.5),
                    rec(1, 1, out=2, first=1.5, finish=2, start=1.2),
                    rec(2, 2, status="rejected"),
                    rec(3, 2, out=1, first=2.2, finish=2.5, start=2.1)])


ONES = np.ones((1, 4))


def ev(thr=None, duration_s=None):
    return Evaluator(four(), duration_s=duration_s, thresholds=parse_thresholds(thr) if thr else Thresholds())


@pytest.mark.parametrize("thr, good", [
    ({"tpot": 0.4}, 1),    # r0 (1) and r1 (0.5, two tokens: a real gap) fail; r3 (one token) passes
    ({"itl": 0.4}, 1),     # ITL thresholds apply per request to the same mean gap
    ({"queue": 0.3}, 2),   # r1 (0.2) and r3 (0.1)
    ({"ttft": 0.5}, 2),    # r1 (0.5, equal passes) and r3 (0.2)
])
def test_goodput_and_attainment(thr, good):
    e = ev(thr)
    assert e.scalar("goodput_rps", ONES)[0] == pytest.approx(good / 3)
    assert e.scalar("slo_attainment", ONES)[0] == pytest.approx(good / 4)


def test_rows_are_separate_resamples():
    # row 0 weights 1,1,1,1; row 1 weights 2,0,1,0 (r0 twice, r2 once)
    W = np.array([[1.0, 1, 1, 1], [2.0, 0, 1, 0]])
    e = ev({"tpot": 0.4})
    # ok weight 3 of 4, and 2 of 3
    assert e.scalar("delivery", W) == pytest.approx([3 / 4, 2 / 3])
    # good (only r3): 1 of 4, 0 of 3
    assert e.scalar("slo_attainment", W) == pytest.approx([1 / 4, 0.0])


def test_ratios_with_fractional_weights():
    # weights 0.1 each: ok 0.3 of offered 0.4 -> 0.75 whatever the scale
    W = np.full((1, 4), 0.1)
    assert ev().scalar("delivery", W)[0] == pytest.approx(0.75)
    assert ev({"ttft": 0.5}).scalar("slo_attainment", W)[0] == pytest.approx(0.5)
    # no weight at all: undefined
    assert np.isnan(ev().scalar("delivery", np.zeros((1, 4)))[0])


def test_durations():
    assert ev().duration_s == pytest.approx(3.0)
    assert ev().scalar("request_throughput_rps", ONES)[0] == pytest.approx(3 / 3)
    # a given duration below one second is valid: 3 ok in 0.5 s
    e = ev(duration_s=0.5)
    assert e.scalar("request_throughput_rps", ONES)[0] == pytest.approx(6.0)
    assert e.scalar("duration_s", ONES)[0] == pytest.approx(0.5)
    with pytest.raises(ConfigError, match=r"duration_s must be > 0, got 0"):
        ev(duration_s=0)


def test_observed_duration_without_finishes():
    # only arrivals (2 and 6, none finished): span 6 - 2 = 4
    c = columns([rec(0, 2, status="rejected"), rec(1, 6, status="failed")])
    assert Evaluator(c, duration_s=None, thresholds=Thresholds()).duration_s == pytest.approx(4.0)
    # offset start: arrivals 2 and 2.5, finish 3 -> 1 s, not 3 + 2
    c = columns([rec(0, 2, out=1, first=2.5, finish=3), rec(1, 2.5, status="rejected")])
    assert Evaluator(c, duration_s=None, thresholds=Thresholds()).duration_s == pytest.approx(1.0)
    # a span of 0.5 s is a duration
    c = columns([rec(0, 2, out=1, first=2.2, finish=2.5)])
    assert Evaluator(c, duration_s=None, thresholds=Thresholds()).duration_s == pytest.approx(0.5)


def test_no_span_means_no_rates():
    # one request that never finished: no span, so no duration and undefined rates
    c = columns([rec(0, 3, status="rejected")])
    e = Evaluator(c, duration_s=None, thresholds=Thresholds())
    assert e.duration_s is None
    for name in ("duration_s", "request_throughput_rps"):
        x = e.scalar(name, np.ones((2, 1)))
        assert x.dtype == np.float64 and np.isnan(x).all()


def test_latency_returns_what_was_asked():
    e = ev()
    out = e.latency("ttft", [], [50.0], ONES)
    assert set(out) == {"p50"}
    # ttft 1, 0.5, 0.2 -> median 0.5
    assert out["p50"][0] == pytest.approx(0.5)


def test_samples_keep_request_order_among_ties():
    # 40 ok requests, ttft 2 for even i and 1 for odd i: sorted values, ties in request order
    c = columns([rec(i, 0, out=1, first=2.0 if i % 2 == 0 else 1.0, finish=3) for i in range(40)])
    v, w, req = Evaluator(c, duration_s=None, thresholds=Thresholds()).samples("ttft")
    assert list(v) == [1.0] * 20 + [2.0] * 20
    assert list(req) == list(range(1, 40, 2)) + list(range(0, 40, 2))


def test_unknown_scalar():
    with pytest.raises(ConfigError, match=r"unknown scalar metric 'ttft'"):
        ev().scalar("ttft", ONES)


# ---------------------------------------------------------------- summary built on the evaluator
def test_summary_keys_types_and_thresholds():
    from servelab.metrics._columns import LATENCY_BASES
    from servelab.metrics._eval import SCALAR_METRICS
    from servelab.metrics.summary import summarize
    s = summarize(four(), percentiles=[50, 99])
    # keys in docs/metrics.md: the scalars, one row per latency base, and the settings used
    assert set(s) == set(SCALAR_METRICS) | {f"{b}_s" for b in LATENCY_BASES} | {
        "percentiles", "slo_thresholds_s", "slo_met"}
    # counts are integers: 4 offered, 3 completed, 1 rejected, 3 + 2 + 1 = 6 output tokens
    for key, want in (("offered", 4), ("completed", 3), ("rejected", 1), ("total_output_tokens", 6)):
        assert s[key] == want and isinstance(s[key], int), key
    assert s["goodput_rps"] is None and s["slo_attainment"] is None
    assert s["percentiles"] == [50.0, 99.0]
    assert s["slo_thresholds_s"] is None and s["slo_met"] is None
    # with a per-request threshold and a target: ttft <= 0.5 for r1 and r3 -> 2 good in 3 s
    s = summarize(four(), slo={"ttft": 0.5, "ttft_p50": 0.6})
    assert s["slo_thresholds_s"] == {"ttft": 0.5}
    assert s["goodput_rps"] == pytest.approx(2 / 3)
    assert s["slo_attainment"] == pytest.approx(2 / 4)
    # ttft 0.2, 0.5, 1 -> p50 0.5 <= 0.6
    assert s["slo_met"] == {"ttft_p50": True}


def test_summary_target_without_samples_is_unknown():
    from servelab.metrics.summary import summarize
    # one-token requests have no TPOT: the tpot_p95 target can be neither met nor missed
    s = summarize(columns([rec(0, 0, out=1, first=1, finish=1)]), slo={"tpot_p95": 0.1})
    assert s["slo_met"] == {"tpot_p95": None}


def test_metric_value_uses_goodput_thresholds():
    from servelab.metrics.summary import metric_value
    # goodput ttft 500 ms: r1 (0.5) and r3 (0.2) are good, 2 in 3 s
    assert metric_value(four(), "goodput_rps", goodput="ttft:500") == pytest.approx(2 / 3)
    assert np.isnan(metric_value(four(), "goodput_rps"))
