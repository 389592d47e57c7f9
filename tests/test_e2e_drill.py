"""End-to-end drill: prediction and "measurement" of the same requests, side by side.

What is checked, driving the command line as a user would:

1. ``servelab emulate`` (a subprocess on 127.0.0.1) serves Llama-3.1-8B on an H100 SXM
   in real time; ``servelab bench --workload chat`` measures it; ``servelab simulate``
   predicts the same request list (same preset, rate and seed); ``servelab compare``
   lays the two side by side. Both sides must hold the same requests with the same
   token counts (the bench records' counts from the server's usage block), the run's
   time series the scraped ``vllm:*`` gauges, and compare's values and differences must
   be the medians and differences of those very records.
2. A decision file with a claim on ``bench`` (url = the emulator) and ``simulate``
   evidence: ``servelab decide`` must rest the verdict on the measured run, report the
   simulated-vs-measured pair, and store it in the ledger's ``calibration`` table.

No assertion here depends on how fast the machine is: how close the measured
latencies come to the prediction, the throughput error, the speed-up scaling over
HTTP, and a decision that turns on the measured-vs-simulated gap are wall-clock
measurements and live in ``benchmarks/bench_drill.py`` (bounds and their derivation
there). That ``--speedup K`` is a pure time scale is checked exactly, on a virtual
clock, in ``tests/test_emulator.py``. The thresholds of (2) (1 s TPOT, 10 s TTFT) are
≥ 50× the emulated values, so they test the wiring, not the speed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from statistics import median
from typing import Any

import pytest

MODEL, GPU, WORKLOAD = "llama-3.1-8b", "h100-sxm", "chat"
RATE_RPS, DURATION_S, SEED = 10.0, 6.0, 0       # 54 requests of the chat preset (seed 0)


# --------------------------------------------------------------------------- helpers
def _servelab() -> list[str]:
    exe = Path(sys.executable).parent / "servelab"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("servelab")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from servelab.cli import app; sys.argv[0] = 'servelab'; app()"]


def _env() -> dict[str, str]:
    env = dict(os.environ, COLUMNS="160", NO_COLOR="1")
    env.pop("OPENAI_API_KEY", None)
    return env


def _run(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([*_servelab(), *args], capture_output=True, text=True, timeout=timeout_s, env=_env(),
                       check=False)
    assert p.returncode == 0, f"servelab {' '.join(args)} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _records(run_dir: Path) -> dict[str, dict[str, Any]]:
    with open(run_dir / "records.jsonl", encoding="utf-8") as f:
        return {r["id"]: r for r in map(json.loads, f)}


def _ttft_s(r: dict[str, Any]) -> float:
    return float(r["first_token_s"] - r["arrival_s"])


def _tpot_s(r: dict[str, Any]) -> float:
    return float((r["finish_s"] - r["first_token_s"]) / (r["output_tokens"] - 1))


def _num_requests(rate_rps: float, duration_s: float) -> int:
    from servelab.catalog import generate_requests, get_workload

    return len(generate_requests(get_workload(WORKLOAD), rate_rps=rate_rps, duration_s=duration_s, seed=SEED))


def _emulator_engine_profile() -> str:
    """The engine profile whose step model the emulator uses, by its efficiencies.

    ``servelab simulate`` applies an engine profile (default ``vllm``, with a fitted
    per-step overhead); the emulator builds its own deployment. Simulating with the
    profile the emulator actually uses compares like with like whatever either side's
    default is.
    """
    from servelab.catalog import get_gpu, get_model
    from servelab.emulator.server import Emulator, EmulatorConfig
    from servelab.perf import Deployment, get_engine

    emu = Emulator(EmulatorConfig(model=MODEL, gpu=GPU))
    eff = emu.engine.model.dep.efficiency            # ReplicaEngine → perf.StepModel → Deployment
    base = Deployment(model=get_model(MODEL), gpu=get_gpu(GPU))
    for profile in ("vllm", "trtllm"):
        if get_engine(profile).deployment(base).efficiency == eff:
            return profile
    raise AssertionError(f"the emulator's efficiencies {eff} match no engine profile")


class _Emulator:
    def __init__(self, speedup: float, log_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            [*_servelab(), "emulate", "--model", MODEL, "--gpu", GPU, "--host", "127.0.0.1",
             "--port", str(self.port), "--speedup", f"{speedup:g}"],
            stdout=self._log, stderr=subprocess.STDOUT, env=_env())
        deadline = time.monotonic() + 60.0
        while True:
            if self.proc.poll() is not None:
                self.close()
                raise AssertionError(f"servelab emulate exited {self.proc.returncode}: {log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"emulator not healthy after 60 s: {log_path.read_text()}")
            time.sleep(0.2)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Emulator]:
    emu = _Emulator(1.0, tmp_path_factory.mktemp("emu") / "emulate.log")
    try:
        yield emu
    finally:
        emu.close()


# --------------------------------------------------------------------------- 1. bench vs simulate
@pytest.fixture(scope="module")
def drill(emulator: _Emulator, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One measured run (bench on the emulator) and one prediction of the same requests."""
    n = _num_requests(RATE_RPS, DURATION_S)
    assert 40 <= n <= 100
    root = tmp_path_factory.mktemp("drill")
    bench_dir, sim_dir = root / "measured", root / "predicted"
    p = _run("bench", "--base-url", emulator.url, "--workload", WORKLOAD, "--request-rate", f"{RATE_RPS:g}",
             "--num-prompts", str(n), "--seed", str(SEED), "--scrape-interval", "0.5",
             "--out", str(bench_dir), "--json")
    profile = _emulator_engine_profile()
    _run("simulate", "--model", MODEL, "--gpu", GPU, "--workload", WORKLOAD, "--rate", f"{RATE_RPS:g}",
         "--duration", f"{DURATION_S:g}", "--seed", str(SEED), "--engine", profile, "--out", str(sim_dir), "--json")
    return {"n": n, "bench_dir": bench_dir, "sim_dir": sim_dir, "summary": json.loads(p.stdout)}


@pytest.mark.slow
def test_bench_records_carry_usage_counts_and_server_metrics(drill: dict[str, Any]) -> None:
    n, bench_dir, summary = drill["n"], drill["bench_dir"], drill["summary"]
    assert summary["offered"] == n and summary["completed"] == n, summary
    measured, predicted = _records(bench_dir), _records(drill["sim_dir"])
    # Same offered requests on both sides: ids, prompt and output lengths.
    assert set(measured) == set(predicted) and len(measured) == n
    for rid, m in measured.items():
        s = predicted[rid]
        assert m["status"] == "ok" and s["status"] == "ok", (rid, m["status"], s["status"])
        assert (m["input_tokens"], m["output_tokens"]) == (s["input_tokens"], s["output_tokens"]), rid
        # Token counts come from the server's usage block, not from counting chunks.
        assert m["extra"]["token_count_source"] == "usage", m["extra"]
        assert m["output_tokens"] == m["extra"]["requested_output_tokens"]
    assert summary["token_count_source"] == {"usage": n}

    # Scraped vLLM metrics are in the run's time series.
    ts = json.loads((bench_dir / "timeseries.json").read_text())
    assert ts["errors"] == 0 and len(ts["samples"]) >= 3
    names = set().union(*(s["values"] for s in ts["samples"]))
    for metric in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                   "vllm:generation_tokens_total"):
        assert metric in names, sorted(names)
    assert max(s["values"].get("vllm:num_requests_running", 0) for s in ts["samples"]) >= 1
    last_gen = max(s["values"].get("vllm:generation_tokens_total", 0) for s in ts["samples"])
    assert 0 < last_gen <= sum(m["output_tokens"] for m in measured.values())
    assert summary["server_metrics"]["max"]["running"] >= 1


@pytest.mark.slow
def test_compare_reads_the_same_records(drill: dict[str, Any]) -> None:
    bench_dir, sim_dir = drill["bench_dir"], drill["sim_dir"]
    measured, predicted = _records(bench_dir), _records(sim_dir)
    # The comparison a user reads: servelab compare, measurement as baseline.
    out = _run("compare", str(bench_dir), str(sim_dir), "--metrics", "ttft_p50,tpot_p50,e2e_p50",
               "--resamples", "300", "--json")
    cmp = json.loads(out.stdout)
    assert [r["kind"] for r in cmp["runs"]] == ["bench", "simulate"]
    by = {m["metric"]: {r["label"]: r for r in m["runs"]} for m in cmp["metrics"]}
    base_label, sim_label = cmp["runs"][0]["label"], cmp["runs"][1]["label"]
    for metric, of in (("tpot_p50", _tpot_s), ("ttft_p50", _ttft_s)):
        meas, sim = by[metric][base_label], by[metric][sim_label]
        assert meas["baseline"] and not sim["baseline"]
        # The compare values are the medians of the very records (computed here by hand).
        assert meas["value"] == pytest.approx(median(of(r) for r in measured.values()), rel=1e-12)
        assert sim["value"] == pytest.approx(median(of(r) for r in predicted.values()), rel=1e-12)
        # diff = simulated − measured (baseline); rel_error = diff / measured.
        assert sim["diff"] == pytest.approx(sim["value"] - meas["value"], rel=1e-12, abs=1e-15)
        assert sim["rel_error"] == pytest.approx(sim["diff"] / meas["value"], rel=1e-12, abs=1e-15)
    # Throughput over the makespan (run start to the last finish), both sides: tokens / span.
    out = _run("compare", str(bench_dir), str(sim_dir), "--metrics", "throughput_tokens_per_s",
               "--resamples", "100", "--json")
    (row,) = json.loads(out.stdout)["metrics"]
    for r in row["runs"]:
        recs = measured if r["baseline"] else predicted
        tokens = sum(x["output_tokens"] for x in recs.values() if x["status"] == "ok")
        span_s = max(x["finish_s"] for x in recs.values())      # times are from the run's start
        assert r["value"] == pytest.approx(tokens / span_s, rel=1e-9), (r, tokens, span_s)


# --------------------------------------------------------------------------- 2. decide
_DECISION = """\
name: e2e-drill
description: A claim judged on an emulated measurement and on the simulator's prediction.
scenarios:
  chat8b:
    model: {model}
    gpu: {gpu}
    workload: chat
    output_tokens: 128
    rate_rps: 10
    duration_s: 5
    seed: 0
    experiments:
      - {{kind: bench, url: "{url}"}}
      - {{kind: simulate}}
claims:
  - id: tpot-p50
    text: Median TPOT stays within {tpot_ms:g} ms.
    scenario: chat8b
    metric: tpot_p50
    comparison: "<="
    threshold: {tpot_s!r}
    evidence: {{kinds: [bench, simulate], min_requests: 40}}
  - id: ttft-p95
    text: p95 TTFT stays within {ttft_s:g} s.
    scenario: chat8b
    metric: ttft_p95
    comparison: "<="
    threshold: {ttft_s!r}
    evidence: {{kinds: [bench, simulate], min_requests: 40}}
"""


def _decide(path: Path, ledger: Path) -> dict[str, Any]:
    return json.loads(_run("decide", str(path), "--ledger", str(ledger), "--json").stdout)


@pytest.mark.slow
def test_decide_rests_on_the_measured_run(emulator: _Emulator, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    first = tmp_path / "decision.yaml"
    first.write_text(_DECISION.format(model=MODEL, gpu=GPU, url=emulator.url, tpot_ms=1000.0, tpot_s=1.0, ttft_s=10.0))
    res = _decide(first, ledger)

    runs = {e["kind"]: e for e in res["experiments"]}
    assert runs["bench"]["status"] == "ran" and runs["simulate"]["status"] == "ran", res["experiments"]
    bench_id, sim_id = runs["bench"]["run_id"], runs["simulate"]["run_id"]
    verdicts = {v["claim_id"]: v for v in res["verdicts"]}
    for cid, v in verdicts.items():
        assert v["evidence_kind"] == "bench" and v["run_ids"] == [bench_id], (cid, v)
        assert not v["simulation_only"]
        assert v["verdict"] == "supported", v          # 1 s / 10 s are far above both
        (cal,) = v["detail"]["calibration"]
        assert cal["measured_run"] == bench_id and cal["simulated_run"] == sim_id
        assert cal["measured_value"] == v["value"]
        assert cal["rel_diff"] == pytest.approx(
            (cal["measured_value"] - cal["simulated_value"]) / abs(cal["simulated_value"]))
    tp = verdicts["tpot-p50"]["detail"]["calibration"][0]
    # The verdict's value is the median TPOT of the bench run's records.
    assert tp["measured_value"] > 0 and tp["simulated_value"] > 0

    with sqlite3.connect(ledger) as db:
        rows = db.execute("SELECT metric, measured_run, simulated_run FROM calibration").fetchall()
    assert sorted(rows) == [("tpot_p50", bench_id, sim_id), ("ttft_p95", bench_id, sim_id)]
