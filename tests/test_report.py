"""SVG charts, HTML pages and terminal tables."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from servelab.metrics import summarize
from servelab.records import RequestRecord
from servelab.report import (Page, Series, bar_chart, interval_chart, kv_table, line_chart,
                             scatter_chart, summary_table, svg_document, write_html)
from servelab.report._svg import log_ticks, nice_ticks


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == "svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter("text")]


def test_nice_ticks_anchors():
    assert nice_ticks(0, 97) == (0, 100, [0, 20, 40, 60, 80, 100])
    lo, hi, t = nice_ticks(0.013, 0.087)
    # Heckbert: range nice(0.074) = 0.1, step nice(0.1 / 5) = 0.02
    assert (lo, hi) == pytest.approx((0.0, 0.1)) and t[1] - t[0] == pytest.approx(0.02) and len(t) == 6
    assert nice_ticks(5, 5)[2]                      # degenerate range still has ticks
    assert log_ticks(0.003, 20) == (0.001, 100.0, [0.001, 0.01, 0.1, 1.0, 10.0, 100.0])
    assert log_ticks(1, 50)[2] == [1, 2, 5, 10, 20, 50, 100]


def test_line_chart_parses_escapes_and_draws_reference_lines():
    svg = line_chart([Series(name="p95 <TTFT> & co", xs=[0, 1, 2], ys=[0.1, 0.4, 0.2]),
                      Series(name="queue", xs=[0, 1, 2], ys=[3, 1, 2], kind="step", dashed=True)],
                     title='delivery "over" time', x_label="time (s)", y_label="latency (s)",
                     hlines=[(0.3, "SLO 300 ms")], vlines=[(1.5, "replica killed")])
    root = parse(svg)
    t = texts(root)
    assert "p95 <TTFT> & co" in t and "time (s)" in t and "SLO 300 ms" in t and "replica killed" in t
    assert "&lt;TTFT&gt;" in svg and "<TTFT>" not in svg
    assert len(list(root.iter("polyline"))) == 2


def test_charts_survive_empty_nan_and_log_zero():
    for svg in (
        line_chart([], title="empty", x_label="x", y_label="y"),
        line_chart([Series(name="nan", xs=[0, 1, 2, 3], ys=[math.nan, math.inf, 1.0, math.nan])],
                   title="nan", x_label="x", y_label="y"),
        line_chart([Series(name="zeros", xs=[0, 1, 10, 100], ys=[0, 0.5, 5, 50])], title="log",
                   x_label="x", y_label="y", log_x=True, log_y=True),
        line_chart([Series(name="all zero", xs=[0, 0], ys=[0, 0])], title="z", x_label="x", y_label="y",
                   log_y=True),
        scatter_chart([Series(name="s", xs=[], ys=[])], title="s", x_label="x", y_label="y"),
        bar_chart([], {}, title="b", y_label="GB"),
        bar_chart(["a"], {"w": [math.nan], "kv": [-3.0]}, title="b", y_label="GB", horizontal=True),
        interval_chart([], title="i", x_label="s"),
        interval_chart([("x", math.nan, math.nan, math.nan)], title="i", x_label="s", threshold=1.0,
                       better="lower"),
    ):
        root = parse(svg)
        for el in root.iter():                                      # no NaN/inf coordinate leaks
            for key in ("x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "width", "height", "points", "d"):
                val = (el.get(key) or "").lower()
                assert "nan" not in val and "inf" not in val, (key, val)
    empty = parse(line_chart([], title="empty", x_label="x", y_label="y"))
    assert "no data" in texts(empty)
    # the log chart drops the zero point but keeps the line through the positive ones
    log = parse(line_chart([Series(name="z", xs=[0, 1, 10, 100], ys=[0, 0.5, 5, 50])], title="log",
                           x_label="x", y_label="y", log_x=True, log_y=True))
    pts = next(log.iter("polyline")).get("points").split()
    assert len(pts) == 3


def test_scatter_labels_and_error_bars():
    root = parse(scatter_chart([Series(name="configs", xs=[1, 2, 3], ys=[3, 1, 2],
                                       y_lo=[2.5, 0.8, 1.5], y_hi=[3.5, 1.2, 2.5],
                                       labels=["TP1 fp8", "TP2", "TP4"])],
                               title="cost vs latency", x_label="cost ($/h)", y_label="p95 TTFT (s)"))
    assert {"TP1 fp8", "TP2", "TP4"} <= set(texts(root))
    assert len(list(root.iter("circle"))) >= 3 + 1                 # points + legend dot
    assert len([p for p in root.iter("path")]) == 3                # one whisker per point


def test_bar_chart_stacks_and_totals():
    root = parse(bar_chart(["H100", "A100"], {"weights": [16, 16], "KV cache": [50, 40], "activations": [2, 2]},
                           title="memory per GPU", y_label="memory (GB)"))
    rects = [r for r in root.iter("rect") if r.find("title") is not None]
    assert len(rects) == 6
    assert {"68", "58"} <= set(texts(root))


def test_interval_chart_colours_by_side_of_threshold():
    root = parse(interval_chart([("sim", 1.2, 1.0, 1.5), ("measured", 2.1, 1.8, 2.5), ("bad", 3.0, 2.6, 3.3)],
                                title="claims", x_label="TTFT p95 (s)", threshold=2.0, better="lower"))
    fills = [c.get("fill") for c in root.iter("circle")]
    assert fills == ["#009E73", "#E69F00", "#D55E00"]


def test_page_is_self_contained(tmp_path):
    page = Page("Run <report>", subtitle="a & b")
    page.heading("Summary").paragraph("Text with <b>tags</b> & ampersands.")
    page.table(["metric", "value", "verdict"], [["ttft_p95", 0.123456, "supported"], ["x", None, "rejected"],
                                                ["n", 12345, True]], caption="claims")
    page.figure(line_chart([Series(name="a", xs=[0, 1], ys=[1, 2])], title="t", x_label="x", y_label="y"),
                "Figure 1")
    page.details("raw config", "<pre>{}</pre>")
    out = write_html(page, tmp_path / "sub" / "r.html")
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "http://" not in html and "https://" not in html and "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", html)       # no external resource at all
    assert "Run &lt;report&gt;" in html and "&lt;b&gt;tags&lt;/b&gt;" in html
    assert 'class="good">supported' in html and 'class="bad">rejected' in html
    assert "0.1235" in html and "12,345" in html and "<svg " in html and "<details>" in html


def test_svg_document_is_standalone():
    doc = svg_document(line_chart([], title="t", x_label="x", y_label="y"))
    root = ET.fromstring(doc.split("\n", 1)[1])
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


def _summary():
    recs = [RequestRecord(id=str(i), arrival_s=i * 0.1, input_tokens=100, output_tokens=10,
                          first_token_s=i * 0.1 + 0.2, finish_s=i * 0.1 + 0.65) for i in range(20)]
    recs.append(RequestRecord(id="r", arrival_s=1.0, input_tokens=5, status="rejected"))
    return summarize(recs, slo={"ttft_p95": 0.1})


def test_summary_table_renders_latency_ms_and_slo():
    con = Console(record=True, width=120)
    con.print(summary_table(_summary(), "simulate"))
    out = con.export_text()
    assert re.search(r"TTFT\s*│\s*200\s*│", out)                    # 200 ms TTFT
    assert re.search(r"TPOT\s*│\s*50\.0\s*│", out)                   # 50 ms TPOT
    assert "rejected" in out and "NOT met" in out and "0.9524" in out  # delivery 20/21
    con = Console(record=True, width=80)
    con.print(kv_table([("GPUs", 8), ("cost ($/h)", 31.5)], "plan"))
    assert "31.50" in con.export_text()


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which("chromium") and not shutil.which("chromium-browser"),
                    reason="headless chromium not installed")
def test_page_renders_in_headless_chromium(tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    page = Page("browser check").figure(bar_chart(["a"], {"x": [1]}, title="b", y_label="GB"))
    path = write_html(page, tmp_path / "p.html")
    shot = tmp_path / "p.png"
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=900,700", path.as_uri()], check=True, timeout=60,
                   capture_output=True)
    assert shot.exists() and shot.stat().st_size > 1000


def test_run_page_has_every_figure_and_no_urls(tmp_path):
    from servelab.records import RunMeta
    from servelab.report import cdf_series, run_page
    recs = [RequestRecord(id=str(i), arrival_s=i * 0.5, input_tokens=10, output_tokens=4,
                          first_token_s=i * 0.5 + 0.1 * (i % 3 + 1), finish_s=i * 0.5 + 1.0)
            for i in range(40)] + [RequestRecord(id="r", arrival_s=3.0, input_tokens=1, status="rejected")]
    meta = RunMeta(run_id="sim-7", kind="simulate", started_at="2026-01-01T00:00:00Z", config={"rate": 2})
    html = write_html(run_page("sim", summarize(recs), recs, meta=meta, ttft_slo_s=0.25),
                      tmp_path / "run.html").read_text()
    # no server series in these records: the 9 record-based charts, none of them empty
    assert html.count("<svg ") == 9 and "Delivery over time" in html and "sim-7" in html
    assert "no data" not in html and "TPOT and ITL" in html
    assert "{&#x27;rate" not in html and "{'rate" not in html          # metadata flattened, no dict repr
    assert "<td>config.rate</td>" in html
    assert "http://" not in html and "https://" not in html
    cdf = cdf_series("TTFT", [0.3, 0.1, float("nan"), 0.2])
    assert cdf.xs == [0.1, 0.2, 0.3] and cdf.ys == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_public_api_is_all():
    import servelab.metrics as m
    import servelab.recordio as rio
    import servelab.report as r
    for mod in (m, r, rio):
        public = {n for n in dir(mod) if not n.startswith("_")} - {"annotations"}
        exported = set(mod.__all__)
        assert exported <= public
        missing = {n for n in public - exported
                   if callable(getattr(mod, n)) and getattr(getattr(mod, n), "__module__", "").startswith(mod.__name__)}
        assert not missing, missing
