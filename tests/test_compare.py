"""Run comparison (report.compare): values, CIs, differences and ratios against
hand-computed anchors; a simulated run against a perturbed copy of itself."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servelab import recordio
from servelab.catalog import RequestSpec
from servelab.errors import ConfigError
from servelab.records import RequestRecord, RunMeta
from servelab.report.compare import (
    CompareRun,
    compare_figures,
    compare_page,
    compare_runs,
    comparison_rows,
    itl_gaps_s,
)
from servelab.sim import ConstantStepModel, SchedulerConfig, ReplicaSpec, SimConfig, simulate


def make_records(n: int, *, ttft_s: float, tpot_s: float = 0.0625, out: int = 5, spacing_s: float = 0.5,
                 failed: int = 0) -> list[RequestRecord]:
    """n requests every ``spacing_s``; dyadic times so every difference is exact."""
    recs = []
    for i in range(n):
        a = i * spacing_s
        if i < failed:
            recs.append(RequestRecord(id=f"r{i}", arrival_s=a, input_tokens=8, status="failed", reason="500",
                                      finish_s=a + 0.5))
            continue
        times = [a + ttft_s + k * tpot_s for k in range(out)]
        recs.append(RequestRecord(id=f"r{i}", arrival_s=a, input_tokens=8, output_tokens=out,
                                  first_token_s=times[0], finish_s=times[-1], token_times_s=times))
    return recs


def _get(cmp, metric: str, label: str):
    m = next(m for m in cmp.metrics if m.metric == metric)
    return next(e for e in m.runs if e.label == label)


def test_ttft_doubled_gives_ratio_two_and_disjoint_intervals() -> None:
    a = CompareRun(label="A", records=make_records(40, ttft_s=0.125), duration_s=20.0)
    b = CompareRun(label="B", records=make_records(40, ttft_s=0.25), duration_s=20.0)
    cmp = compare_runs([a, b], metrics=["ttft_p50", "ttft_p95", "tpot_p95"], n_resamples=200)
    base, e = _get(cmp, "ttft_p95", "A"), _get(cmp, "ttft_p95", "B")
    assert base.is_baseline and base.value == 0.125 and base.ci == (0.125, 0.125)
    assert e.value == 0.25 and e.ci == (0.25, 0.25)
    assert e.ratio == 2.0 and e.ratio_ci == (2.0, 2.0)
    assert e.diff == 0.125 and e.diff_ci == (0.125, 0.125)
    assert e.rel_error == 1.0
    assert e.overlap is False
    # TPOT is 62.5 ms in both: ratio 1, intervals coincide
    t = _get(cmp, "tpot_p95", "B")
    assert t.value == 0.0625 and t.ratio == 1.0 and t.overlap is True


def test_identical_runs_ratio_one_no_flag() -> None:
    recs = make_records(30, ttft_s=0.125)
    recs[3] = replace(recs[3], first_token_s=recs[3].arrival_s + 1.0,
                      token_times_s=[recs[3].arrival_s + 1.0 + k * 0.0625 for k in range(5)],
                      finish_s=recs[3].arrival_s + 1.25)
    a = CompareRun(label="A", records=recs, duration_s=15.0)
    b = CompareRun(label="B", records=list(recs), duration_s=15.0)
    cmp = compare_runs([a, b], n_resamples=300)
    for m in cmp.metrics:
        e = next(x for x in m.runs if x.label == "B")
        assert e.ratio == 1.0 and e.diff == 0.0 and e.rel_error == 0.0, m.metric
        assert e.overlap is True, m.metric
        assert e.ratio_ci[0] <= 1.0 <= e.ratio_ci[1], m.metric


def test_throughput_uses_each_runs_own_window_and_size() -> None:
    # A: 10 requests × 5 tokens in 10 s = 5 tok/s; B: 20 × 5 in 40 s = 2.5 tok/s.
    a = CompareRun(label="A", records=make_records(10, ttft_s=0.125), duration_s=10.0)
    b = CompareRun(label="B", records=make_records(20, ttft_s=0.125, spacing_s=2.0), duration_s=40.0)
    cmp = compare_runs([a, b], metrics=["throughput_tokens_per_s", "request_throughput_rps"], n_resamples=100)
    e = _get(cmp, "throughput_tokens_per_s", "B")
    assert _get(cmp, "throughput_tokens_per_s", "A").value == 5.0
    assert e.value == 2.5 and e.ratio == 0.5 and e.diff == -2.5
    # every request completes with 5 tokens, so resampling cannot move throughput
    assert e.ci == (2.5, 2.5) and e.ratio_ci == (0.5, 0.5) and e.overlap is False
    assert _get(cmp, "request_throughput_rps", "B").value == 0.5


def test_delivery_with_failures_and_baseline_choice() -> None:
    a = CompareRun(label="A", records=make_records(8, ttft_s=0.125), duration_s=4.0)
    b = CompareRun(label="B", records=make_records(8, ttft_s=0.125, failed=2), duration_s=4.0)
    cmp = compare_runs([a, b], baseline=1, metrics=["delivery"], n_resamples=200)
    assert cmp.baseline == "B"
    e = _get(cmp, "delivery", "A")
    assert e.value == 1.0 and e.diff == 0.25 and e.ratio == pytest.approx(4 / 3)
    assert _get(cmp, "delivery", "B").value == 0.75
    lo, hi = _get(cmp, "delivery", "B").ci
    assert 0.0 <= lo < 0.75 < hi <= 1.0


def test_undefined_metric_is_none_in_json() -> None:
    one_token = make_records(6, ttft_s=0.125, out=1)            # TPOT needs > 1 output token
    a = CompareRun(label="A", records=make_records(6, ttft_s=0.125), duration_s=3.0)
    b = CompareRun(label="B", records=one_token, duration_s=3.0)
    d = compare_runs([a, b], metrics=["tpot_p95"], n_resamples=50).to_dict()
    rb = d["metrics"][0]["runs"][1]
    assert rb["value"] is None and rb["ci"] == [None, None] and rb["ratio"] is None and rb["overlap"] is None
    assert d["metrics"][0]["runs"][0]["value"] == 0.0625


def test_bad_inputs_name_valid_choices() -> None:
    a = CompareRun(label="A", records=make_records(4, ttft_s=0.125))
    with pytest.raises(ConfigError, match="unknown metric 'ttft_p999x'.*valid"):
        compare_runs([a, a], metrics=["ttft_p999x"])
    with pytest.raises(ConfigError, match=r"baseline index 5 out of range; runs: 0\.\.1"):
        compare_runs([a, a], baseline=5)
    with pytest.raises(ConfigError, match="confidence"):
        compare_runs([a, a], confidence=1.5)


def test_itl_gaps_and_figures() -> None:
    recs = make_records(3, ttft_s=0.125, out=3)                  # 2 gaps of 62.5 ms each
    assert itl_gaps_s(recs).tolist() == [0.0625] * 6
    no_times = [replace(r, token_times_s=None) for r in recs]
    assert itl_gaps_s(no_times).size == 0
    cmp = compare_runs([CompareRun(label="A", records=recs, duration_s=2.0),
                        CompareRun(label="B", records=no_times, duration_s=2.0)],
                       metrics=["ttft_p50", "e2e_p95"], n_resamples=50)
    caps = [c for _, c in compare_figures(cmp)]
    assert sum("ITL" in c for c in caps) == 1                      # A has token times
    assert len(caps) == 2 + 3 + 2 + 1                              # intervals, CDFs, over time, ITL
    cmp2 = compare_runs([CompareRun(label="B", records=no_times, duration_s=2.0)] * 2,
                        metrics=["ttft_p50"], n_resamples=50)
    assert not any("ITL" in c for _, c in compare_figures(cmp2))
    head, rows = comparison_rows(cmp)
    assert rows[0][1] == "A (baseline)" and len(rows) == 4 and len(head) == len(rows[0])
    html = compare_page(cmp).render()
    assert "<svg" in html and "http://" not in html and "https://" not in html


def _sim_run(tmp_path):
    eng = SchedulerConfig(num_kv_blocks=4000, max_num_seqs=8)
    cfg = SimConfig(replicas=(ReplicaSpec(scheduler=eng, step_model=ConstantStepModel(step_s=0.01)),),
                    record_token_times=True)
    reqs = [RequestSpec(id=f"q{i}", arrival_s=0.25 * i, input_tokens=64 + 8 * (i % 5),
                        output_tokens=16 + (i % 7)) for i in range(60)]
    res = simulate(cfg, reqs, duration_s=15.0)
    return recordio.write_run(tmp_path / "sim", res.meta, res.records,
                              {"offered": len(res.records)}, res.timeseries)


def _slower_first_token(r: RequestRecord, factor: float) -> RequestRecord:
    """TTFT × factor; every later token shifted by the same amount (TPOT unchanged)."""
    if r.status != "ok":
        return r
    shift = (factor - 1.0) * (r.first_token_s - r.arrival_s)
    return replace(r, first_token_s=r.first_token_s + shift, finish_s=r.finish_s + shift,
                   token_times_s=[t + shift for t in r.token_times_s])


def test_simulated_run_vs_perturbed_copy(tmp_path) -> None:
    run = recordio.read_run(_sim_run(tmp_path))
    assert run.meta.kind == "simulate" and len(run.records) == 60
    assert all(r.status == "ok" for r in run.records)
    slow = [_slower_first_token(r, 1.5) for r in run.records]
    recordio.write_run(tmp_path / "slow", replace(run.meta, run_id="slow"), slow, {})
    back = recordio.read_run(tmp_path / "slow")
    a = CompareRun(label="sim", records=run.records, duration_s=run.meta.duration_s, meta=run.meta)
    b = CompareRun(label="slow", records=back.records, duration_s=back.meta.duration_s, meta=back.meta)
    same = CompareRun(label="same", records=recordio.read_records(tmp_path / "sim" / "records.parquet"),
                      duration_s=run.meta.duration_s)
    cmp = compare_runs([a, b, same], metrics=["ttft_p50", "ttft_p95", "tpot_p95", "itl_p50",
                                              "throughput_tokens_per_s"], n_resamples=400)
    # percentiles scale linearly: TTFT × 1.5 exactly up to float rounding; TPOT/ITL unchanged
    assert _get(cmp, "ttft_p50", "slow").ratio == pytest.approx(1.5, rel=1e-9)
    assert _get(cmp, "ttft_p95", "slow").rel_error == pytest.approx(0.5, rel=1e-9)
    assert _get(cmp, "tpot_p95", "slow").ratio == pytest.approx(1.0, rel=1e-9)
    assert _get(cmp, "itl_p50", "slow").ratio == pytest.approx(1.0, rel=1e-9)
    assert _get(cmp, "ttft_p50", "slow").overlap is False
    lo, hi = _get(cmp, "ttft_p50", "slow").ratio_ci
    assert 1.0 < lo <= 1.5 <= hi
    # all tokens still land inside the 15 s window → same output throughput
    assert _get(cmp, "throughput_tokens_per_s", "slow").ratio == pytest.approx(1.0)
    # the Parquet copy read back is the same run
    for m in cmp.metrics:
        e = next(x for x in m.runs if x.label == "same")
        assert e.ratio == 1.0 and e.overlap is True, m.metric
    assert math.isfinite(_get(cmp, "ttft_p95", "sim").value)


def test_to_dict_keys() -> None:
    a = CompareRun(label="A", records=make_records(5, ttft_s=0.125), duration_s=2.5,
                   meta=RunMeta(run_id="r1", kind="bench", started_at="2026-01-01T00:00:00Z"))
    b = CompareRun(label="B", records=make_records(5, ttft_s=0.25), duration_s=2.5)
    d = compare_runs([a, b], metrics=["ttft_p50"], n_resamples=20, confidence=0.9).to_dict()
    assert set(d) == {"baseline", "confidence", "n_resamples", "seed", "ci_method", "warnings", "runs", "metrics"}
    assert d["warnings"] == []
    assert d["runs"][0] == {"label": "A", "source": "", "kind": "bench", "run_id": "r1", "n_records": 5,
                            "duration_s": 2.5}
    assert d["metrics"][0]["unit"] == "s" and d["metrics"][0]["better"] == "lower"
    assert set(d["metrics"][0]["runs"][1]) == {"label", "baseline", "value", "ci", "diff", "diff_ci", "ratio",
                                               "ratio_ci", "rel_error", "overlap"}
    assert d["metrics"][0]["runs"][1]["ratio"] == 2.0 and d["confidence"] == 0.9


@settings(max_examples=25, deadline=None)
@given(ttfts=st.lists(st.floats(min_value=0.001, max_value=10.0), min_size=1, max_size=25),
       scale=st.sampled_from([0.5, 2.0, 4.0]))
def test_property_copy_and_scaled_copy(ttfts, scale) -> None:
    """Against an identical copy: ratio exactly 1, Δ 0, CIs overlap and the ratio CI
    holds 1. Against a copy with every TTFT × scale (a power of two, so exact): the
    TTFT ratio is exactly ``scale``, independent of order."""
    def recs(f: float, order: list[int]):
        return [RequestRecord(id=f"r{i}", arrival_s=float(i), input_tokens=4, output_tokens=1,
                              first_token_s=float(i) + ttfts[i] * f, finish_s=float(i) + ttfts[i] * f)
                for i in order]
    idx = list(range(len(ttfts)))
    a = CompareRun(label="A", records=recs(1.0, idx))
    same = CompareRun(label="same", records=recs(1.0, idx[::-1]))
    scaled = CompareRun(label="scaled", records=recs(scale, idx[::-1]))
    cmp = compare_runs([a, same, scaled], metrics=["ttft_p50", "ttft_max"], n_resamples=200)
    for m in cmp.metrics:
        e = next(x for x in m.runs if x.label == "same")
        assert e.ratio == 1.0 and e.diff == 0.0 and e.overlap is True
        assert e.ratio_ci[0] <= 1.0 <= e.ratio_ci[1]
        s = next(x for x in m.runs if x.label == "scaled")
        assert s.ratio == pytest.approx(scale, rel=1e-12)


def test_runs_of_different_work_are_flagged():
    from servelab.report.compare import CompareRun, compare_runs, workload_differences

    def run(label, n, inp, out):
        return CompareRun(label=label, records=[
            RequestRecord(id=str(i), arrival_s=0.1 * i, input_tokens=inp, output_tokens=out,
                          first_token_s=0.1 * i + 0.02, finish_s=0.1 * i + 0.02 + 0.01 * out) for i in range(n)])
    base = run("measured", 50, 1024, 128)
    assert workload_differences([base, run("same", 52, 1000, 130)]) == []          # within 10 %
    [w] = workload_differences([base, run("chat", 50, 160, 330)])
    assert w.startswith("chat served different work than measured") and "mean input tokens 160 vs 1,024" in w
    cmp = compare_runs([base, run("chat", 50, 160, 330)], metrics=["ttft_p50"], n_resamples=20)
    assert cmp.warnings == (w,) and cmp.to_dict()["warnings"] == [w]
