"""Run reports (``servelab report RUN --html``) of a simulated run and of a bench run
against the emulator, opened in headless Chromium: every chart has data, the
server series scraped during the bench are plotted, points carry hover text.

Screenshots: ``SERVELAB_UPDATE_SCREENSHOTS=1 pytest tests/test_run_report_browser.py``
copies them to ``docs/img/`` (referenced from docs/report.md).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from load_fixtures import emulator_server
from servelab.cli import app

pytestmark = pytest.mark.browser

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


def _chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    d = tmp_path_factory.mktemp("runs")
    runner = CliRunner()
    r = runner.invoke(app, ["simulate", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--workload", "chat",
                            "--request-rate", "20", "--duration", "60", "--out", str(d / "sim")])
    assert r.exit_code == 0, r.output
    from servelab.emulator import EmulatorConfig
    with emulator_server(EmulatorConfig(speedup=4.0)) as emu:
        r = runner.invoke(app, ["bench", "--base-url", f"http://127.0.0.1:{emu.port}", "--num-prompts", "60",
                                "--request-rate", "40", "--random-input-len", "256", "--random-output-len", "64",
                                "--scrape-interval", "0.1", "--out", str(d / "bench"), "--json"])
    assert r.exit_code == 0, r.output
    out = {}
    for name in ("sim", "bench"):
        r = runner.invoke(app, ["report", str(d / name), "--html", str(d / f"{name}.html")])
        assert r.exit_code == 0, r.output
        out[name] = d / f"{name}.html"
    return out


@pytest.mark.parametrize("name", ["sim", "bench"])
def test_run_report_has_no_empty_chart(reports, name):
    proc = _chromium("--dump-dom", reports[name].as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert dom.rstrip().endswith("</html>")
    charts = re.findall(r'<svg [^>]*aria-label="([^"]+)"', dom)
    assert len(charts) >= 10, charts
    assert "no data" not in dom
    for title in ("Load and completions over time", "Output token throughput over time",
                  "TTFT percentiles by arrival time", "Latency distribution: TTFT and E2E",
                  "Latency distribution: TPOT and ITL", "Requests in the system", "KV cache usage over time"):
        assert title in charts, (title, charts)
    # the server's own series are drawn: simulator gauges, or the scraped /metrics
    src = "simulator" if name == "sim" else "server /metrics"
    assert f"running ({src})" in dom and f"waiting ({src})" in dom
    if name == "bench":
        assert "generation tokens/s (server /metrics)" in dom and "mean TTFT (server /metrics histogram)" in dom
    # hover text on points, and a metadata table without Python reprs
    assert len(re.findall(r'<circle class="pt"[^>]*><title>[^<]+ — ', dom)) > 50
    meta = dom.split("Run metadata", 1)[1]
    assert "{'" not in meta and "{&#x27;" not in meta


@pytest.mark.parametrize("name", ["sim", "bench"])
def test_run_report_screenshot(reports, name, tmp_path):
    shot = tmp_path / f"run-report-{name}.png"
    proc = _chromium("--window-size=1100,2400", "--hide-scrollbars", f"--screenshot={shot}", reports[name].as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000     # a blank page is a few kB
    if os.environ.get("SERVELAB_UPDATE_SCREENSHOTS"):
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMG / shot.name)


def test_bench_report_sets_client_beside_server_histograms(reports):
    """The emulator's histograms and the client agree on ITL and E2E within the HTTP
    path's cost; the table is on the page."""
    import json
    html = reports["bench"].read_text()
    assert "Measured by the client vs the server" in html
    summary = json.loads((reports["bench"].parent / "bench" / "summary.json").read_text())
    server = summary["server_metrics"]["mean_s"]
    assert set(server) >= {"ttft", "itl", "e2e"}
    # client ITL (per chunk) and server ITL (per token) are the same gaps seen from two ends
    assert summary["itl_s"]["mean"] == pytest.approx(server["itl"], rel=0.05)
    # client latencies include the HTTP path: never less than the server's; a few ms more (50 ms
    # allows for a loaded 2-core host, where the in-process emulator wakes late)
    assert server["ttft"] <= summary["ttft_s"]["mean"] <= server["ttft"] + 0.05
    assert server["e2e"] <= summary["e2e_s"]["mean"] <= server["e2e"] + 0.05
