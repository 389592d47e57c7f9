"""``metrics.timeseries`` on tiny record sets worked out by hand.

References: the definitions in the module docstring of ``servelab.metrics.timeseries``
(half-open buckets [k·b, (k+1)·b), rates per second, tokens placed at their token
times or spread uniformly over (first_token_s, finish_s], time-averaged requests in
system, delivery by arrival bucket, numpy linear-interpolation percentiles of the ok
requests arriving in a bucket) and the rounding rule of ``default_bucket_s`` (about
``buckets`` buckets, rounded up to 1, 2 or 5 × 10^k s, at least 1 ms). Every expected
value is derived in the comments, never read from a run.
"""

from __future__ import annotations

import pytest

from servelab.metrics.timeseries import (
    TIMESERIES_FORMAT,
    default_bucket_s,
    run_timeseries,
    timeseries_from_records,
)
from servelab.records import RequestRecord


def rec(i, arrival, status="ok", out=0, first=None, finish=None, times=None):
    return RequestRecord(id=str(i), arrival_s=arrival, input_tokens=10, output_tokens=out,
                         status=status, first_token_s=first, finish_s=finish, token_times_s=times)


def five():
    # r0 ok  [0.0, 1.5): first 0.5, 3 tokens, no token times -> 1 at 0.5, 2 spread over (0.5, 1.5]
    # r1 ok  [0.2, 2.7): token times 1.2, 2.0 (exactly on an edge), 2.7
    # r2 rejected at 1.0 (exactly on an edge), no finish
    # r3 timed_out [2.5, 3.5): its 4 tokens are not ok output and must not count
    # r4 ok  [2.0, 3.0): one token at 2.5
    return [
        rec(0, 0.0, out=3, first=0.5, finish=1.5),
        rec(1, 0.2, out=3, first=1.2, finish=2.7, times=[1.2, 2.0, 2.7]),
        rec(2, 1.0, status="rejected"),
        rec(3, 2.5, status="timed_out", out=4, first=3.0, finish=3.5, times=[3.0, 3.2, 3.3, 3.4]),
        rec(4, 2.0, out=1, first=2.5, finish=3.0),
    ]


def approx_list(xs):
    return [None if x is None else pytest.approx(x, abs=1e-9) for x in xs]


def test_five_requests_one_second_buckets():
    ts = timeseries_from_records(five(), 1.0)
    # last event: r3 finishes at 3.5 -> floor(3.5/1) + 1 = 4 buckets
    assert ts["bucket_s"] == 1.0
    assert ts["t_s"] == [0.0, 1.0, 2.0, 3.0]
    # arrivals: r0, r1 -> b0; r2 (1.0) -> b1; r3 (2.5), r4 (2.0) -> b2
    assert ts["offered_rps"] == approx_list([2, 1, 2, 0])
    # ok finishes: r0 1.5 -> b1, r1 2.7 -> b2, r4 3.0 -> b3 (edge belongs to the upper bucket)
    assert ts["completed_rps"] == approx_list([0, 1, 1, 1])
    assert ts["rejected_rps"] == approx_list([0, 1, 0, 0])
    # r3 counted at its finish 3.5 -> b3
    assert ts["failed_rps"] == approx_list([0, 0, 0, 1])
    # tokens emitted before edges 0..4:
    #   r0: 0, 1 + 2·(1-0.5)/1 = 2, 3, 3, 3
    #   r1 (times < E): 0, 0, 1, 3, 3   (2.0 is not before edge 2.0)
    #   r4: 0, 0, 0, 1, 1
    #   sum 0, 2, 4, 7, 7 -> per bucket 2, 2, 3, 0
    assert ts["throughput_tokens_per_s"] == approx_list([2, 2, 3, 0])
    # in system: r0 [0,1.5), r1 [0.2,2.7), r2 [1,1) empty, r3 [2.5,3.5), r4 [2,3)
    #   b0: 1.0 + 0.8 = 1.8; b1: 0.5 + 1.0 = 1.5; b2: 0.7 + 0.5 + 1.0 = 2.2; b3: 0.5
    assert ts["running"] == approx_list([1.8, 1.5, 2.2, 0.5])
    # ok among arrivals: b0 2/2, b1 0/1, b2 1/2, b3 none
    assert ts["delivery"] == approx_list([1.0, 0.0, 0.5, None])
    # TTFT: r0 0.5, r1 1.0 (b0); r4 0.5 (b2). Linear interpolation on [0.5, 1.0]:
    #   p50 0.75, p95 0.5 + 0.95·0.5 = 0.975, p99 0.995
    assert ts["ttft_p50_s"] == approx_list([0.75, None, 0.5, None])
    assert ts["ttft_p95_s"] == approx_list([0.975, None, 0.5, None])
    assert ts["ttft_p99_s"] == approx_list([0.995, None, 0.5, None])
    # TPOT: r0 (1.5 - 0.5)/2 = 0.5, r1 (2.5 - 1.0)/2 = 0.75; r4 has one token -> none in b2
    assert ts["tpot_p50_s"] == approx_list([0.625, None, None, None])
    assert ts["tpot_p95_s"] == approx_list([0.5 + 0.95 * 0.25, None, None, None])
    # E2E: r0 1.5, r1 2.5 (b0): p50 2.0, p95 1.5 + 0.95 = 2.45; r4 1.0 (b2)
    assert ts["e2e_p50_s"] == approx_list([2.0, None, 1.0, None])
    assert ts["e2e_p95_s"] == approx_list([2.45, None, 1.0, None])


def test_five_requests_two_second_buckets_are_rates():
    ts = timeseries_from_records(five(), 2.0)
    # floor(3.5/2) + 1 = 2 buckets: [0,2), [2,4)
    assert ts["t_s"] == [0.0, 2.0]
    assert ts["offered_rps"] == approx_list([3 / 2, 2 / 2])
    assert ts["completed_rps"] == approx_list([1 / 2, 2 / 2])
    assert ts["rejected_rps"] == approx_list([1 / 2, 0])
    assert ts["failed_rps"] == approx_list([0, 1 / 2])
    # cumulative tokens at 0, 2, 4: 0, 4, 7
    assert ts["throughput_tokens_per_s"] == approx_list([4 / 2, 3 / 2])
    # ∫N: [0,2) 1.8 + 1.5 = 3.3, [2,4) 2.2 + 0.5 = 2.7, averaged over 2 s
    assert ts["running"] == approx_list([1.65, 1.35])
    assert ts["delivery"] == approx_list([2 / 3, 1 / 2])


def test_untimed_tokens_first_on_an_edge_spread_to_finish():
    # 5 tokens, first exactly at 1.0, the other 4 uniform over (1.0, 3.0]:
    # before edges 0..4: 0, 0 (1.0 is not before 1.0), 1 + 4·0.5 = 3, 5, 5
    ts = timeseries_from_records([rec(0, 0.0, out=5, first=1.0, finish=3.0)], 1.0)
    assert ts["throughput_tokens_per_s"] == approx_list([0, 3, 2, 0])
    ts = timeseries_from_records([rec(0, 0.0, out=5, first=1.0, finish=3.0)], 0.5)
    # edges 0, .5, ..., 3.5: 1 + 4·(E-1)/2 for E in (1, 3]: 2, 3, 4, 5; per 0.5 s bucket ÷ 0.5
    assert ts["throughput_tokens_per_s"] == approx_list([0, 0, 4, 2, 2, 2, 0])


def test_untimed_without_first_token_or_finish():
    # a: first token unknown -> all 3 tokens at the finish 2.0 (bucket 2)
    # b: finish unknown -> both tokens at the first token 1.5 (bucket 1); b is in the system
    #    from 0 to its arrival only (no finish), so it adds nothing to running
    # c: ok with no output tokens adds nothing
    ts = timeseries_from_records([rec(0, 0.0, out=3, finish=2.0),
                                  rec(1, 0.0, out=2, first=1.5),
                                  rec(2, 0.0, out=0, first=0.1, finish=0.2)], 1.0)
    assert ts["t_s"] == [0.0, 1.0, 2.0]
    assert ts["throughput_tokens_per_s"] == approx_list([0, 2, 3])
    # a in [0, 2), c in [0, 0.2)
    assert ts["running"] == approx_list([1.2, 1.0, 0.0])


def test_many_untimed_requests_each_counted_once():
    # 2100 ok requests (more than one chunk of the vectorized spread), 2 tokens each,
    # first at 0.25 and finish at 0.75 -> all 4200 tokens in bucket [0, 1)
    recs = [rec(i, 0.0, out=2, first=0.25, finish=0.75) for i in range(2100)]
    ts = timeseries_from_records(recs, 1.0)
    assert ts["throughput_tokens_per_s"] == approx_list([4200])
    assert ts["offered_rps"] == approx_list([2100])


def test_single_event_at_zero_gives_one_bucket():
    ts = timeseries_from_records([rec(0, 0.0, status="rejected")], 0.5)
    assert ts["t_s"] == [0.0]
    assert ts["offered_rps"] == approx_list([2.0])
    assert ts["rejected_rps"] == approx_list([2.0])
    assert ts["delivery"] == approx_list([0.0])
    assert ts["ttft_p50_s"] == [None]


def test_failed_statuses_counted_at_finish_else_arrival():
    # failed at arrival 0.5 with no finish -> b0; cancelled finishing at 2.5 -> b2
    ts = timeseries_from_records([rec(0, 0.5, status="failed"),
                                  rec(1, 0.2, status="cancelled", finish=2.5)], 1.0)
    assert ts["failed_rps"] == approx_list([1, 0, 1])
    assert ts["completed_rps"] == approx_list([0, 0, 0])
    assert ts["delivery"] == approx_list([0.0, None, None])


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_bucket_must_be_positive(bad):
    with pytest.raises(ValueError, match="bucket_s must be > 0"):
        timeseries_from_records(five(), bad)


def test_no_records():
    assert timeseries_from_records([], 2.0) == {"bucket_s": 2.0, "t_s": []}


def span(t):
    return [rec(0, 0.0, status="rejected"), rec(1, 0.0, out=1, first=t, finish=t)]


@pytest.mark.parametrize("t, buckets, want", [
    (60.0, 60, 1.0),      # 60/60 = 1 -> 1 × 10^0
    (60.03, 60, 1.0),     # 1.0005 is within the 0.1 % tolerance of 1
    (120.0, 60, 2.0),     # 2 -> 2 × 10^0
    (3000.0, 60, 50.0),   # 50 -> 5 × 10^1
    (6.0, 60, 0.1),       # 0.1 -> 1 × 10^-1
    (70.0, 10, 10.0),     # 7 -> past 5, rounds up to 10 × 10^0
    (180.0, 60, 5.0),     # 3 -> 5
    (0.03, 60, 0.001),    # 0.0005 -> at least 1 ms
    (0.0, 60, 0.001),     # span floored at 1 ms, width at 1 ms
])
def test_default_bucket_rounding(t, buckets, want):
    assert default_bucket_s(span(t), buckets) == pytest.approx(want, rel=1e-12)


def test_default_bucket_defaults_and_spans():
    assert default_bucket_s([]) == 1.0
    # default 60 buckets: span 300 s -> 5 s
    assert default_bucket_s(span(300.0)) == pytest.approx(5.0)
    # the span reaches the latest arrival when nothing finishes after it
    assert default_bucket_s([rec(0, 300.0, status="rejected"), rec(1, 0.0, out=1, first=1, finish=100.0)]) \
        == pytest.approx(5.0)
    # and the latest finish when that is later than every arrival
    assert default_bucket_s([rec(0, 10.0, status="failed"), rec(1, 0.0, out=1, first=1, finish=600.0)]) \
        == pytest.approx(10.0)


def test_run_timeseries_document():
    doc = run_timeseries(five(), bucket_s=2.0)
    assert doc["format"] == TIMESERIES_FORMAT == "servelab.timeseries/1"
    assert set(doc) == {"format", "requests"}
    assert doc["requests"]["t_s"] == [0.0, 2.0]
    assert doc["requests"]["offered_rps"] == approx_list([1.5, 1.0])
    # default width: span 3.5 s / 60 = 0.0583 -> 0.1 s; 36 buckets (floor(3.5/0.1) + 1)
    doc = run_timeseries(five())
    assert doc["requests"]["bucket_s"] == pytest.approx(0.1)
    assert len(doc["requests"]["t_s"]) == 36
    server = {"source": "sim", "t_s": [0.0], "series": {"running": [1.0]}}
    doc = run_timeseries(five(), server=server, bucket_s=1.0)
    assert doc["server"] == server
    assert doc["requests"]["bucket_s"] == 1.0


def test_default_bucket_about_sixty_and_tolerance():
    # 60.5 s / 60 = 1.0083 -> above 1 (by more than 0.1 %), so the next round width 2
    assert default_bucket_s(span(60.5)) == pytest.approx(2.0)
    # a width within 0.1 % above a round value keeps that value: 1.001001... · 0.999 = 1
    assert default_bucket_s(span(1.001001001001001), 1) == pytest.approx(1.0)


def test_untimed_spread_shorter_than_a_bucket_and_zero_output():
    # 3 tokens, first 0.8, finish 1.2: 1 at 0.8, 2 uniform over (0.8, 1.2]:
    # before edge 1: 1 + 2·(0.2/0.4) = 2, before edge 2: 3
    ts = timeseries_from_records([rec(0, 0.0, out=3, first=0.8, finish=1.2)], 1.0)
    assert ts["throughput_tokens_per_s"] == approx_list([2, 1])
    # an ok request with no output tokens emits nothing, whatever its first/finish times
    ts = timeseries_from_records([rec(0, 0.0, out=0, first=0.5, finish=1.5)], 1.0)
    assert ts["throughput_tokens_per_s"] == approx_list([0, 0])


def test_events_before_the_start_fall_in_the_first_bucket():
    # arrivals before 0 are counted from the run's start: offered and rejected agree
    ts = timeseries_from_records([rec(0, -0.5, status="rejected"), rec(1, -0.5, status="failed"),
                                  rec(2, 0.0, out=1, first=1.5, finish=1.5)], 1.0)
    assert ts["offered_rps"] == approx_list([3, 0])
    assert ts["rejected_rps"] == approx_list([1, 0])
    assert ts["failed_rps"] == approx_list([1, 0])
    assert ts["completed_rps"] == approx_list([0, 1])


def test_server_section():
    from servelab.metrics.timeseries import server_section
    sec = server_section("vllm", [0, 1.0, 2], {"running": [1, None, 3.5], "kv_usage": [0.5, float("nan"), 0.25]})
    # numbers become plain floats, None stays None, NaN becomes None (JSON has no NaN)
    assert sec == {"source": "vllm", "t_s": [0.0, 1.0, 2.0],
                   "series": {"running": [1.0, None, 3.5], "kv_usage": [0.5, None, 0.25]}}
    with pytest.raises(ValueError, match=r"server series 'waiting' has 2 values for 3 sample times"):
        server_section("vllm", [0, 1, 2], {"waiting": [1, 2]})
