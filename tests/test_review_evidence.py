"""Review findings in the evidence engine (each test failed before its fix)."""

from __future__ import annotations

import pytest

from servelab.evidence.estimates import RunEvidence, estimate
from servelab.records import RequestRecord


def _all_ok(n: int) -> list[RequestRecord]:
    # one request per second, each 10 output tokens, TTFT 0.1 s, all well inside any SLO
    return [RequestRecord(id=f"r{i}", arrival_s=float(i), input_tokens=100, output_tokens=10,
                          first_token_s=i + 0.1, finish_s=i + 0.5) for i in range(n)]


@pytest.mark.parametrize("metric, proportion_slo", [
    ("goodput_rps", {"ttft": 1.0}),
    ("request_throughput_rps", None),
])
def test_rate_of_successes_interval_is_not_a_point_when_every_request_succeeded(metric, proportion_slo):
    # 200 of 200 requests good/delivered over a 200 s window: the point value is 1 req/s.
    # The percentile bootstrap resamples n = 200 requests that are all good, so every draw
    # is exactly 1.0 and the interval collapsed to [1, 1] — a claim "goodput_rps >= 0.99"
    # was "supported" although a true attainment of 0.99 gives 200/200 with p = 0.13.
    # The rate is (successes / n) × n / window, so its interval must contain the Wilson
    # interval of 200/200 scaled by n / window: lower = 200 / (200 + 1.959964²) = 0.98116.
    ev = RunEvidence(run_id="r", kind="simulate", scenario="s", records=_all_ok(200),
                     duration_s=200.0, slo=proportion_slo)
    est = estimate(ev, metric, confidence=0.95, n_resamples=200, seed=0)
    assert est.value == pytest.approx(1.0)
    assert est.lo == pytest.approx(200 / (200 + 1.959964 ** 2), rel=1e-5)
    assert est.hi == pytest.approx(1.0)


def test_decision_report_axes_and_metric_cells_carry_units():
    # The interval charts' x axis was labelled "ttft_p95" / "cost_per_million_tokens"
    # with no unit, so 0.1146 could read as ms or s and 0.75 as USD or cents.
    from servelab.report.decision_page import _labelled
    assert _labelled("ttft_p95") == "ttft_p95 (s)"
    assert _labelled("itl_p99.9") == "itl_p99.9 (s)"
    assert _labelled("cost_per_million_tokens") == "cost_per_million_tokens (USD per 1M output tokens)"
    assert _labelled("goodput_rps") == "goodput_rps (req/s)"
    assert _labelled("throughput_tokens_per_s") == "throughput_tokens_per_s (tokens/s)"
    assert _labelled("delivery") == "delivery (fraction of requests)"
    assert _labelled("ttft_count") == "ttft_count (samples)"
    assert _labelled("pct_of_peak") == "pct_of_peak"        # kernel-lab metric: unit unknown here


@pytest.mark.parametrize("args", [["runs"], ["claims"], ["show", "x"]])
def test_ledger_read_commands_refuse_a_missing_ledger_instead_of_creating_one(tmp_path, args):
    # `servelab ledger claims --ledger typo/x.sqlite` created the folder and an empty
    # database and printed an empty table, as if the real ledger held nothing.
    from typer.testing import CliRunner

    from servelab.cli import app
    missing = tmp_path / "typo" / "ledger.sqlite"
    res = CliRunner().invoke(app, ["ledger", *args, "--ledger", str(missing)])
    assert res.exit_code == 2
    assert "no ledger at" in res.output and str(missing) in res.output.replace("\n", "")
    assert not missing.parent.exists()
