"""The plan's HTML report in a real headless browser (Debian's chromium).

Skipped when no chromium is installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from servelab.report.plan_page import write_plan_report
from servelab.plan import PlanRequest, SearchSettings, plan

pytestmark = pytest.mark.browser

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr",
         "--v=0"]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    res = plan(PlanRequest(gpus=("l40s", "h100-sxm"), weight_dtypes=("bf16", "fp8"), kv_dtypes=("bf16",),
                           tps=(1,), search=SearchSettings(max_requests=600, min_requests=200),
                           fleet_duration_s=30.0, jobs=1))
    return write_plan_report(res, tmp_path_factory.mktemp("plan") / "report.html")


def _chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120)


def test_report_opens_and_plots_are_present(report):
    proc = _chromium("--dump-dom", report.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert dom.rstrip().endswith("</html>")
    for n in ("1 ", "2–3 ", "4 ", "5 ", "6 ", "7 ", "8 ", "9 ", "10 ", "11 ", "12 ", "13 "):
        assert f"<h2>{n}· " in dom, n
    svgs = re.findall(r"<svg\b", dom)
    assert len(svgs) >= 7          # memory, roofline, TPOT curve, TTFT probes, Pareto, 2 × sensitivity
    assert dom.count("<polyline") >= 4 and dom.count("<circle") >= 3 and dom.count("<rect") >= 5
    # no script errors and no attempt to load anything (the file is self-contained)
    assert "Uncaught" not in proc.stderr
    assert "Failed to load resource" not in proc.stderr


def test_report_renders_to_a_screenshot(report, tmp_path):
    shot = tmp_path / "report.png"
    proc = _chromium("--window-size=1200,3000", f"--screenshot={shot}", report.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000   # a blank page is a few kB
