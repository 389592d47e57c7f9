"""Ledger identity rules, a ledger path that is not a ledger, ports, and the request-count bound."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from servelab._limits import BYTES_PER_REQUEST, check_port, check_request_count, max_requests
from servelab.cli import app
from servelab.errors import ConfigError, LedgerError
from servelab.evidence.ledger import Ledger


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_a_claim_id_belongs_to_one_decision(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.sqlite")
    led.upsert_claim("ttft", spec={"metric": "ttft_p95"}, decision="a", text="one")
    led.upsert_claim("ttft", spec={"metric": "ttft_p95"}, decision="a", text="one, edited")   # same decision: ok
    with pytest.raises(LedgerError, match="claim id 'ttft' already belongs to decision 'a'.*decision 'b'"):
        led.upsert_claim("ttft", spec={"metric": "tpot_p50"}, decision="b", text="two")
    assert led.claim("ttft")["text"] == "one, edited"
    led.close()


_DECISION = """
name: {name}
scenarios:
  s:
    model: llama-3.1-8b
    gpu: h100-sxm
    workload: chat
    output_tokens: 8
    rate_rps: 2
    duration_s: 2
    experiments: [{{kind: simulate}}]
claims:
  - {{id: shared-id, text: t, scenario: s, metric: ttft_p95, comparison: "<=", threshold: 5.0}}
"""


def test_decide_refuses_a_second_decision_reusing_a_claim_id_before_running(tmp_path: Path) -> None:
    led = tmp_path / "ledger.sqlite"
    for name in ("first", "second"):
        (tmp_path / f"{name}.yaml").write_text(_DECISION.format(name=name))
    r = CliRunner().invoke(app, ["decide", str(tmp_path / "first.yaml"), "--ledger", str(led)])
    assert r.exit_code == 0, r.output
    runs_before = len(Ledger(led).runs())
    r = CliRunner().invoke(app, ["decide", str(tmp_path / "second.yaml"), "--ledger", str(led)])
    assert r.exit_code == 1 and "already belongs to decision 'first'" in _flat(r.output)
    ledger = Ledger(led)
    assert len(ledger.runs()) == runs_before                       # nothing ran for the refused file
    assert [v["verdict"] for v in ledger.verdicts("shared-id")] and ledger.claim("shared-id")["decision"] == "first"
    ledger.close()


def test_a_file_that_is_not_a_ledger_is_named(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_bytes(b"this is not sqlite " * 100)
    with pytest.raises(LedgerError, match="is not a servelab ledger"):
        Ledger(junk)
    r = CliRunner().invoke(app, ["ledger", "runs", "--ledger", str(junk)])
    assert r.exit_code in (1, 2) and "is not a servelab ledger" in _flat(r.output) and "Traceback" not in r.output
    assert junk.read_bytes() == b"this is not sqlite " * 100


def test_ports_and_a_port_in_use() -> None:
    for bad in (-1, 65536, 70000, 1.5, True):
        with pytest.raises(ConfigError, match="--port"):
            check_port("--port", bad)
    check_port("--port", 0, allow_zero=True)
    r = CliRunner().invoke(app, ["emulate", "--port", "70000"])
    assert r.exit_code == 2 and "--port must be >= 0 and <= 65535, got 70000" in _flat(r.output)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        r = CliRunner().invoke(app, ["emulate", "--port", str(s.getsockname()[1])])
    finally:
        s.close()
    assert r.exit_code == 1 and "the port is in use" in _flat(r.output)


def test_request_count_bound_is_memory_over_bytes_per_request() -> None:
    import os
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert max_requests() == max(1000, min(50_000_000, mem // BYTES_PER_REQUEST))
    check_request_count(max_requests(), "x")
    with pytest.raises(ConfigError, match="asks for .* requests; this machine can hold at most"):
        check_request_count(max_requests() + 1, "x")
    with pytest.raises(ConfigError):
        check_request_count(float("inf"), "x")
    r = CliRunner().invoke(app, ["simulate", "--rate", "100000", "--duration", "100000"])
    assert r.exit_code == 2 and "rate 100000 req/s for 100000 s asks for 1e+10 requests" in _flat(r.output)
