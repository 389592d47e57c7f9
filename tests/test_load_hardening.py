"""Nothing lost, nothing false: the load client and `servelab bench` under faults."""

from __future__ import annotations

import asyncio
import errno
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
from servelab.errors import ConfigError, ServerError
from servelab.load import runner as runner_mod
from servelab.load.arrivals import arrival_times
from servelab.load.bench import BenchSpec, failure_summary, run_bench
from servelab.load.client import EndpointConfig
from servelab.load.datasets import synthetic_prompts
from servelab.load.fakeserver import FakeServerConfig
from servelab.load.preflight import preflight
from servelab.load.runner import run_load
from servelab.load.urls import parse_base_url, parse_metrics_url
from servelab.records import RequestRecord

from load_fixtures import fake_server


def _prompts(n=4, rate=500.0, out=6, inp=5):
    return synthetic_prompts(arrival_times(kind="constant", rate_rps=rate, num_requests=n),
                             input_len=inp, output_len=out)


def _bench(args, **kw):
    return CliRunner().invoke(app, ["bench", *args], **kw)


def _flat(text: str) -> str:
    """Terminal output with rich's line wrapping undone."""
    return " ".join(text.split())


# -------------------------------------------------------------- one record per request
@pytest.mark.parametrize("client", ["raw", "aiohttp"])
def test_wrong_typed_usage_keeps_every_record(client: str) -> None:
    """usage.completion_tokens as a string: the record stays, counted from chunks."""
    with fake_server(FakeServerConfig(ttft_s=0.002, itl_s=0.001, mode="bad_usage")) as srv:
        res = asyncio.run(run_load(_prompts(5), EndpointConfig(base_url=srv.url, model="m", http_client=client)))
    assert len(res.records) == 5
    for r in res.records:
        assert r.status == "ok" and r.output_tokens == 6          # 6 content chunks were sent
        assert r.extra["token_count_source"] == "chunks"
        assert r.extra["input_count_source"] == "requested" and r.input_tokens == 5
        assert any("completion_tokens='6'" in x for x in r.extra["usage_invalid"])


def test_unexpected_exception_in_a_request_is_a_failed_record(monkeypatch) -> None:
    """Whatever a request's task raises becomes that request's failure reason."""
    real = runner_mod.send_request
    calls = {"n": 0}

    async def flaky(session, ep, p, **kw):
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            raise KeyError("boom-from-the-client")
        return await real(session, ep, p, **kw)

    monkeypatch.setattr(runner_mod, "send_request", flaky)
    with fake_server(FakeServerConfig(ttft_s=0.002, itl_s=0.001)) as srv:
        res = asyncio.run(run_load(_prompts(6), EndpointConfig(base_url=srv.url, model="m")))
    assert sorted(r.id for r in res.records) == sorted(p.id for p in _prompts(6))
    bad = [r for r in res.records if r.status == "failed"]
    assert len(bad) == 3 and all(r.reason == "client error: KeyError: 'boom-from-the-client'" for r in bad)
    assert all(r.finish_s is not None for r in bad)


def test_a_failing_sink_loses_no_record_and_marks_the_run_incomplete(tmp_path: Path, monkeypatch) -> None:
    """A full disk: every record is still returned and counted; the folder says incomplete."""
    from servelab.load import bench as bench_mod

    def no_space(self, rec):
        raise OSError(errno.ENOSPC, "No space left on device")

    def no_space_final(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bench_mod.RecordSink, "write", no_space)
    monkeypatch.setattr(bench_mod, "write_run_files", no_space_final)
    with fake_server(FakeServerConfig(ttft_s=0.002, itl_s=0.001)) as srv:
        spec = BenchSpec(endpoint=EndpointConfig(base_url=srv.url, model="m"), num_prompts=20,
                         random_input_len=4, random_output_len=3, scrape_interval_s=0)
        out = run_bench(spec, out_dir=tmp_path / "run")
    assert len(out.records) == 20 and out.summary["offered"] == 20 and out.summary["completed"] == 20
    assert out.write_error and "No space left" in out.write_error
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["complete"] is False and "not fully written" in meta["notes"]
    assert not [f for f in (tmp_path / "run").iterdir() if f.name.endswith(".tmp")]


def test_timeout_nan_and_bad_numbers_are_refused() -> None:
    with pytest.raises(ConfigError, match="request_timeout_s"):
        EndpointConfig(base_url="http://127.0.0.1:1", request_timeout_s=float("nan"))
    for args, fragment in ((["--timeout", "nan"], "--timeout"), (["--max-concurrency", "0"], "--max-concurrency"),
                           (["--max-concurrency", "-5"], "--max-concurrency"), (["--num-prompts", "0"], "--num-prompts"),
                           (["--burstiness", "inf"], "--burstiness"), (["--request-rate", "nan"], "request rate"),
                           (["--random-range-ratio", "1.5"], "--random-range-ratio"),
                           (["--workers", "0"], "--workers"), (["--max-failure-rate", "2"], "--max-failure-rate"),
                           (["--num-prompts", "999999999999"], "this machine can hold"),
                           (["--request-rate", "1e12", "--duration", "60"], "this machine can hold")):
        r = _bench(["--base-url", "http://127.0.0.1:9", "--model", "m", *args])
        assert r.exit_code == 2, (args, r.output)
        assert fragment in _flat(r.output) and "Traceback" not in r.output


# ------------------------------------------------------------------ URLs
@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
    ("HTTP://host:8000/v1", "http://host:8000"),
    ("https://host/v1/", "https://host"),
    ("http://host:8000/proxy", "http://host:8000/proxy"),
    ("http://u:pw@host:1", "http://u:pw@host:1"),
])
def test_base_url_accepted(url: str, expected: str) -> None:
    assert parse_base_url(url).url == expected


@pytest.mark.parametrize("url, fragment", [
    ("not a url", "whitespace"), ("", "empty"), ("127.0.0.1:8000", "scheme"), ("ftp://h", "scheme"),
    ("http://", "no host"), ("http://:80", "no host"), ("http://h:0", "port 0"), ("http://h:99999", "invalid port"),
    ("http://h:abc", "invalid port"), ("http://h/?api_key=s3cret", "query string"), ("http://h#x", "fragment"),
])
def test_base_url_refused_naming_it(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as ei:
        parse_base_url(url)
    assert "s3cret" not in str(ei.value)


def test_v1_suffix_is_explained_and_metrics_url_keeps_its_query() -> None:
    p = parse_base_url("http://h:1/v1", endpoint="/v1/chat/completions")
    assert p.url == "http://h:1" and "ends in /v1" in p.note and "http://h:1/v1/chat/completions" in p.note
    assert parse_base_url("http://h:1/v1", endpoint="/completions").url == "http://h:1/v1"
    assert parse_metrics_url("http://h:1/metrics?token=x").url == "http://h:1/metrics?token=x"


# ------------------------------------------------------------------ fail fast
def test_preflight_retries_until_its_timeout_on_an_injected_clock() -> None:
    now = [0.0]
    slept = []

    def get(url, headers, timeout):
        assert url == "http://h:1/v1/models"
        raise OSError("Connection refused")

    def sleep(s):
        slept.append(s)
        now[0] += s

    with pytest.raises(ServerError, match=r"no server answered at http://h:1/v1/models within 2 s \(4 attempts"):
        preflight("http://h:1", {}, timeout_s=2.0, retry_s=0.5, get=get, clock=lambda: now[0], sleep=sleep)
    assert slept == [0.5, 0.5, 0.5]             # attempts at t = 0, 0.5, 1.0, 1.5; a 5th would start past 2 s

    answers = iter([OSError("refused"), (404, b"no route")])

    def get2(url, headers, timeout):
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    r = preflight("http://h:1", {}, timeout_s=5, retry_s=1.0, get=get2, clock=lambda: now[0], sleep=sleep)
    assert r.status == 404 and r.models == () and r.attempts == 2

    def deny(url, headers, timeout):
        return 401, b'{"error": {"message": "Incorrect API key provided: sk-abcdefghijklmnopqrstuv"}}'

    with pytest.raises(ServerError, match="refused the credentials") as ei:
        preflight("http://h:1", {}, timeout_s=5, get=deny, clock=lambda: now[0], sleep=sleep)
    assert "sk-abcdefghijklmnopqrstuv" not in str(ei.value)


def test_bench_without_a_server_fails_fast_with_the_reason(tmp_path: Path) -> None:
    r = _bench(["--base-url", "http://127.0.0.1:9", "--model", "m", "--ready-timeout", "0.3",
                "--num-prompts", "5", "--out", str(tmp_path / "run")])
    assert r.exit_code == 1 and "no server answered at http://127.0.0.1:9/v1/models" in _flat(r.output)
    assert not (tmp_path / "run").exists()                # nothing offered, nothing written


def test_bench_exits_1_when_failures_exceed_the_threshold(tmp_path: Path) -> None:
    """Every request fails (500): exit 1, reasons grouped in the JSON and the table."""
    with fake_server(FakeServerConfig(mode="http500")) as srv:
        r = _bench(["--base-url", srv.url, "--model", "m", "--num-prompts", "7", "--random-input-len", "3",
                    "--random-output-len", "2", "--scrape-interval", "0", "--json", "--out", str(tmp_path / "a")])
        assert r.exit_code == 1, r.output
        s = json.loads(r.stdout)
        assert s["failures"] == {"count": 7, "share": 1.0, "by_reason": [
            {"status": "failed", "reason": "HTTP 500: scripted 500", "count": 7}]}
        assert "7 of 7 requests not ok (100.0% > --max-failure-rate 0)" in _flat(r.stderr)
        assert json.loads((tmp_path / "a" / "summary.json").read_text())["failures"]["count"] == 7
        r = _bench(["--base-url", srv.url, "--model", "m", "--num-prompts", "7", "--random-input-len", "3",
                    "--random-output-len", "2", "--scrape-interval", "0", "--max-failure-rate", "1"])
        assert r.exit_code == 0 and "not ok by reason" in r.stdout and "HTTP 500: scripted 500" in r.stdout
    with fake_server(FakeServerConfig(ttft_s=0.001, itl_s=0.001)) as srv:
        r = _bench(["--base-url", srv.url, "--num-prompts", "3", "--random-input-len", "3",
                    "--random-output-len", "2", "--scrape-interval", "0", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["failures"]["count"] == 0
    assert json.loads(r.stdout)["completed"] == 3             # model "fake" found by the readiness check


def test_failures_grouped_by_reason_against_a_hand_count() -> None:
    def rec(i, status, reason=""):
        return RequestRecord(id=str(i), arrival_s=0.0, input_tokens=1, status=status, reason=reason)

    recs = [rec(0, "ok"), rec(1, "failed", "stream cut after 3 chunks: x"), rec(2, "failed", "stream cut after 9 chunks: x"),
            rec(3, "rejected", "HTTP 429: slow down"), rec(4, "cancelled", "run stopped"), rec(5, "timed_out", "t")]
    f = failure_summary(recs)
    assert f["count"] == 4 and f["share"] == 4 / 6
    assert f["by_reason"] == [{"status": "failed", "reason": "stream cut after N chunks: x", "count": 2},
                              {"status": "rejected", "reason": "HTTP 429: slow down", "count": 1},
                              {"status": "timed_out", "reason": "t", "count": 1}]


# ------------------------------------------------------------------ output paths
def test_output_paths_that_are_not_regular_files_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("keep me")
    r = _bench(["--base-url", "http://127.0.0.1:9", "--model", "m", "--out", str(f)])
    assert r.exit_code == 2 and "exists and is a file; give a folder path" in _flat(r.output)
    assert f.read_text() == "keep me"
    from servelab._files import atomic_write_text, check_output_path
    target = tmp_path / "target.html"
    target.write_text("original")
    link = tmp_path / "link.html"
    link.symlink_to(target)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for p, what in ((link, "a symbolic link"), (fifo, "a FIFO"), (tmp_path, "a folder")):
        with pytest.raises(ConfigError, match=what):
            atomic_write_text(p, "new")
    assert target.read_text() == "original" and link.is_symlink()
    with pytest.raises(ConfigError, match="is not a folder|Not a directory"):
        check_output_path(f / "sub" / "x.json")
    assert atomic_write_text(tmp_path / "new" / "x.txt", "ok").read_text() == "ok"
    assert not list(tmp_path.glob("**/*.tmp"))


# ------------------------------------------------------------------ signals
def _start_fake_server_process(tmp_path: Path, **cfg) -> tuple[subprocess.Popen, str]:
    port_file = tmp_path / "port"
    args = ", ".join(f"{k}={v!r}" for k, v in cfg.items())
    proc = subprocess.Popen(
        [sys.executable, "-c",
         "from servelab.load.fakeserver import serve, FakeServerConfig\n"
         f"serve(FakeServerConfig({args}), ready=lambda p: open({str(port_file)!r}, 'w').write(str(p)))"])
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            break
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text()}"


def test_sigterm_writes_the_summary_and_records_in_flight_requests(tmp_path: Path) -> None:
    """SIGTERM behaves like Ctrl-C: dispatch stops, requests in flight become
    'cancelled' records, the summary and meta (complete: false) are written."""
    srv, url = _start_fake_server_process(tmp_path, ttft_s=0.01, itl_s=0.2)
    try:
        out = tmp_path / "run"
        cli = subprocess.Popen(
            [sys.executable, "-c", "from servelab.cli import main; main()", "bench", "--base-url", url, "--model", "m",
             "--request-rate", "20", "--num-prompts", "400", "--random-input-len", "4",
             "--random-output-len", "30", "--drain-timeout", "0.2", "--scrape-interval", "0",
             "--out", str(out), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        recs_file = out / "records.jsonl"
        for _ in range(600):                     # wait until some requests have finished
            if recs_file.exists() and len(recs_file.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        cli.send_signal(signal.SIGTERM)
        stdout, stderr = cli.communicate(timeout=60)
    finally:
        srv.terminate()
        srv.wait(10)
    assert cli.returncode == 0, stderr.decode()[-2000:]
    summary = json.loads(stdout)
    recs = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert summary["interrupted"] is True
    assert summary["offered"] == len(recs) == 400 - summary["not_offered"]
    statuses = {r["status"] for r in recs}
    assert "cancelled" in statuses and statuses <= {"ok", "cancelled"}   # 30 tokens × 0.2 s: many in flight
    assert json.loads((out / "summary.json").read_text())["offered"] == len(recs)
    assert json.loads((out / "meta.json").read_text())["complete"] is False


def test_sigkill_then_recover_accounts_for_every_request_sent(tmp_path: Path) -> None:
    """SIGKILL cannot be handled: finished records are on disk, meta says incomplete, and
    `bench recover` turns the dispatch journal's in-flight requests into 'cancelled'
    records — as many records as requests the server received."""
    from servelab.load.fakeserver import FakeServer
    import threading

    loop = asyncio.new_event_loop()
    holder = {}
    ready = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        holder["s"] = loop.run_until_complete(FakeServer(FakeServerConfig(ttft_s=0.01, itl_s=0.2)).start())
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(10)
    srv = holder["s"]
    out = tmp_path / "run"
    try:
        cli = subprocess.Popen(
            [sys.executable, "-c", "from servelab.cli import main; main()", "bench", "--base-url", srv.url,
             "--model", "m", "--request-rate", "20", "--num-prompts", "400", "--random-input-len", "4",
             "--random-output-len", "30", "--scrape-interval", "0", "--out", str(out), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(600):
            p = out / "records.jsonl"
            if p.exists() and len(p.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        cli.send_signal(signal.SIGKILL)
        cli.communicate(timeout=30)
        received = srv.stats.requests
    finally:
        asyncio.run_coroutine_threadsafe(srv.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
    assert cli.returncode == -signal.SIGKILL
    assert json.loads((out / "meta.json").read_text())["complete"] is False
    finished = len((out / "records.jsonl").read_text().splitlines())
    assert finished < received                                    # requests were in flight
    r = CliRunner().invoke(app, ["bench", "recover", str(out)])
    assert r.exit_code == 0, r.output
    recs = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert len(recs) == received == len({x["id"] for x in recs})
    assert sum(x["status"] == "cancelled" for x in recs) == received - finished
    summary = json.loads((out / "summary.json").read_text())
    assert summary["offered"] == received and summary["cancelled"] == received - finished
    meta = json.loads((out / "meta.json").read_text())
    assert meta["complete"] is False and "recovered" in meta["notes"]
    assert not (out / "dispatched.jsonl").exists()


def test_recover_skips_a_journal_line_cut_by_the_kill(tmp_path: Path) -> None:
    from servelab.load.results import recover_run
    from servelab.records import RunMeta

    (tmp_path / "meta.json").write_text(json.dumps(RunMeta(run_id="x", kind="bench", started_at="t").to_dict()))
    done = RequestRecord(id="a", arrival_s=0.0, input_tokens=3, dispatch_s=0.0, first_token_s=0.1,
                         finish_s=0.2, output_tokens=1, token_times_s=[0.1])
    (tmp_path / "records.jsonl").write_text(json.dumps(done.to_dict()) + "\n")
    j = {"arrival_s": 0.0, "dispatch_s": 0.01, "input_tokens": 3, "output_tokens": 5, "priority": 0, "adapter": None}
    (tmp_path / "dispatched.jsonl").write_text(
        json.dumps({"id": "a", **j}) + "\n" + json.dumps({"id": "b", **j}) + "\n" + '{"id": "c", "arr')
    assert recover_run(tmp_path) == 1
    recs = [json.loads(x) for x in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert [(x["id"], x["status"]) for x in recs] == [("a", "ok"), ("b", "cancelled")]


def test_orphan_records_cover_sent_requests_without_a_record() -> None:
    from servelab.load.bench import orphan_records

    ps = _prompts(3)
    dispatched = {p.id: (p, 0.1 * i) for i, p in enumerate(ps)}
    have = [RequestRecord(id=ps[1].id, arrival_s=0.0, input_tokens=5)]
    out = orphan_records(dispatched, have)
    assert [(r.id, r.status, r.dispatch_s) for r in out] == [(ps[0].id, "cancelled", 0.0), (ps[2].id, "cancelled", 0.2)]
    assert orphan_records(dispatched, have + out) == []
