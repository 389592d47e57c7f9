"""No credential reaches a file: 15 ways of passing one, every output file and the ledger grepped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from servelab._scrub import scrub, scrub_text
from servelab.cli import app
from servelab.load.fakeserver import FakeServerConfig

from load_fixtures import fake_server

K = "SeCrEt0123456789abcdefXYZ"          # distinctive: found by a plain byte search
SK = "sk-" + K                           # OpenAI-shaped


def _host(url: str) -> str:
    return url.split("://", 1)[1]


# name → (bench arguments given the server URL, env, required key on the server, secret)
CASES = {
    "api-key flag": (lambda u: ["--base-url", u, "--api-key", K], {}, K),
    "OPENAI_API_KEY": (lambda u: ["--base-url", u], {"OPENAI_API_KEY": K}, K),
    "Authorization header": (lambda u: ["--base-url", u, "--header", f"Authorization: Bearer {K}"], {}, K),
    "X-Api-Key header": (lambda u: ["--base-url", u, "--header", f"X-Api-Key: {K}"], {}, None),
    "Cookie header": (lambda u: ["--base-url", u, "--header", f"Cookie: session={K}"], {}, None),
    "password in base URL": (lambda u: ["--base-url", f"http://user:{K}@{_host(u)}"], {}, None),
    "token in metrics URL": (lambda u: ["--base-url", u, "--metrics-url", f"{u}/metrics?token={K}"], {}, None),
    "password in metrics URL": (lambda u: ["--base-url", u, "--metrics-url", f"http://me:{K}@{_host(u)}/metrics"],
                                {}, None),
    "api_key in extra body": (lambda u: ["--base-url", u, "--extra-body", json.dumps({"api_key": K})], {}, None),
    "nested password in extra body": (lambda u: ["--base-url", u, "--extra-body",
                                                 json.dumps({"metadata": {"password": K}})], {}, None),
    "token in extra body": (lambda u: ["--base-url", u, "--extra-body", json.dumps({"token": K})], {}, None),
    "sk- key echoed in a 401": (lambda u: ["--base-url", u, "--api-key", SK], {}, "the-right-key"),
    "bare key echoed in a 401": (lambda u: ["--base-url", u, "--api-key", K], {}, "the-right-key"),
    "api_key in base URL query": (lambda u: ["--base-url", f"{u}/?api_key={K}"], {}, None),
}


def _files_hold(root: Path, secret: str) -> list[str]:
    return [str(f) for f in root.rglob("*") if f.is_file() and secret.encode() in f.read_bytes()]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bench_never_writes_a_credential(case: str, tmp_path: Path) -> None:
    args, env, required = CASES[case]
    out = tmp_path / "run"
    with fake_server(FakeServerConfig(ttft_s=0.001, itl_s=0.001, required_api_key=required)) as srv:
        r = CliRunner().invoke(app, ["bench", *args(srv.url), "--model", "m", "--num-prompts", "3",
                                     "--random-input-len", "3", "--random-output-len", "2",
                                     "--scrape-interval", "0.05", "--max-failure-rate", "1",
                                     "--out", str(out), "--json"], env=env)
    assert "Traceback" not in r.output
    secret = SK if case.startswith("sk-") else K
    assert secret not in r.output, case
    if case == "api_key in base URL query":
        assert r.exit_code == 2 and not out.exists()            # refused, value not echoed
        return
    assert r.exit_code == 0, r.output
    assert sorted(f.name for f in out.iterdir()) == ["meta.json", "records.jsonl", "records.parquet",
                                                     "summary.json", "timeseries.json"]
    assert _files_hold(out, secret) == [], case
    if "echoed" in case:                                         # the 401 was recorded, minus the key
        recs = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
        assert all(x["status"] == "failed" and "HTTP 401: Incorrect API key provided" in x["reason"]
                   for x in recs)


def test_decide_never_stores_a_credential_in_the_ledger(tmp_path: Path) -> None:
    """Case 15: a decision file whose bench URL carries a password, with a wrong sk- key in
    the environment that the server echoes back: nothing of either in the ledger."""
    from servelab.evidence.ledger import Ledger

    with fake_server(FakeServerConfig(ttft_s=0.001, itl_s=0.001, required_api_key="right")) as srv:
        dec = tmp_path / "d.yaml"                                # the input holds it, of course
        dec.write_text(f"""
name: secrets
scenarios:
  s:
    model: llama-3.1-8b
    gpu: h100-sxm
    workload: chat
    output_tokens: 4
    rate_rps: 20
    duration_s: 0.5
    experiments:
      - {{kind: bench, url: "http://user:{K}@{_host(srv.url)}", api_key_env: MY_KEY}}
claims:
  - id: c1
    text: t
    scenario: s
    metric: ttft_p95
    comparison: "<="
    threshold: 1.0
""")
        led = tmp_path / "store" / "ledger.sqlite"
        r = CliRunner().invoke(app, ["decide", str(dec), "--ledger", str(led)], env={"MY_KEY": SK})
    assert "Traceback" not in r.output and K not in r.output
    store = tmp_path / "store"                                   # ledger, WAL and any side files
    assert _files_hold(store, K) == [] and _files_hold(store, SK) == []
    ledger = Ledger(led)
    text = ledger.dump_text()                                    # decompressed stored rows
    runs = ledger.runs()
    ledger.close()
    assert runs and "Incorrect API key provided" in text         # the 401 reasons were stored ...
    assert K not in text and SK not in text                      # ... without the key


@pytest.mark.parametrize("text, secret", [
    ("HTTP 401: Incorrect API key provided: sk-abcdefghijklmnop1234.", "sk-abcdefghijklmnop1234"),
    ("see http://u:pw123456@h:1/x and go", "pw123456"),
    ("fetch http://h/metrics?access_token=tok987654&x=1 failed", "tok987654"),
    ('body {"password": "hunter22"} rejected', "hunter22"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("hf token hf_abcdefghijklmnopqrstuvwx leaked", "hf_abcdefghijklmnopqrstuvwx"),
])
def test_scrub_text_removes_the_secret(text: str, secret: str) -> None:
    assert secret not in scrub_text(text)


def test_scrub_keeps_what_is_not_secret() -> None:
    kept = {"max_tokens": 16, "output_tokens": 3, "tokens": "3", "reason": "stream cut after 3 chunks",
            "url": "http://127.0.0.1:8000/v1/completions", "token_count_source": "usage"}
    assert scrub(kept) == kept
