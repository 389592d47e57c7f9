"""Observation extraction from records: hand-computed anchors and clear refusals."""

from __future__ import annotations

import pytest

from servelab.calibrate import merge_observations, observations_from_records
from servelab.errors import ConfigError
from servelab.records import RequestRecord


def rec(id, arrival, first, finish, n_in, n_out, *, start=None, status="ok"):
    return RequestRecord(id=id, arrival_s=arrival, start_s=start, first_token_s=first,
                         finish_s=finish, input_tokens=n_in, output_tokens=n_out, status=status)


def test_two_overlapping_requests_batch_weights_context_and_join():
    # A decodes (1, 11] with 11 tokens; B decodes (6, 11] with 6 tokens.
    a = rec("a", 0.0, 1.0, 11.0, 100, 11)
    b = rec("b", 5.0, 6.0, 11.0, 50, 6)
    obs = observations_from_records([a, b], run="r")
    da, db = (next(d for d in obs.decode if d.id == k) for k in ("a", "b"))
    # A: alone on (1, 6], with B on (6, 11] → half the interval each
    assert dict(da.batch_weights) == pytest.approx({1: 0.5, 2: 0.5})
    assert da.mean_batch == pytest.approx(1.5)
    assert da.tpot_s == pytest.approx(1.0) and da.steps == 10
    # contexts at segment midpoints: A at t=3.5: 100+1+10*0.25=103.5; at t=8.5: 100+1+10*0.75=108.5
    # B at t=8.5: 50+1+5*0.5=53.5 → mean C = 0.5*103.5 + 0.5*(108.5+53.5) = 132.75
    assert da.mean_context_sum == pytest.approx(132.75)
    # B's prefill joined A's decode: one join, with A decoding (context at t=6: 101+10*0.5=106)
    assert len(obs.joins) == 1 and da.joins == (0,) and db.joins == ()
    j = obs.joins[0]
    assert (j.new_tokens, j.num_decode, j.context_sum) == (50, 1, 106)
    assert dict(db.batch_weights) == pytest.approx({2: 1.0})
    # TTFT: A's prefill (0, 1] and B's (5, 6] do not overlap; without start_s B is
    # excluded because A was decoding when B was sent
    assert [p.id for p in obs.prefill] == ["a"]
    assert obs.prefill[0].ttft_s == pytest.approx(1.0)
    assert obs.excluded == {"sent while a batch was decoding, start unknown (TTFT)": 1}


def test_start_s_removes_queueing_and_keeps_prefill_with_decoders():
    a = rec("a", 0.0, 1.0, 11.0, 100, 11, start=0.0)
    b = rec("b", 5.0, 6.0, 11.0, 50, 6, start=5.5)   # queued 0.5 s
    obs = observations_from_records([a, b])
    pb = next(p for p in obs.prefill if p.id == "b")
    assert pb.ttft_s == pytest.approx(0.5) and pb.from_start and pb.num_decode == 1


def test_overlapping_prefills_are_not_ttft_observations():
    a = rec("a", 0.0, 1.0, 3.0, 10, 3)
    b = rec("b", 0.5, 1.5, 3.0, 10, 3)
    obs = observations_from_records([a, b])
    assert obs.prefill == ()
    assert obs.excluded["prefill overlapped another prefill (TTFT)"] == 2


def test_failed_and_tokenless_records_are_counted_not_used():
    good = rec("a", 0.0, 1.0, 3.0, 10, 3)
    bad = [rec("f", 0.0, None, None, 10, 0, status="failed"),
           rec("z", 0.0, 1.0, 2.0, 0, 0),
           rec("t", 0.0, None, 2.0, 10, 5)]
    obs = observations_from_records([good, *bad])
    assert len(obs.decode) == 1
    assert obs.excluded == {"status failed": 1, "no token counts": 1, "no first-token/finish time": 1}
    assert obs.num_ok == 3 and obs.num_records == 4


@pytest.mark.parametrize("records, match", [
    ([], "no records"),
    ([rec("f", 0.0, None, None, 10, 0, status="failed")], "none of its 1 records"),
    ([rec("z", 0.0, 1.0, 2.0, 0, 0)], "no token counts"),
])
def test_unusable_runs_are_refused_with_the_reason(records, match):
    with pytest.raises(ConfigError, match=match):
        observations_from_records(records)


def test_merge_renumbers_joins():
    a = rec("a", 0.0, 1.0, 11.0, 100, 11)
    b = rec("b", 5.0, 6.0, 11.0, 50, 6)
    one = observations_from_records([a, b], run="r1")
    two = observations_from_records([a, b], run="r2")
    m = merge_observations([one, two])
    assert len(m.joins) == 2 and m.runs == ("r1", "r2")
    assert sorted(j for d in m.decode for j in d.joins) == [0, 1]
    with pytest.raises(ConfigError):
        merge_observations([])
