"""Ledger: round-trips, concurrent writers, a crash mid-run, secrets never stored."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import time

import pytest

from servelab.errors import LedgerError
from servelab.evidence import Ledger, scrub
from servelab.evidence._provenance import catalog_hash
from servelab.records import RequestRecord

CTX = mp.get_context("fork")


def _records(n: int) -> list[RequestRecord]:
    return [RequestRecord(id=f"r{i}", arrival_s=i * 0.01, input_tokens=10 + i, output_tokens=5,
                          first_token_s=i * 0.01 + 0.1, finish_s=i * 0.01 + 0.3,
                          token_times_s=[i * 0.01 + 0.1 + k * 0.05 for k in range(5)],
                          status="ok" if i % 7 else "rejected", reason="" if i % 7 else "503")
            for i in range(n)]


def test_run_round_trip_inline(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as led:
        rid = led.start_run(kind="simulate", config={"rate": 3}, fingerprint="fp1", scenario="s")
        assert led.run(rid)["status"] == "running"
        recs = _records(50)
        led.store_records(rid, recs)
        led.finish_run(rid, duration_s=12.5, n_records=50)
        run = led.run(rid)
        assert run["status"] == "complete" and run["config"] == {"rate": 3}
        assert run["catalog_hash"] == catalog_hash() and len(run["catalog_hash"]) == 64
        assert run["host"] and run["pid"] == os.getpid() and run["finished_at"]
        assert run["versions"]["python"].startswith("3.")
        assert led.load_records(rid) == recs
        assert led.find_complete_run("fp1")["id"] == rid
        assert led.find_complete_run("other") is None
        with pytest.raises(LedgerError, match="unknown run 'nope'"):
            led.run("nope")


def test_records_round_trip_parquet_with_hash_check(tmp_path):
    import servelab.recordio  # noqa: F401 - Parquet record files
    from servelab.evidence.ledger import INLINE_MAX_RECORDS

    with Ledger(tmp_path / "l.sqlite") as led:
        rid = led.start_run(kind="bench", config={})
        recs = _records(INLINE_MAX_RECORDS + 5)
        led.store_records(rid, recs)
        led.finish_run(rid, n_records=len(recs))
        path = tmp_path / "runs" / f"{rid}.parquet"
        assert path.exists()
        back = led.load_records(rid)
        assert [r.to_dict() for r in back] == [r.to_dict() for r in recs]
        with open(path, "ab") as f:    # tamper with the file: the hash check refuses it
            f.write(b"x")
        with pytest.raises(LedgerError, match="does not match its sha256"):
            led.load_records(rid)


def test_claims_and_verdict_history(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as led:
        led.upsert_claim("c1", spec={"metric": "delivery"}, decision="d", text="t")
        for verdict, value in (("pending", 0.985), ("supported", 0.995)):
            led.add_verdict("c1", {"verdict": verdict, "value": value, "ci_lo": value - 0.01,
                                   "ci_hi": value + 0.004, "threshold": 0.99,
                                   "run_ids": ["r1"], "evidence_kind": "simulate",
                                   "simulation_only": True, "detail": {"n": 1}})
        hist = led.verdicts("c1")
        assert [h["verdict"] for h in hist] == ["supported", "pending"]    # newest first
        assert hist[0]["run_ids"] == ["r1"] and hist[0]["simulation_only"] is True
        assert hist[0]["judged_at"] >= hist[1]["judged_at"]
        (c,) = led.claims()
        assert c["latest"]["verdict"] == "supported" and c["spec"] == {"metric": "delivery"}
        led.add_calibration(claim_id="c1", scenario="s", metric="delivery", measured_value=0.9,
                            simulated_value=1.0, rel_diff=-0.1, measured_run="b", simulated_run="a")
        assert led.calibration()[0]["rel_diff"] == -0.1


def test_wal_mode_and_default_path_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVELAB_LEDGER", str(tmp_path / "env.sqlite"))
    with Ledger() as led:
        assert led.path == tmp_path / "env.sqlite"
        assert led._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    monkeypatch.delenv("SERVELAB_LEDGER")
    monkeypatch.chdir(tmp_path)
    with Ledger() as led:
        assert led.path == tmp_path / ".servelab" / "ledger.sqlite"


def _writer(path: str, worker: int, n: int) -> None:
    led = Ledger(path)
    for i in range(n):
        rid = led.start_run(kind="simulate", config={"worker": worker, "i": i},
                            fingerprint=f"w{worker}-{i}")
        led.store_records(rid, _records(20))
        led.finish_run(rid, n_records=20)
        led.upsert_claim(f"c{i % 3}", spec={"worker": worker})
        led.add_verdict(f"c{i % 3}", {"verdict": "pending", "run_ids": [rid]})
    led.close()


def test_concurrent_writers_several_processes(tmp_path):
    path = str(tmp_path / "l.sqlite")
    workers, per = 6, 15
    procs = [CTX.Process(target=_writer, args=(path, w, per)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with Ledger(path) as led:
        assert led.integrity_check() == "ok"
        runs = led.runs()
        assert len(runs) == workers * per
        assert {r["status"] for r in runs} == {"complete"}
        assert {(r["config"]["worker"], r["config"]["i"]) for r in runs} == {
            (w, i) for w in range(workers) for i in range(per)}
        assert sum(len(led.verdicts(f"c{k}")) for k in range(3)) == workers * per
        assert all(len(led.load_records(r["id"])) == 20 for r in runs)


def _crasher(path: str, ready) -> None:  # noqa: ANN001
    led = Ledger(path)
    rid = led.start_run(kind="simulate", config={"doomed": True})
    ready.send(rid)
    time.sleep(60)                       # "working" until killed


def test_crash_mid_run_leaves_incomplete_run_and_intact_db(tmp_path):
    path = str(tmp_path / "l.sqlite")
    with Ledger(path) as led:            # a finished run before the crash
        done = led.start_run(kind="simulate", config={})
        led.finish_run(done, n_records=0)
    parent, child = CTX.Pipe()
    p = CTX.Process(target=_crasher, args=(path, child))
    p.start()
    assert parent.poll(30)
    rid = parent.recv()
    with Ledger(path) as led:            # the child is alive: its run stays "running"
        assert led.run(rid)["status"] == "running"
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    assert p.exitcode == -signal.SIGKILL
    with Ledger(path) as led:
        assert led.integrity_check() == "ok"
        run = led.run(rid)
        assert run["status"] == "incomplete" and "process ended" in run["error"]
        assert led.run(done)["status"] == "complete"
    conn = sqlite3.connect(path)         # a plain SQLite client reads it too
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_finish_run_rejects_bad_status(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as led:
        rid = led.start_run(kind="x", config={})
        with pytest.raises(LedgerError, match="valid: complete, incomplete, failed"):
            led.finish_run(rid, status="done")


SECRET = "sk-ThisIsAVerySecretKey1234567890"


def test_scrub_rules():
    cfg = {"api_key": SECRET, "headers": {"Authorization": f"Bearer {SECRET}", "X-Trace": "1"},
           "url": "https://user:hunter2@example.com/v1?api_key=abc&model=m",
           "max_tokens": 128, "output_tokens": 5, "note": f"key {SECRET}",
           "nested": [{"password": "pw", "token": "t0k"}], "api_key_env": "OPENAI_API_KEY"}
    out = scrub(cfg)
    assert out["api_key"] == "***" and out["headers"]["Authorization"] == "***"
    assert out["headers"]["X-Trace"] == "1"
    assert out["url"] == "https://user:***@example.com/v1?api_key=***&model=m"
    assert out["max_tokens"] == 128 and out["output_tokens"] == 5
    assert out["nested"] == [{"password": "***", "token": "***"}]
    assert out["api_key_env"] == "OPENAI_API_KEY"     # the variable's name, not its value
    assert "hunter2" not in str(out)


def test_secrets_never_stored(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as led:
        rid = led.start_run(kind="bench", config={
            "endpoint": {"base_url": "http://u:hunter2@127.0.0.1:8000", "api_key": SECRET},
            "headers": {"Authorization": f"Bearer {SECRET}", "Cookie": "session=abc123"}})
        led.finish_run(rid, status="failed", error=f"401 with Authorization: Bearer {SECRET}")
        led.upsert_claim("c", spec={"x-api-key": SECRET})
        led.add_verdict("c", {"verdict": "pending", "detail": {"auth_token": SECRET}})
        text = led.dump_text()
    raw = (tmp_path / "l.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("l.sqlite-*"))
    for secret in (SECRET, "hunter2", "session=abc123"):
        assert secret not in text
        assert secret.encode() not in raw


from hypothesis import given, strategies as st  # noqa: E402

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)


@given(json_like)
def test_scrub_is_idempotent_and_keeps_shape(obj):
    once = scrub(obj)
    assert scrub(once) == once
    if isinstance(obj, dict):
        assert list(once) == list(obj)
