"""The emulated server: API shape, errors, metrics, and timing against the simulator."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from servelab.catalog import get_gpu, get_model
from servelab.catalog.workloads import RequestSpec
from servelab.cli import app
from servelab.errors import ConfigError
from servelab.emulator import EmulatorConfig
from servelab.load.scrape import parse_metrics
from servelab.perf import Deployment, get_engine
from servelab.perf.engines import ENGINE_PROFILES
from servelab.sim import SchedulerConfig, ReplicaEngine

from load_fixtures import VirtualClock, emulator_server


def _post(url: str, data: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_api_errors_and_metrics_names() -> None:
    with emulator_server(EmulatorConfig(speedup=10.0)) as emu:
        base = f"http://127.0.0.1:{emu.port}"
        models = json.loads(urllib.request.urlopen(base + "/v1/models").read())
        assert models["data"][0]["id"] == "llama-3.1-8b"
        code, body = _post(base + "/v1/completions", b"{not json")
        assert code == 400 and body["error"]["type"] == "invalid_request_error"
        huge = json.dumps({"prompt": "w " * 200_000, "max_tokens": 4}).encode()
        code, body = _post(base + "/v1/completions", huge)
        assert code == 400 and "maximum context length is 131072" in body["error"]["message"]
        code, body = _post(base + "/v1/chat/completions",
                           json.dumps({"messages": [{"role": "user", "content": "a b c"}], "max_tokens": 5}).encode())
        assert code == 200 and body["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
        text = urllib.request.urlopen(base + "/metrics").read().decode()
    vals = parse_metrics(text)
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                 "vllm:time_to_first_token_seconds_count", "vllm:inter_token_latency_seconds_count",
                 "vllm:time_per_output_token_seconds_count", "vllm:e2e_request_latency_seconds_count"):
        assert name in vals, name
    assert vals["vllm:prompt_tokens_total"] == 3 and vals["vllm:generation_tokens_total"] == 5
    assert vals["vllm:time_to_first_token_seconds_count"] == 1


def test_queue_full_gives_503_rejections(tmp_path) -> None:
    with emulator_server(EmulatorConfig(speedup=1.0, max_queue=2, max_num_seqs=2,
                                        max_num_batched_tokens=2048)) as emu:
        r = CliRunner().invoke(app, ["bench", "--base-url", f"http://127.0.0.1:{emu.port}", "--model", "x",
                                     "--num-prompts", "12", "--random-input-len", "64",
                                     "--random-output-len", "32", "--scrape-interval", "0",
                                     "--max-failure-rate", "1", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["failures"]["count"] == s["rejected"]
    assert s["failures"]["by_reason"][0]["status"] == "rejected"
    # 12 at once against a waiting queue of 2: at least the 2 queued ones run, the rest get
    # 503 — unless an engine step begins between arrivals and moves queued requests into
    # the batch (≤ max_num_seqs = 2 per step), freeing queue slots; so 2..6 complete
    assert s["offered"] == 12 and s["completed"] + s["rejected"] == 12
    assert 2 <= s["completed"] <= 6 and s["rejected"] >= 6, s
    assert abs(s["delivery"] - s["completed"] / 12) < 1e-9


def test_bench_against_emulator_matches_simulator_ttft(tmp_path) -> None:
    """One request at a time on a virtual clock: the emulator's TTFT is exactly the
    engine's prefill step time (vllm profile, the emulator's default), whatever the load."""
    dep = get_engine("vllm").deployment(Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm")))
    eng = ReplicaEngine(dep, SchedulerConfig())
    eng.add(RequestSpec(id="p", arrival_s=0.0, input_tokens=2048, output_tokens=8), 0.0)
    predicted_ttft_s = eng.step(0.0).duration_s
    vc = VirtualClock()
    with emulator_server(EmulatorConfig(speedup=1.0), clock=vc, sleep=vc.sleep) as emu:
        r = CliRunner().invoke(app, ["bench", "--base-url", f"http://127.0.0.1:{emu.port}", "--model", "x",
                                     "--num-prompts", "6", "--max-concurrency", "1",
                                     "--random-input-len", "2048", "--random-output-len", "8",
                                     "--scrape-interval", "0.2", "--out", str(tmp_path), "--json"])
        vals = parse_metrics(urllib.request.urlopen(f"http://127.0.0.1:{emu.port}/metrics").read().decode())
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["completed"] == 6 and s["total_output_tokens"] == 48 and s["total_input_tokens"] == 6 * 2048
    assert vals["vllm:time_to_first_token_seconds_count"] == 6
    assert vals["vllm:time_to_first_token_seconds_sum"] == pytest.approx(6 * predicted_ttft_s, rel=1e-9)
    ts = json.loads((tmp_path / "timeseries.json").read_text())
    assert any("vllm:num_requests_running" in x["values"] for x in ts["samples"])
    assert s["server_metrics"]["max"]["running"] <= 1


def _reference_token_times(specs: list[RequestSpec]) -> dict[str, tuple[float, float]]:
    """A naive model-time loop over the same engine: (first, last) token time per request."""
    dep = get_engine("vllm").deployment(Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm")))
    eng = ReplicaEngine(dep, SchedulerConfig())
    for sp in specs:
        eng.add(sp, 0.0)
    t, first, last = 0.0, {}, {}
    while eng.has_work:
        out = eng.step(t)
        t += out.duration_s
        for rid, n in out.tokens:
            if n > 0:
                first.setdefault(rid, t)
                last[rid] = t
    return {rid: (first[rid], last[rid]) for rid in first}


@pytest.mark.parametrize("speedup", [1.0, 4.0, 100.0])
def test_speedup_is_a_pure_time_scale(speedup: float) -> None:
    """On a virtual clock, every token's time at speed-up K is the model's time / K."""
    import asyncio

    from servelab.emulator import Emulator
    from servelab.emulator.server import _Req

    specs = [RequestSpec(id=f"r{i}", arrival_s=0.0, input_tokens=300 + 97 * i, output_tokens=5 + 7 * i)
             for i in range(12)]
    ref = _reference_token_times(specs)

    async def run() -> dict[str, tuple[float, float]]:
        vc = VirtualClock()
        emu = Emulator(EmulatorConfig(speedup=speedup), clock=vc, sleep=vc.sleep)
        t0 = emu._t0
        reqs = {}
        for sp in specs:                      # what the HTTP handler does, all at t0
            r = _Req(sp.id, sp.output_tokens)
            r.t_arrive = vc()
            emu.reqs[sp.id] = reqs[sp.id] = r
            assert emu.engine.add(sp, 0.0)
        emu._wake.set()
        driver = asyncio.create_task(emu._drive())
        while emu.reqs:
            await asyncio.sleep(0)
        driver.cancel()
        return {rid: (r.t_first - t0, r.t_last - t0) for rid, r in reqs.items()}

    got = asyncio.run(run())
    assert set(got) == set(ref)
    for rid, (first, last) in ref.items():
        assert got[rid][0] == pytest.approx(first / speedup, rel=1e-9), rid
        assert got[rid][1] == pytest.approx(last / speedup, rel=1e-9), rid


def test_emulate_command_serves_on_loopback(tmp_path) -> None:
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", "from servelab.cli import main; main()", "emulate",
                             "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--port", str(port),
                             "--speedup", "100"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read())
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError(proc.stderr.read().decode() if proc.poll() is not None else "no answer")
        assert body == {"status": "ok"}
        code, out = _post(f"http://127.0.0.1:{port}/v1/completions",
                          json.dumps({"prompt": "a " * 1000, "max_tokens": 200}).encode())
    finally:
        proc.terminate()
        proc.wait(10)
    # (that --speedup scales every token time exactly: test_speedup_is_a_pure_time_scale)
    assert code == 200 and out["usage"]["completion_tokens"] == 200
    assert out["usage"]["prompt_tokens"] == 1000


def test_engine_profile_times_the_replica() -> None:
    # vllm (the default) adds its fitted 2.19 ms to every engine step; trtllm does not
    from servelab.emulator import Emulator

    steps = {}
    for name in ("vllm", "trtllm"):
        emu = Emulator(EmulatorConfig(engine=name))
        emu.engine.add(RequestSpec(id="p", arrival_s=0.0, input_tokens=512, output_tokens=4), 0.0)
        steps[name] = emu.engine.step(0.0).duration_s
    assert steps["vllm"] - steps["trtllm"] == pytest.approx(2.19e-3, abs=1e-12)
    assert Emulator(EmulatorConfig()).engine.model.dep.efficiency == get_engine("vllm").efficiency
    with pytest.raises(ConfigError, match="unknown engine 'sglang'"):
        Emulator(EmulatorConfig(engine="sglang"))
    r = CliRunner().invoke(app, ["emulate", "--engine", "sglang"])
    assert r.exit_code == 2 and "unknown engine" in r.output


def test_request_overhead_delays_the_first_token(monkeypatch) -> None:
    # a profile with a 0.3 s per-request cost: a lone request's TTFT is at least
    # 0.3 s + its prefill step (speedup 1)
    vllm = get_engine("vllm")
    eff = dataclasses.replace(vllm.efficiency, request_overhead_s=0.3)
    monkeypatch.setitem(ENGINE_PROFILES, "slow", dataclasses.replace(
        vllm, name="slow", efficiency=eff, per_request_overhead_s=0.3))
    dep = get_engine("slow").deployment(Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm")))
    eng = ReplicaEngine(dep, SchedulerConfig())
    eng.add(RequestSpec(id="p", arrival_s=0.0, input_tokens=64, output_tokens=1), 0.0)
    prefill_s = eng.step(0.0).duration_s
    vc = VirtualClock()
    with emulator_server(EmulatorConfig(speedup=1.0, engine="slow"), clock=vc, sleep=vc.sleep) as emu:
        base = f"http://127.0.0.1:{emu.port}"
        code, body = _post(base + "/v1/completions", json.dumps({"prompt": "a " * 64, "max_tokens": 1}).encode())
        vals = parse_metrics(urllib.request.urlopen(base + "/metrics").read().decode())
    assert code == 200
    # on the virtual clock: exactly the 0.3 s overhead, then the prefill step
    assert vals["vllm:time_to_first_token_seconds_sum"] == pytest.approx(0.3 + prefill_s, rel=1e-9)
