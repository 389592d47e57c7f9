"""`servelab watch` against real servers, the parts that do not depend on wall-clock speed:
clear errors for a dead /metrics URL and a missing source, and a real Prometheus that
does not scrape the scenario's model (the missing series is named, exit 3).

The real-time checks — `servelab emulate`'s replica (run 2× faster than modelled) driven
by the load client at the planned rate and at twice it, watched through its /metrics and
through a real Prometheus: no load/SLO finding and exit 0 at the planned rate, an alert
naming the load and the predicted SLO miss and exit 1 at twice it — measure rates over
wall-clock intervals, so they live in ``benchmarks/bench_watch.py`` (which imports the
scenario and the checks below). The watch loop itself is checked on an injected clock in
tests/test_deploy_live.py.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
from typer.testing import CliRunner

from servelab.cli import app
from tests.load_fixtures import emulator_server

SPEEDUP = 2.0
PLANNED_RPS = 4.0
SCENARIO = f"""\
model: llama-3.1-8b
gpu: h100-sxm
engine: {{max_num_seqs: 4, max_num_batched_tokens: 2048}}
replicas: 1
workload: chat
input_tokens: 256
output_tokens: 72
arrival: constant
rate_rps: {PLANNED_RPS:g}
duration_s: 60
slo: ttft_p95=2s,tpot_p95=50ms
"""
REPORTS = 7          # one per second of wall time
WINDOW = "8"         # seconds of modelled time = 4 s of wall time at --speedup 2


@pytest.fixture()
def scen(tmp_path: Path) -> Path:
    p = tmp_path / "planned.yaml"
    p.write_text(SCENARIO)
    return p


def _bench(port: int, model_rps: float, wall_s: float) -> threading.Thread:
    """The load client at ``model_rps`` of modelled time (× SPEEDUP in wall time)."""
    from servelab.load.bench import BenchSpec, run_bench
    from servelab.load.client import EndpointConfig

    rate = model_rps * SPEEDUP
    spec = BenchSpec(endpoint=EndpointConfig(base_url=f"http://127.0.0.1:{port}", model="llama-3.1-8b",
                                             ignore_eos=True),
                     request_rate=rate, arrival="constant", num_prompts=int(rate * wall_s),
                     random_input_len=256, random_output_len=72, scrape_interval_s=0.0, seed=1)
    th = threading.Thread(target=run_bench, args=(spec,), daemon=True)
    th.start()
    return th


def _watch(scen: Path, *source: str, extra: tuple[str, ...] = ()) -> tuple[int, list[dict[str, Any]], str]:
    r = CliRunner().invoke(app, ["watch", str(scen), *source, "--interval", "1", "--window", WINDOW,
                                 "--count", str(REPORTS), "--speedup", f"{SPEEDUP:g}", "--json", *extra])
    reports = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return r.exit_code, reports, r.output


def _kinds(rep: dict[str, Any]) -> set[str]:
    return {f["kind"] for f in rep["findings"]}


def _check_planned(code: int, reports: list[dict[str, Any]], out: str) -> None:
    assert len(reports) == REPORTS, out
    assert code == 0, out
    for rep in reports:
        assert not _kinds(rep) & {"load", "slo_risk", "slo_breach"}, rep["reasons"]
    steady = reports[-1]
    assert steady["status"] in ("ok", "warn") and 0.8 < steady["load_factor"] < 1.1, steady


def _check_overload(code: int, reports: list[dict[str, Any]], out: str) -> None:
    assert code == 1, out
    last = reports[-1]
    assert last["status"] == "alert", last
    assert 1.7 < last["load_factor"] < 2.3, last
    msgs = " | ".join(last["reasons"])
    assert "× plan (" in msgs and "predicted p95 TTFT at this load" in msgs and "> SLO 2 s" in msgs, msgs


def test_watch_errors_are_clear(scen: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    r = CliRunner().invoke(app, ["watch", str(scen), "--url", f"http://127.0.0.1:{dead}", "--count", "1"])
    assert r.exit_code == 3 and f"cannot reach http://127.0.0.1:{dead}/metrics" in r.output
    r = CliRunner().invoke(app, ["watch", str(scen), "--count", "1"])
    assert r.exit_code == 2 and "either --url" in r.output


PROMETHEUS = shutil.which("prometheus")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """Starts real Prometheus servers that scrape 127.0.0.1:PORT every 0.5 s (files under
    ``tmp``); ``close()`` stops them. Shared with benchmarks/bench_watch.py."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def start(self, target_port: int) -> str:
        tmp_path, procs = self.tmp, self.procs
        port = _free_port()
        cfg = tmp_path / f"prometheus{len(procs)}.yml"
        cfg.write_text("global: {scrape_interval: 500ms, evaluation_interval: 1s}\n"
                       "scrape_configs:\n  - job_name: vllm\n    static_configs:\n"
                       f"      - targets: ['127.0.0.1:{target_port}']\n")
        log = open(tmp_path / "prometheus.log", "w")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / f'tsdb{len(procs)}'}",
                              f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                             stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        url = f"http://127.0.0.1:{port}"
        for _ in range(150):            # bounded wait for readiness and a first scrape of the emulator
            if p.poll() is not None:
                raise AssertionError(f"prometheus exited: {(tmp_path / 'prometheus.log').read_text()}")
            try:
                q = urllib.request.urlopen(f"{url}/api/v1/query?query=up", timeout=1).read()
                if b'"1"' in q:
                    return url
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not scraping: {(tmp_path / 'prometheus.log').read_text()}")

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


@pytest.fixture()
def prometheus_for(tmp_path: Path) -> Iterator[Any]:
    """A function starting a real Prometheus that scrapes 127.0.0.1:PORT every 0.5 s."""
    prom = Prometheus(tmp_path)
    yield prom.start
    prom.close()


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package 'prometheus'; "
                                               ".ci/run installs it)")
def test_watch_through_a_real_prometheus_names_a_missing_series(scen: Path, prometheus_for: Any) -> None:
    from servelab.emulator import EmulatorConfig
    from servelab.scenario import resolve

    import yaml

    sc = resolve(yaml.safe_load(SCENARIO))
    with emulator_server(EmulatorConfig(speedup=SPEEDUP, scenario=sc)) as emu:
        url = prometheus_for(emu.port)
        # a fleet Prometheus does not scrape: the missing series is named, exit 3
        r = CliRunner().invoke(app, ["watch", str(scen), "--prometheus", url, "--set", "model=llama-3.1-70b",
                                     "--count", "1", "--interval", "0.1"])
        assert r.exit_code == 3 and 'no series vllm:num_requests_running{model_name="llama-3.1-70b"}' \
            in " ".join(r.output.split()), r.output
