"""Metrics against hand-computed anchors (docs/metrics.md, vLLM's definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from servelab.catalog.workloads import SLO, SLOTarget
from servelab.errors import ConfigError
from servelab.metrics import metric_names, metric_value, summarize
from servelab.records import RequestRecord


def hand_records() -> list[RequestRecord]:
    """Five requests; every expected number below is worked out by hand."""
    return [
        # A: TTFT 0.5, E2E 1.5, TPOT (1.5-0.5)/4 = 0.25, gaps 0.2 0.3 0.2 0.3, queue 0.1
        RequestRecord(id="A", arrival_s=0.0, dispatch_s=0.01, start_s=0.1, first_token_s=0.5,
                      finish_s=1.5, input_tokens=100, output_tokens=5, cached_tokens=50,
                      token_times_s=[0.5, 0.7, 1.0, 1.2, 1.5]),
        # B: TTFT 0.2, E2E 1.0, TPOT 0.8/2 = 0.4, no token times -> 2 ITL gaps of 0.4, queue 0.05
        RequestRecord(id="B", arrival_s=1.0, start_s=1.05, first_token_s=1.2, finish_s=2.0,
                      input_tokens=100, output_tokens=3),
        # C: one output token: TTFT 1.0, E2E 1.0, no TPOT (goodput treats it as 0)
        RequestRecord(id="C", arrival_s=2.0, first_token_s=3.0, finish_s=3.0, input_tokens=200,
                      output_tokens=1, cached_tokens=100),
        # D: rejected at admission, never reached a replica
        RequestRecord(id="D", arrival_s=2.5, dispatch_s=2.6, finish_s=2.5, input_tokens=100,
                      status="rejected", reason="queue full"),
        # E: failed mid-stream after reaching a replica: no latency sample
        RequestRecord(id="E", arrival_s=3.0, start_s=3.1, first_token_s=3.5, finish_s=4.0,
                      input_tokens=100, output_tokens=2, cached_tokens=25, status="failed",
                      reason="stream broken"),
    ]


def test_counts_delivery_and_throughput():
    s = summarize(hand_records())
    assert (s["offered"], s["completed"], s["rejected"], s["failed"], s["timed_out"],
            s["cancelled"]) == (5, 3, 1, 1, 0, 0)
    assert s["delivery"] == pytest.approx(0.6)
    assert s["duration_s"] == pytest.approx(4.0)            # first arrival 0 -> last finish 4.0
    assert s["request_throughput_rps"] == pytest.approx(3 / 4)
    assert s["total_output_tokens"] == 9                       # ok only: 5 + 3 + 1
    assert s["throughput_tokens_per_s"] == pytest.approx(9 / 4)
    assert s["total_input_tokens"] == 400
    assert s["input_throughput_tokens_per_s"] == pytest.approx(100.0)
    # cached / input over requests that reached a replica (A, B, C, E): 175 / 500
    assert s["prefix_cache_hit_rate"] == pytest.approx(0.35)
    assert summarize(hand_records(), duration_s=10.0)["request_throughput_rps"] == pytest.approx(0.3)


def test_latency_definitions():
    s = summarize(hand_records())
    t = s["ttft_s"]                                  # samples 0.5, 0.2, 1.0
    assert t["count"] == 3
    assert t["mean"] == pytest.approx(1.7 / 3)
    assert t["std"] == pytest.approx(math.sqrt(0.326666667 / 3), rel=1e-6)
    assert (t["min"], t["max"], t["p50"]) == (pytest.approx(0.2), pytest.approx(1.0), pytest.approx(0.5))
    assert t["p90"] == pytest.approx(0.9)            # h = 1.8 -> 0.5 + 0.8 * 0.5
    assert t["p95"] == pytest.approx(0.95)
    p = s["tpot_s"]                                  # 0.25, 0.4 (C excluded: one token)
    assert p["count"] == 2 and p["mean"] == pytest.approx(0.325) and p["p50"] == pytest.approx(0.325)
    i = s["itl_s"]                                   # 0.2 0.3 0.2 0.3 + 0.4 0.4
    assert i["count"] == 6
    assert i["mean"] == pytest.approx(0.3)           # = (1.0 + 0.8) / (4 + 2)
    assert i["p50"] == pytest.approx(0.3) and i["p90"] == pytest.approx(0.4)
    assert i["min"] == pytest.approx(0.2) and i["max"] == pytest.approx(0.4)
    e = s["e2e_s"]                                   # 1.5, 1.0, 1.0
    assert e["mean"] == pytest.approx(3.5 / 3) and e["p50"] == pytest.approx(1.0)
    q = s["queue_s"]                                 # A 0.1, B 0.05 (E failed: excluded)
    assert q["count"] == 2 and q["mean"] == pytest.approx(0.075)
    d = s["dispatch_lateness_s"]                     # A 0.01, D 0.1 (any status)
    assert d["count"] == 2 and d["max"] == pytest.approx(0.1)


def test_goodput_vllm_rules():
    recs = hand_records()
    s = summarize(recs, slo={"ttft": 0.6, "tpot": 0.3})        # only A is good
    assert s["goodput_rps"] == pytest.approx(1 / 4)
    assert s["slo_attainment"] == pytest.approx(1 / 5)
    assert summarize(recs, slo={"ttft": 1.0})["slo_attainment"] == pytest.approx(3 / 5)  # ≤ is good
    # vLLM: a one-token request has TPOT 0 for goodput, so C passes a TPOT-only SLO.
    assert summarize(recs, slo={"tpot": 0.3})["slo_attainment"] == pytest.approx(2 / 5)
    # vLLM --goodput string, milliseconds; e2el alias.
    s2 = summarize(recs, goodput="ttft:600 tpot:300")
    assert s2["goodput_rps"] == pytest.approx(1 / 4)
    assert summarize(recs, goodput="e2el:1000")["slo_attainment"] == pytest.approx(2 / 5)
    assert summarize(recs)["goodput_rps"] is None


def test_catalog_slo_targets_and_slo_met():
    slo = SLO(targets=(SLOTarget(metric="ttft", percentile=50, threshold_s=0.5),
                       SLOTarget(metric="e2e", percentile=95, threshold_s=1.2)))
    s = summarize(hand_records(), slo=slo)
    assert s["slo_met"] == {"ttft_p50": True, "e2e_p95": False}   # e2e p95 = 1.45
    # good = ok, ttft ≤ 0.5 and e2e ≤ 1.2: A (e2e 1.5) no, B (0.2, 1.0) yes, C (ttft 1.0) no
    assert s["slo_attainment"] == pytest.approx(1 / 5)
    assert s["goodput_rps"] == pytest.approx(1 / 4)
    assert metric_value(hand_records(), "slo_attainment", slo=slo) == pytest.approx(s["slo_attainment"])


def test_slo_attainment_exact_count():
    slo = {"ttft_p50": 0.5, "e2e_p95": 1.2}
    s = summarize(hand_records(), slo=slo)
    # good = ok and ttft ≤ 0.5 and e2e ≤ 1.2: A (e2e 1.5) no, B yes, C (ttft 1.0) no -> 1 of 5
    assert s["slo_attainment"] == pytest.approx(1 / 5)
    assert s["slo_met"] == {"ttft_p50": True, "e2e_p95": False}


def test_metric_value_names():
    recs = hand_records()
    assert metric_value(recs, "ttft_p95") == pytest.approx(0.95)
    assert metric_value(recs, "ttft_p95_s") == pytest.approx(0.95)
    assert metric_value(recs, "e2el_median") == pytest.approx(1.0)
    assert metric_value(recs, "itl_p50") == pytest.approx(0.3)
    assert metric_value(recs, "tpot_p50") == pytest.approx(0.325)
    assert metric_value(recs, "delivery") == pytest.approx(0.6)
    assert metric_value(recs, "completed") == 3
    assert metric_value(recs, "rejected") == 1
    assert metric_value(recs, "ttft_p99.9") == pytest.approx(0.5 + 0.998 * 0.5)   # h = 1.998
    assert math.isnan(metric_value(recs, "goodput_rps"))       # no SLO given
    with pytest.raises(ConfigError, match="ttft_p95"):
        metric_value(recs, "ttft_p95x")
    with pytest.raises(ConfigError):
        metric_value(recs, "latency")
    names = metric_names()
    assert {"ttft_p95", "tpot_p50", "e2e_mean", "itl_p99", "queue_p95", "delivery", "goodput_rps",
            "slo_attainment", "throughput_tokens_per_s", "request_throughput_rps", "completed",
            "rejected", "prefix_cache_hit_rate"} <= set(names)
    for n in names:
        metric_value(recs, n, slo={"ttft": 1.0})                 # every listed name evaluates


def test_percentiles_match_numpy_linear():
    rng = np.random.default_rng(3)
    ttfts = rng.lognormal(-1, 0.7, 257)
    recs = [RequestRecord(id=str(i), arrival_s=float(i), first_token_s=float(i + t),
                          finish_s=float(i + t + 1), input_tokens=10, output_tokens=2)
            for i, t in enumerate(ttfts)]
    s = summarize(recs, percentiles=(1, 25, 50, 75, 99, 99.9))
    ref = np.array([r.first_token_s - r.arrival_s for r in recs])
    for q in (1, 25, 50, 75, 99, 99.9):
        assert s["ttft_s"][f"p{q:g}"] == pytest.approx(np.percentile(ref, q), rel=1e-12)
    assert s["ttft_s"]["std"] == pytest.approx(np.std(ref), rel=1e-9)


def test_empty_and_all_failed_are_null_not_nan():
    import json
    s = summarize([])
    assert s["offered"] == 0 and s["delivery"] is None and s["ttft_s"]["p95"] is None
    json.dumps(s, allow_nan=False)
    bad = [RequestRecord(id="x", arrival_s=0.0, input_tokens=5, status="timed_out", finish_s=30.0)]
    s = summarize(bad, slo={"ttft": 1})
    assert s["delivery"] == 0.0 and s["timed_out"] == 1 and s["ttft_s"]["count"] == 0
    assert s["goodput_rps"] == 0.0 and s["slo_met"] is None
    json.dumps(s, allow_nan=False)


def test_bad_inputs_name_the_value():
    with pytest.raises(ConfigError, match="ttfb"):
        summarize(hand_records(), slo={"ttfb": 1.0})
    with pytest.raises(ConfigError, match="ttft:abc"):
        summarize(hand_records(), goodput="ttft:abc")
    with pytest.raises(ConfigError, match="duration_s"):
        summarize(hand_records(), duration_s=0)
