"""Review findings in the report package (each test failed before its fix)."""

from __future__ import annotations

import pytest

from servelab.records import RequestRecord
from servelab.report.compare import CompareRun, compare_runs


def _runs():
    ok = [RequestRecord(id="a", arrival_s=0.0, input_tokens=10, output_tokens=1,
                        first_token_s=0.2, finish_s=0.2)]
    failed = [RequestRecord(id=f"f{i}", arrival_s=float(i), input_tokens=10, status="failed")
              for i in range(2)]
    return [CompareRun(label="two-failed", records=failed, duration_s=2.0),
            CompareRun(label="one-ok", records=ok, duration_s=2.0)]


def test_delivery_of_tiny_runs_is_not_called_a_real_difference():
    # 1 of 1 delivered against 0 of 2: the percentile bootstrap gives [1, 1] and [0, 0],
    # so compare printed "Intervals do not overlap (a difference resampling does not
    # explain)" on three requests. Delivery is a proportion: its interval must contain
    # the Wilson score interval (1/1 -> [0.2065, 1], 0/2 -> [0, 0.6576] at 95 %), and
    # those overlap. The difference interval must contain Newcombe's hybrid score
    # interval (Newcombe, Stat. Med. 17:873, 1998, method 10):
    # d = 1 - 0, lo = d - sqrt((1 - 0.2065)^2 + (0.6576 - 0)^2) = -0.0306, hi = 1.
    cmp = compare_runs(_runs(), metrics=("delivery",), n_resamples=200)
    base, other = cmp.metrics[0].runs
    assert base.ci[0] == pytest.approx(0.0) and base.ci[1] == pytest.approx(0.6576, abs=1e-4)
    assert other.ci[0] == pytest.approx(0.2065, abs=1e-4) and other.ci[1] == pytest.approx(1.0)
    assert other.overlap is True
    assert other.diff == pytest.approx(1.0)
    assert other.diff_ci[0] == pytest.approx(-0.0306, abs=1e-3)
    assert other.diff_ci[1] == pytest.approx(1.0)


def test_interval_chart_row_without_interval_is_not_shown_as_a_zero_width_ci():
    # The plan's sensitivity charts passed (value, value, value): each row read
    # "45.2 [45.2, 45.2]", a zero-width confidence interval that one simulation does not
    # have. A row with NaN lo/hi is a point: its value alone is written, coloured by the
    # value against the threshold (45.2 ms under a 2000 ms SLO: good; 2500: bad).
    import math
    import xml.etree.ElementTree as ET

    from servelab.report.charts import BAD, GOOD, interval_chart
    svg = interval_chart([("plan", 45.2, math.nan, math.nan), ("rate x1.5", 2500.0, math.nan, math.nan)],
                         title="t", x_label="p95 TTFT (ms)", threshold=2000.0, better="lower")
    root = ET.fromstring(svg)
    texts = {t.text: t.get("fill") for t in root.iter("text")}
    assert texts.get("45.2") == GOOD
    assert texts.get("2,500") == BAD or texts.get("2500") == BAD
    assert not any(t and t.startswith("45.2 [") for t in texts)
    assert "?" not in "".join(t for t in texts if t)
