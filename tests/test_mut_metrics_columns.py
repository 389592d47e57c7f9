"""``metrics._columns`` on tiny record sets worked out by hand.

References: the per-request definitions in the module docstring of
``servelab.metrics._columns`` (TTFT, E2E, TPOT = (e2e − ttft)/(out − 1) for ok requests
with more than one token, queue, dispatch lateness; ITL pooled from the gaps of each
ok request's token times, else its TPOT with weight out − 1), the dtypes stated on
``Columns`` and the documented equality ``columns_from_arrays == columns`` for records
without token times. Expected values are computed in the comments.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from servelab.metrics._columns import STATUS_CODES, columns, columns_from_arrays
from servelab.records import RequestRecord


def rec(i, arrival, status="ok", out=0, first=None, finish=None, times=None, dispatch=None, start=None,
        inp=10, cached=0):
    return RequestRecord(id=str(i), arrival_s=arrival, input_tokens=inp, output_tokens=out, status=status,
                         first_token_s=first, finish_s=finish, token_times_s=times, dispatch_s=dispatch,
                         start_s=start, cached_tokens=cached)


def nanlist(a):
    return [None if math.isnan(x) else pytest.approx(x, abs=1e-12) for x in np.asarray(a, dtype=float)]


def recs():
    # integer times and counts on purpose: the columns are float64 whatever the input
    return [
        # r0 ok: dispatch 1, start 2, first 3, finish 7, 5 tokens, no token times
        rec(0, 1, out=5, first=3, finish=7, dispatch=1, start=2, inp=100, cached=16),
        # r1 ok, token times 10, 11, 13 (gaps 1, 2)
        rec(1, 9, out=3, first=10, finish=13, times=[10, 11, 13], dispatch=9, start=9, inp=7),
        # r2 rejected, dispatched at 5
        rec(2, 4, status="rejected", dispatch=5),
        # r3 timed_out: started, never finished; its token times must not enter ITL
        rec(3, 0, status="timed_out", out=2, first=1, start=0.5, times=[1, 1.5]),
        # r4 ok, one token: no TPOT
        rec(4, 2, out=1, first=2.5, finish=2.5, start=2),
    ]


def test_columns_per_request_metrics():
    c = columns(recs())
    assert c.n == 5
    assert c.status.dtype == np.int8
    assert list(c.status) == [STATUS_CODES[s] for s in ("ok", "ok", "rejected", "timed_out", "ok")] == [0, 0, 1, 2, 0]
    assert list(c.ok) == [True, True, False, False, True]
    for col in (c.arrival_s, c.dispatch_s, c.start_s, c.first_token_s, c.finish_s,
                c.input_tokens, c.output_tokens, c.cached_tokens):
        assert col.dtype == np.float64
    assert nanlist(c.arrival_s) == [1, 9, 4, 0, 2]
    assert nanlist(c.dispatch_s) == [1, 9, 5, None, None]
    assert nanlist(c.start_s) == [2, 9, None, 0.5, 2]
    assert nanlist(c.first_token_s) == [3, 10, None, 1, 2.5]
    assert nanlist(c.finish_s) == [7, 13, None, None, 2.5]
    assert nanlist(c.input_tokens) == [100, 7, 10, 10, 10]
    assert nanlist(c.output_tokens) == [5, 3, 0, 2, 1]
    assert nanlist(c.cached_tokens) == [16, 0, 0, 0, 0]
    # ok only: ttft = first - arrival, e2e = finish - arrival, queue = start - arrival
    assert nanlist(c.ttft_s) == [2, 1, None, None, 0.5]
    assert nanlist(c.e2e_s) == [6, 4, None, None, 0.5]
    assert nanlist(c.queue_s) == [1, 0, None, None, 0]
    # tpot: r0 (6 - 2)/4 = 1, r1 (4 - 1)/2 = 1.5, r4 has a single token
    assert nanlist(c.tpot_s) == [1, 1.5, None, None, None]
    assert nanlist(c.latency("tpot")) == [1, 1.5, None, None, None]
    # dispatch lateness for any status with a dispatch time
    assert nanlist(c.dispatch_lateness_s) == [0, 0, 1, None, None]
    # reached a replica: ok, or start known (r3)
    assert list(c.reached_replica) == [True, True, False, True, True]
    # ITL: r1's gaps 1, 2 (weight 1 each), then r0's TPOT 1 with weight out - 1 = 4
    assert nanlist(c.itl_values_s) == [1, 2, 1]
    assert nanlist(c.itl_weights) == [1, 1, 4]
    assert list(c.itl_request) == [1, 1, 0]
    # pooled mean = Σ(e2e - ttft) / Σ(out - 1) = (4 + 3) / (4 + 2)
    assert float(np.average(c.itl_values_s, weights=c.itl_weights)) == pytest.approx(7 / 6)


def test_itl_gaps_never_span_two_requests():
    # r0 times 0, 1, 3 (gaps 1, 2); r1 times 10, 10.5, 11.5, 12 (gaps 0.5, 1, 0.5);
    # r2 exactly two times 20, 20.4 (one gap 0.4, not its TPOT (21 - 20)/1 = 1)
    c = columns([rec(0, 0, out=3, first=0, finish=3, times=[0, 1, 3]),
                 rec(1, 9, out=4, first=10, finish=12, times=[10, 10.5, 11.5, 12]),
                 rec(2, 19, out=2, first=20, finish=21, times=[20, 20.4])])
    assert nanlist(c.itl_values_s) == [1, 2, 0.5, 1, 0.5, 0.4]
    assert list(c.itl_request) == [0, 0, 1, 1, 1, 2]
    assert nanlist(c.itl_weights) == [1] * 6


def test_single_token_time_falls_back_to_tpot():
    # one token time gives no gap: the request contributes its TPOT (4 - 1)/(4 - 1) = 1, weight 3
    c = columns([rec(0, 0, out=4, first=1, finish=4, times=[1])])
    assert nanlist(c.itl_values_s) == [1]
    assert nanlist(c.itl_weights) == [3]


def test_one_and_two_token_requests_quietly():
    # out = 1: no TPOT (no gap), and no numpy warning for the 0/0 or x/0 it avoids
    # out = 2: TPOT = e2e - ttft (one gap)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = columns([rec(0, 0, out=1, first=1, finish=2), rec(1, 0, out=1, first=1, finish=1),
                     rec(2, 0, out=2, first=1, finish=1.5)])
    assert nanlist(c.tpot_s) == [None, None, 0.5]
    assert nanlist(c.itl_values_s) == [0.5]


def test_unknown_status():
    with pytest.raises(ValueError, match=r"unknown record status 'done'; known: ok, rejected, timed_out, failed, cancelled"):
        columns([rec(0, 0, status="done")])


def test_columns_is_idempotent():
    c = columns(recs())
    assert columns(c) is c


def arrays_of(rs):
    return dict(
        status=np.array([STATUS_CODES[r.status] for r in rs]),
        arrival_s=[r.arrival_s for r in rs],
        dispatch_s=[math.nan if r.dispatch_s is None else r.dispatch_s for r in rs],
        start_s=[math.nan if r.start_s is None else r.start_s for r in rs],
        first_token_s=[math.nan if r.first_token_s is None else r.first_token_s for r in rs],
        finish_s=[math.nan if r.finish_s is None else r.finish_s for r in rs],
        input_tokens=[r.input_tokens for r in rs], output_tokens=[r.output_tokens for r in rs],
        cached_tokens=[r.cached_tokens for r in rs])


def test_columns_from_arrays_equals_columns_without_token_times():
    rs = [RequestRecord(**{**r.to_dict(), "token_times_s": None}) for r in recs()]
    a = columns_from_arrays(**arrays_of(rs))
    b = columns(rs)
    assert a.n == b.n == 5
    assert a.status.dtype == np.int8
    for name in ("status", "ok", "arrival_s", "dispatch_s", "start_s", "first_token_s", "finish_s",
                 "input_tokens", "output_tokens", "cached_tokens", "reached_replica", "ttft_s", "e2e_s",
                 "tpot_s", "queue_s", "dispatch_lateness_s", "itl_values_s", "itl_weights", "itl_request"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
    # without token times r1 contributes its TPOT 1.5 with weight 2 after r0's 1 with weight 4
    assert nanlist(a.itl_values_s) == [1, 1.5]
    assert nanlist(a.itl_weights) == [4, 2]


@pytest.mark.parametrize("bad", [5, -1])
def test_columns_from_arrays_status_range(bad):
    arr = arrays_of(recs()[:1])
    arr["status"] = np.array([bad])
    with pytest.raises(ValueError, match=r"status codes must be 0\.\.4 \(ok, rejected, timed_out, failed, cancelled\)"):
        columns_from_arrays(**arr)


def test_columns_from_arrays_highest_code_and_empty():
    arr = arrays_of(recs()[:1])
    arr["status"] = np.array([4])           # cancelled, the last valid code
    c = columns_from_arrays(**arr)
    assert not c.ok[0] and math.isnan(c.ttft_s[0])
    empty = {k: np.array([]) for k in arr}
    assert columns_from_arrays(**empty).n == 0


def test_columns_from_arrays_shape_mismatch():
    arr = arrays_of(recs()[:2])
    arr["finish_s"] = [1.0]
    with pytest.raises(ValueError, match=r"every column must have the shape of status \(2,\)"):
        columns_from_arrays(**arr)


def test_integer_times_give_float_columns():
    # every time known and integer: still float64 columns (unknown times would be NaN)
    c = columns([rec(0, 0, out=2, first=2, finish=4, dispatch=1, start=1)])
    for col in (c.dispatch_s, c.start_s, c.first_token_s, c.finish_s):
        assert col.dtype == np.float64
    assert nanlist(c.dispatch_s) == [1] and nanlist(c.start_s) == [1]
    assert nanlist(c.first_token_s) == [2] and nanlist(c.finish_s) == [4]
