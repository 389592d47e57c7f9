"""The live operating point: histogram quantiles (Prometheus's rule, hand-computed),
rates from counter and gauge deltas, the findings of `assess`, and the watch loop on an
injected source and sleep (no wall clock)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from servelab.catalog import parse_slo
from servelab.deploy import load_target
from servelab.deploy.live import Sample, SourceError, histogram_quantile, operating_point, parse_sample
from servelab.deploy.watch import Prediction, WatchSettings, assess, poisson_lower, watch


def test_histogram_quantile_hand_anchors() -> None:
    # 10 observations: 4 in (0, 1], 4 in (1, 2], 2 in (2, +Inf)
    b = ((1.0, 4.0), (2.0, 8.0), (math.inf, 10.0))
    assert histogram_quantile(0.2, b) == pytest.approx(0.5)        # rank 2 of 4 in the first bucket: 0 + 1·2/4
    assert histogram_quantile(0.6, b) == pytest.approx(1.5)        # rank 6: 1 + 1·(6-4)/4
    assert histogram_quantile(0.95, b) == 2.0                      # rank 9.5 in +Inf: largest finite bound
    assert histogram_quantile(0.5, ((1.0, 0.0), (math.inf, 0.0))) is None


def test_histogram_quantile_converges_to_the_sample_quantile() -> None:
    """With fine buckets, the interpolated quantile approaches numpy's on the raw values."""
    rng = np.random.default_rng(3)
    x = rng.exponential(0.4, 20000)
    edges = np.linspace(0.01, 4.0, 400)
    b = tuple((float(e), float((x <= e).sum())) for e in edges) + ((math.inf, float(len(x))),)
    for q in (0.5, 0.9, 0.95):
        assert histogram_quantile(q, b) == pytest.approx(np.quantile(x, q), abs=0.012)


TEXT = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{model_name="m"}} {running}
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{model_name="m"}} {waiting}
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{model_name="m"}} {kv}
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{{model_name="m"}} {gen}
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{{le="1.0",model_name="m"}} {e1}
vllm:e2e_request_latency_seconds_bucket{{le="+Inf",model_name="m"}} {done}
vllm:e2e_request_latency_seconds_count{{model_name="m"}} {done}
vllm:e2e_request_latency_seconds_sum{{model_name="m"}} 0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{{le="0.1",model_name="m"}} {t1}
vllm:time_to_first_token_seconds_bucket{{le="1.0",model_name="m"}} {t2}
vllm:time_to_first_token_seconds_bucket{{le="+Inf",model_name="m"}} {done}
vllm:time_to_first_token_seconds_count{{model_name="m"}} {done}
vllm:time_to_first_token_seconds_sum{{model_name="m"}} 0
"""


def _text(**kw: float) -> str:
    base = dict(running=0, waiting=0, kv=0.1, gen=0, e1=0, done=0, t1=0, t2=0)
    return TEXT.format(**{**base, **kw})


def test_rates_and_quantiles_from_two_samples_of_two_replicas() -> None:
    a = parse_sample([_text(done=10, t1=10, t2=10, running=2), _text(done=5, t1=5, t2=5, waiting=1)], t_s=100.0)
    # 10 s later: 40 more completions over both replicas, 5 more in the system
    b = parse_sample([_text(done=30, t1=20, t2=30, running=4, gen=1000, kv=0.4),
                      _text(done=25, t1=15, t2=25, waiting=4, gen=500, kv=0.9)], t_s=110.0)
    assert b.replicas == 2 and b.gauges["kv_usage"] == 0.9        # KV: the fullest replica
    p = operating_point(a, b)
    assert p.completed == 40
    assert p.arrival_rate_rps == pytest.approx((40 + (8 - 3)) / 10)   # completed + growth of running+waiting
    # TTFT increments: 20 at <= 0.1 s, 20 in (0.1, 1]; p95 = rank 38 -> 0.1 + 0.9·18/20
    assert p.ttft_p95_s == pytest.approx(0.1 + 0.9 * 18 / 20)
    assert p.output_tokens_per_s == pytest.approx(150.0)
    assert "vllm:time_per_output_token_seconds_bucket" in p.missing
    # the emulator at --speedup 4: rates / 4, durations × 4
    s = operating_point(a, b, time_scale=4.0)
    assert s.arrival_rate_rps == pytest.approx(p.arrival_rate_rps / 4)
    assert s.ttft_p95_s == pytest.approx(p.ttft_p95_s * 4)


def test_a_server_without_vllm_series_is_named() -> None:
    llamacpp = ("# TYPE llamacpp:prompt_tokens_total counter\nllamacpp:prompt_tokens_total 12\n"
                "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 1\n")
    with pytest.raises(SourceError, match="lack vllm:num_requests_running, vllm:num_requests_waiting.*llamacpp:prompt_tokens_total"):
        parse_sample([llamacpp], t_s=0.0)


def _point(rate: float, ttft: float | None, *, waiting: float = 0.0):
    a = Sample(t_s=0.0, counters={}, buckets={}, gauges={})
    n = rate * 10
    b = Sample(t_s=10.0, counters={"vllm:e2e_request_latency_seconds_count": n},
               buckets={"vllm:time_to_first_token_seconds": ((0.1, n * 0.5 if ttft else n), (1.0, n), (10.0, n),
                                                              (math.inf, n))},
               gauges={"running": 0.0, "waiting": waiting})
    return operating_point(a, b, quantiles=(0.95,)), b


SLO = parse_slo("ttft_p95=1s")


def test_assess_names_the_cause() -> None:
    ok_point, s_ok = _point(4.0, None)
    s = s_ok
    pred_ok = Prediction(rate_rps=4.0, values={"ttft_p95": 0.05}, delivery=1.0, preemptions=0, n_requests=100)
    rep = assess(ok_point, planned_rps=4.0, slo=SLO, prediction=pred_ok, settings=WatchSettings(), sample=s)
    assert rep.status == "ok" and rep.findings == ()
    hot, s = _point(8.0, 0.5)
    pred_hot = Prediction(rate_rps=8.0, values={"ttft_p95": 6.7}, delivery=1.0, preemptions=0, n_requests=100)
    rep = assess(hot, planned_rps=4.0, slo=SLO, prediction=pred_hot, settings=WatchSettings(), sample=s)
    kinds = {f.kind: f.message for f in rep.findings}
    assert rep.status == "alert"
    assert kinds["load"] == "load 2.0× plan (8 vs 4 req/s)"
    assert kinds["slo_risk"] == "predicted p95 TTFT at this load 6.7 s > SLO 1 s"
    # observed p95 0.1 + 0.9·(0.95·80 − 40)/40 = 0.91 s: within the SLO, but 18× the prediction of 0.05 s
    rep = assess(hot, planned_rps=8.0, slo=SLO, prediction=pred_ok, settings=WatchSettings(), sample=s)
    assert [f.kind for f in rep.findings] == ["drift"] and rep.status == "warn"
    q = assess(ok_point, planned_rps=4.0, slo=SLO, prediction=pred_ok, settings=WatchSettings(), sample=s_ok,
               waiting_history=(0.0, 2.0, 5.0, 9.0))
    assert [f.kind for f in q.findings] == ["queue"]


class _FakeSource:
    """Replays samples; the watch loop's sleep is recorded instead of waited."""

    def __init__(self, samples: list[Sample]) -> None:
        self.samples = list(samples)

    def sample(self) -> Sample:
        return self.samples.pop(0)


def test_watch_loop_on_an_injected_clock(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("model: llama-3.1-8b\ngpu: h100-sxm\nengine: {max_num_seqs: 4}\nworkload: chat\ninput_tokens: 256\n"
                 "output_tokens: 64\narrival: constant\nrate_rps: 4\nduration_s: 60\nslo: ttft_p95=1s\n")
    t = load_target(p)
    samples = []
    for i in range(5):   # 4 req/s for two intervals, then 8 req/s with a growing queue
        done = 40 * i if i <= 2 else 80 + 60 * (i - 2)
        samples.append(Sample(t_s=10.0 * i, counters={"vllm:e2e_request_latency_seconds_count": float(done)},
                              buckets={}, gauges={"running": 4.0, "waiting": 0.0 if i <= 2 else 20.0 * (i - 2)}))
    slept: list[float] = []
    reps = list(watch(_FakeSource(samples), t, WatchSettings(interval_s=10.0, window_s=10.0), count=4,
                      sleep=slept.append))
    assert slept == [10.0] * 4
    assert [round(r.point.arrival_rate_rps, 3) for r in reps] == [4.0, 4.0, 8.0, 8.0]
    assert [r.status for r in reps] == ["ok", "ok", "alert", "alert"]
    assert "load 2.0× plan" in reps[2].to_dict()["reasons"][0]
    assert any("predicted p95 TTFT at this load" in m for m in reps[3].to_dict()["reasons"])


def _exact_poisson_lower(n: int, alpha: float = 0.05) -> float:
    """The exact bound by bisection: the mean L with P(X >= n | L) = alpha (naive sums)."""
    def tail(lam: float) -> float:
        term, cdf = math.exp(-lam), 0.0
        for k in range(n):
            cdf += term
            term *= lam / (k + 1)
        return 1.0 - cdf
    lo, hi = 0.0, float(n)
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail(mid) < alpha else (lo, mid)
    return lo


@pytest.mark.parametrize("n", [3, 10, 30, 100, 400])
def test_poisson_lower_bound_matches_the_exact_one(n: int) -> None:
    assert poisson_lower(n) == pytest.approx(_exact_poisson_lower(n), rel=0.02)


def test_poisson_lower_bound_is_conservative_for_one_event() -> None:
    # Byar's approximation is poorest at n = 1 (0.0395 vs the exact 0.0513): lower, never higher
    assert 0.75 * _exact_poisson_lower(1) < poisson_lower(1) < _exact_poisson_lower(1)


def test_a_short_window_needs_evidence_for_a_load_finding() -> None:
    a = Sample(t_s=0.0, counters={}, buckets={}, gauges={})
    few = Sample(t_s=1.0, counters={"vllm:e2e_request_latency_seconds_count": 5.0}, buckets={}, gauges={})
    many = Sample(t_s=60.0, counters={"vllm:e2e_request_latency_seconds_count": 300.0}, buckets={}, gauges={})
    # 5 req/s vs planned 4 (1.25×): 5 arrivals bound the rate only above 1.97 req/s; 300 above 4.5
    for b, expect in ((few, []), (many, ["load"])):
        p = operating_point(a, b)
        assert p.arrival_rate_rps == 5.0
        rep = assess(p, planned_rps=4.0, slo=SLO, prediction=None, settings=WatchSettings())
        assert [f.kind for f in rep.findings] == expect and rep.load_factor == 1.25


@pytest.mark.skipif(__import__("shutil").which("promtool") is None,
                    reason="promtool not installed (Debian package 'prometheus'; .ci/run installs it)")
@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
def test_histogram_quantile_agrees_with_prometheus(q: float, tmp_path: Path) -> None:
    """Prometheus's own histogram_quantile (evaluated by `promtool test rules`) is the reference.
    promtool compares exactly, so the test asks for an impossible value and reads the value
    Prometheus computed from its failure report ("got: {} 2.05E+00")."""
    import re
    import shutil
    import subprocess

    import yaml

    per_min = {"0.1": 2, "0.5": 5, "1": 11, "2.5": 12, "+Inf": 13}      # cumulative increments per minute
    buckets = tuple((math.inf if le == "+Inf" else float(le), 6.0 * n) for le, n in per_min.items())
    want = histogram_quantile(q, buckets)
    test = {"rule_files": [], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": f'h_bucket{{le="{le}"}}', "values": f"0+{n}x10"} for le, n in per_min.items()],
        "promql_expr_test": [{"expr": f"histogram_quantile({q}, sum by (le) (increase(h_bucket[5m])))",
                              "eval_time": "10m", "exp_samples": [{"labels": "{}", "value": -1}]}]}]}
    f = tmp_path / "t.yaml"
    f.write_text(yaml.safe_dump(test))
    r = subprocess.run([shutil.which("promtool"), "test", "rules", str(f)], capture_output=True, text=True)
    got = re.search(r"got: \{\} ([-+0-9.Ee]+)", r.stdout + r.stderr)
    assert got, r.stdout + r.stderr
    assert float(got.group(1)) == pytest.approx(want, rel=1e-9)
