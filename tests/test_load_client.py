"""The load client against a scripted, misbehaving local server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from servelab.cli import app
from servelab.load.arrivals import arrival_times
from servelab.load.client import EndpointConfig
from servelab.load.datasets import synthetic_prompts
from servelab.load.fakeserver import FakeServerConfig
from servelab.load.runner import RunOptions, run_load

from load_fixtures import fake_server

# mode → (status, reason fragment, token_count_source)
CASES = {
    "ok": ("ok", "", "usage"),
    "no_usage": ("ok", "", "chunks"),
    "split": ("ok", "", "usage"),
    "long_line": ("ok", "", "usage"),
    "http500": ("failed", "HTTP 500: scripted 500", "chunks"),
    "http400": ("failed", "HTTP 400", "chunks"),
    "http429": ("rejected", "HTTP 429", "chunks"),
    "http503": ("rejected", "HTTP 503", "chunks"),
    "broken_sse": ("failed", "malformed SSE", "chunks"),
    "cut": ("failed", "stream cut after 3 chunks", "chunks"),
    "error_event": ("failed", "engine died", "chunks"),
    "bad_usage": ("ok", "", "chunks"),                       # wrong-typed counts: fall back, keep the record
    "truncated_chunk": ("failed", "stream cut after 3 chunks", "chunks"),
    "invalid_json": ("failed", "the answer is not an event stream (Content-Type: application/json)", "chunks"),
}


def _run(prompts, ep, opts=RunOptions()):
    return asyncio.run(run_load(prompts, ep, opts))


def _prompts(n=4, rate=200.0, out=8, inp=12):
    return synthetic_prompts(arrival_times(kind="constant", rate_rps=rate, num_requests=n),
                             input_len=inp, output_len=out)


@pytest.mark.parametrize("client", ["raw", "aiohttp"])
@pytest.mark.parametrize("mode", sorted(CASES))
def test_every_fault_becomes_a_record(mode: str, client: str) -> None:
    status, reason, src = CASES[mode]
    with fake_server(FakeServerConfig(ttft_s=0.005, itl_s=0.001, mode=mode)) as srv:
        res = _run(_prompts(), EndpointConfig(base_url=srv.url, model="m", http_client=client))
    assert len(res.records) == 4
    for r in res.records:
        assert r.status == status, (mode, r.reason)
        assert reason in r.reason
        assert r.extra.get("token_count_source") == src
        assert r.dispatch_s is not None and r.finish_s is not None and r.finish_s >= r.dispatch_s
        if status == "ok":
            assert r.output_tokens == 8 and len(r.token_times_s) == 8
            assert r.token_times_s == sorted(r.token_times_s)
            assert r.input_tokens == 12                      # server usage = 12 words
            # the server sends the first token 5 ms after reading the request
            assert r.first_token_s - r.dispatch_s >= 0.005


@pytest.mark.parametrize("client", ["raw", "aiohttp"])
def test_refused_and_timeout_and_chat(client: str) -> None:
    res = _run(_prompts(2), EndpointConfig(base_url="http://127.0.0.1:9", model="m", http_client=client))
    assert [r.status for r in res.records] == ["failed", "failed"]
    assert "connection failed" in res.records[0].reason
    with fake_server(FakeServerConfig(mode="stall")) as srv:
        res = _run(_prompts(2), EndpointConfig(base_url=srv.url, model="m", request_timeout_s=0.3,
                                               http_client=client))
    assert [r.status for r in res.records] == ["timed_out", "timed_out"]
    with fake_server(FakeServerConfig(ttft_s=0.002, itl_s=0.001)) as srv:
        res = _run(_prompts(2), EndpointConfig(base_url=srv.url, endpoint="/v1/chat/completions", model="m",
                                               ignore_eos=True, min_tokens=8, extra_body={"top_k": 1},
                                               http_client=client))
        body = srv.stats.seen_bodies[0]
    assert all(r.status == "ok" and r.output_tokens == 8 for r in res.records)
    assert body["messages"][0]["role"] == "user" and body["ignore_eos"] is True
    assert body["min_tokens"] == 8 and body["top_k"] == 1 and body["stream_options"] == {"include_usage": True}


def test_concurrency_cap_and_lateness_recorded() -> None:
    with fake_server(FakeServerConfig(ttft_s=0.02, itl_s=0.0)) as srv:
        seen = []

        async def main():
            task = asyncio.create_task(run_load(_prompts(12, rate=1000.0, out=1),
                                                EndpointConfig(base_url=srv.url, model="m"),
                                                RunOptions(max_concurrency=3)))
            while not task.done():
                seen.append(srv.stats.running)
                await asyncio.sleep(0.002)
            return await task

        res = asyncio.run(main())
    assert max(seen) <= 3
    lateness = [r.dispatch_s - r.arrival_s for r in res.records]
    assert all(x >= -1e-4 for x in lateness)
    # 12 requests offered 1 ms apart, 3 at a time, 20 ms each: the last waits ≥ 3 rounds
    assert max(lateness) > 0.05


def test_api_key_sent_but_never_stored(tmp_path: Path) -> None:
    key = "sk-servelab-secret-0123456789"
    with fake_server(FakeServerConfig(ttft_s=0.002, itl_s=0.001, required_api_key=key)) as srv:
        out = tmp_path / "run"
        r = CliRunner().invoke(app, ["bench", "--base-url", srv.url, "--model", "m", "--num-prompts", "3",
                                     "--random-input-len", "5", "--random-output-len", "4",
                                     "--header", "X-Tenant: blue", "--scrape-interval", "0.1",
                                     "--out", str(out), "--json"], env={"OPENAI_API_KEY": key})
        assert srv.stats.seen_headers[0]["authorization"] == f"Bearer {key}"
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["completed"] == 3 and s["total_output_tokens"] == 12 and s["total_input_tokens"] == 15
    assert key not in r.output
    for f in out.iterdir():
        data = f.read_bytes()                         # records.parquet is binary
        assert key.encode() not in data, f.name
        assert b"blue" not in data, f.name            # header values are not stored either
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"]["endpoint"]["api_key"] == "***"          # a key was sent, not which


def test_cli_sweep_json_and_timeseries(tmp_path: Path) -> None:
    with fake_server(FakeServerConfig(ttft_s=0.002, itl_s=0.001)) as srv:
        r = CliRunner().invoke(app, ["bench", "--base-url", srv.url, "--model", "m", "--num-prompts", "6",
                                     "--random-input-len", "8", "--random-output-len", "5",
                                     "--request-rate", "50,inf", "--max-concurrency", "2",
                                     "--scrape-interval", "0.05", "--goodput", "ttft:1000",
                                     "--out", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    sweep = json.loads(r.stdout)["sweep"]
    assert [s["request_rate"] for s in sweep] == [50.0, "inf"]
    for s in sweep:
        assert s["offered"] == 6 and s["completed"] == 6 and s["delivery"] == 1.0
        assert s["total_output_tokens"] == 30
        assert s["dispatch_lateness_s"]["count"] == 6
        assert s["token_count_source"] == {"usage": 6}
        assert s["goodput_rps"] is not None
    for sub, total in (("rate_50", 30.0), ("rate_inf", 60.0)):     # server counters accumulate
        ts = json.loads((tmp_path / sub / "timeseries.json").read_text())
        assert ts["samples"][-1]["values"]["llamacpp:tokens_predicted_total"] == total
    lines = (tmp_path / "rate_inf" / "records.jsonl").read_text().splitlines()
    assert len(lines) == 6


def test_sigint_keeps_finished_records(tmp_path: Path) -> None:
    """Ctrl-C: dispatch stops, in-flight requests are cancelled after the drain time,
    every finished record is on disk and the summary is written."""
    port_file = tmp_path / "port"
    srv_proc = subprocess.Popen(
        [sys.executable, "-c",
         "from servelab.load.fakeserver import serve, FakeServerConfig\n"
         f"serve(FakeServerConfig(ttft_s=0.01, itl_s=0.05), ready=lambda p: open({str(port_file)!r}, 'w').write(str(p)))"])
    try:
        for _ in range(100):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        out = tmp_path / "run"
        # 10 req/s for 400 requests: each lasts ~0.06 s (1 token) .. 2 s (40 tokens)
        cli = subprocess.Popen(
            [sys.executable, "-c", "from servelab.cli import main; main()", "bench", "--base-url", url, "--model", "m",
             "--request-rate", "10", "--num-prompts", "400", "--random-input-len", "4",
             "--random-output-len", "20", "--random-range-ratio", "0.9", "--drain-timeout", "0.5",
             "--scrape-interval", "0", "--out", str(out), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        # Interrupt once a first record is on disk (an event, not a wall-clock delay:
        # the CLI's start-up time varies with the machine's load).
        records = out / "records.jsonl"
        for _ in range(1200):
            if records.exists() and records.read_text().strip():
                break
            assert cli.poll() is None, cli.communicate()[1].decode()[-2000:]
            time.sleep(0.05)
        cli.send_signal(signal.SIGINT)
        stdout, stderr = cli.communicate(timeout=30)
    finally:
        srv_proc.terminate()
        srv_proc.wait(10)
    assert cli.returncode == 0, stderr.decode()[-2000:]
    summary = json.loads(stdout)
    recs = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    statuses = {r["status"] for r in recs}
    assert summary["interrupted"] is True and summary["not_offered"] > 0
    assert summary["offered"] == len(recs) == 400 - summary["not_offered"]
    assert "ok" in statuses and statuses <= {"ok", "cancelled"}
    assert summary["completed"] == sum(r["status"] == "ok" for r in recs)
    assert json.loads((out / "meta.json").read_text())["complete"] is False


def test_workers_share_one_time_axis(tmp_path: Path) -> None:
    from servelab.load.bench import BenchSpec, run_bench

    with fake_server(FakeServerConfig(ttft_s=0.005, itl_s=0.001)) as srv:
        spec = BenchSpec(endpoint=EndpointConfig(base_url=srv.url, model="m"), request_rate=100.0,
                         arrival="constant", num_prompts=40, random_input_len=4, random_output_len=4,
                         scrape_interval_s=0.2, workers=2)
        out = run_bench(spec, out_dir=tmp_path)
    recs = out.records
    assert len(recs) == 40 and all(r.status == "ok" for r in recs)
    # the constant schedule survives the split: arrivals 0, 10 ms, 20 ms, ... across both workers
    assert sorted(round(r.arrival_s, 6) for r in recs) == [round(i * 0.01, 6) for i in range(40)]
    assert all(r.dispatch_s >= r.arrival_s - 1e-4 for r in recs)
    assert out.summary["completed"] == 40 and out.timeseries["samples"]
    assert len((tmp_path / "records.jsonl").read_text().splitlines()) == 40
