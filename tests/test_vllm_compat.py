"""`vllm bench serve` habits: flag spellings, multi-term --goodput, --version, and
the result JSON (read back by servelab's vLLM importer; aggregates recomputed from the
per-request lists with vLLM's own formulas)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from load_fixtures import fake_server
from servelab.cli import app
from servelab.load.bench_args import expand_multi_value_flags
from servelab.load.fakeserver import FakeServerConfig
from servelab.load.importers import import_result
from servelab.metrics import summarize

# Keys of vLLM's result_json (vllm/benchmarks/serve.py: set-up, aggregates, per-request lists)
VLLM_KEYS = ("date", "endpoint_type", "backend", "label", "model_id", "tokenizer_id", "num_prompts",
             "request_rate", "burstiness", "max_concurrency", "duration", "completed", "failed",
             "total_input_tokens", "total_output_tokens", "request_throughput", "request_goodput",
             "output_throughput", "total_token_throughput", "input_lens", "output_lens", "ttfts", "itls",
             "latencies", "start_times", "generated_texts", "errors", "max_output_tokens_per_s",
             "max_concurrent_requests")


def test_goodput_terms_are_expanded():
    assert expand_multi_value_flags(["--goodput", "ttft:200", "tpot:20", "--seed", "1"]) == \
        ["--goodput", "ttft:200", "--goodput", "tpot:20", "--seed", "1"]
    assert expand_multi_value_flags(["--goodput", "e2el:900", "import"]) == ["--goodput", "e2el:900", "import"]


def test_version():
    from servelab import __version__
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"servelab {__version__}"


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("vllm")
    prompts = d / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": "hello " * (4 + i % 3), "output_tokens": 6}) + "\n"
                               for i in range(24)))
    with fake_server(FakeServerConfig(ttft_s=0.004, itl_s=0.002)) as srv:
        r = CliRunner().invoke(app, ["bench", "--base-url", srv.url, "--model", "m", "--num-prompts", "24",
                                     "--dataset-name", "custom", "--dataset-path", str(prompts),
                                     "--request-rate", "200", "--goodput", "ttft:200", "tpot:20",
                                     "--save-result", "--result-dir", str(d / "res"),
                                     "--result-filename", "r.json", "--out", str(d / "run"), "--json"])
    assert r.exit_code == 0, r.output
    return d, json.loads(r.stdout)


def test_goodput_with_several_terms_sets_both_thresholds(bench_run):
    _, s = bench_run
    assert s["slo_thresholds_s"] == {"ttft": pytest.approx(0.2), "tpot": pytest.approx(0.02)}
    assert s["goodput_rps"] is not None and s["offered"] == 24 and s["completed"] == 24
    assert s["total_output_tokens"] == 24 * 6            # the custom (JSONL) dataset's output lengths


def test_result_file_has_vllm_schema(bench_run):
    d, s = bench_run
    doc = json.loads((d / "res" / "r.json").read_text())
    missing = [k for k in VLLM_KEYS if k not in doc]
    assert not missing, missing
    n = doc["num_prompts"]
    for k in ("input_lens", "output_lens", "ttfts", "itls", "latencies", "start_times", "errors"):
        assert len(doc[k]) == n, k
    # aggregates recomputed from the lists with vLLM's formulas (calculate_metrics)
    ok = [i for i in range(n) if not doc["errors"][i]]
    ttft = np.array([doc["ttfts"][i] for i in ok])
    lat = np.array([doc["latencies"][i] for i in ok])
    out = np.array([doc["output_lens"][i] for i in ok])
    tpot = (lat - ttft) / (out - 1)
    itl = np.concatenate([doc["itls"][i] for i in ok])
    assert doc["completed"] == len(ok) == s["completed"]
    assert doc["mean_ttft_ms"] == pytest.approx(ttft.mean() * 1000, rel=1e-9)
    assert doc["std_ttft_ms"] == pytest.approx(ttft.std() * 1000, rel=1e-9)
    assert doc["p99_ttft_ms"] == pytest.approx(np.percentile(ttft, 99) * 1000, rel=1e-9)
    assert doc["median_tpot_ms"] == pytest.approx(np.median(tpot) * 1000, rel=1e-9)
    assert doc["mean_e2el_ms"] == pytest.approx(lat.mean() * 1000, rel=1e-9)
    assert doc["output_throughput"] == pytest.approx(out.sum() / doc["duration"], rel=1e-9)
    # the fake server streams one chunk per token: pooled ITL = every gap
    assert doc["mean_itl_ms"] == pytest.approx(itl.mean() * 1000, rel=1e-9)
    assert doc["p95_itl_ms"] == pytest.approx(np.percentile(itl, 95) * 1000, rel=1e-9)


def test_result_file_reads_back_with_identical_metrics(bench_run):
    d, s = bench_run
    [(meta, recs)] = import_result("vllm", d / "res" / "r.json")
    back = summarize(recs, duration_s=meta.duration_s, percentiles=tuple(s["percentiles"]),
                     goodput="ttft:200 tpot:20")
    for k in ("offered", "completed", "total_input_tokens", "total_output_tokens", "duration_s",
              "request_throughput_rps", "throughput_tokens_per_s", "goodput_rps"):
        assert back[k] == pytest.approx(s[k], rel=1e-9), k
    for base in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
        for stat, v in s[base].items():
            assert back[base][stat] == pytest.approx(v, rel=1e-9, abs=1e-12), (base, stat)
    # and through `servelab report`, which detects the vLLM format by its keys
    r = CliRunner().invoke(app, ["report", str(d / "res" / "r.json"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ttft_s"]["p95"] == pytest.approx(s["ttft_s"]["p95"], rel=1e-9)


def test_default_result_name_follows_vllm(tmp_path):
    from servelab.load.vllm_result import vllm_result_filename
    assert vllm_result_filename(label="openai", request_rate=4.0, model="org/Llama-3.1-8B",
                                date="20260101-120000", max_concurrency=8) == \
        "openai-4qps-concurrency8-Llama-3.1-8B-20260101-120000.json"
    assert vllm_result_filename(label="x", request_rate=float("inf"), model="m", date="d") == "x-infqps-m-d.json"


def test_install_hints_keep_their_extras():
    """Rich markup must not swallow the brackets of `servelab[gpu]` / `servelab[dist]`.

    Checked whatever is installed here: the CLI runs in a child process in which ray,
    torch and triton are hidden (``sys.modules[name] = None``: import fails and
    ``importlib.util.find_spec`` returns None)."""
    import subprocess
    import sys

    def without_extras(*args: str) -> subprocess.CompletedProcess:
        code = ("import sys\n"
                "for m in ('ray', 'torch', 'triton'):\n"
                "    sys.modules[m] = None\n"
                "from servelab.cli import main\n"
                f"sys.argv = ['servelab', *{list(args)!r}]\n"
                "main()\n")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})

    r = without_extras("plan", "--executor", "ray", "--gpus", "h100-sxm")
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2 and "servelab[dist]" in out, out
    r = without_extras("kernels", "check")
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode != 0 and "servelab[gpu]" in out, out


def test_sweep_saves_one_vllm_result_per_point(tmp_path):
    with fake_server(FakeServerConfig(ttft_s=0.002, itl_s=0.001)) as srv:
        r = CliRunner().invoke(app, ["bench", "--base-url", srv.url, "--model", "m", "--num-prompts", "8",
                                     "--random-input-len", "8", "--random-output-len", "4", "--sweep",
                                     "--sweep-rates", "2", "--scrape-interval", "0", "--save-result",
                                     "--out", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    points = json.loads(r.stdout)["points"]
    files = sorted(tmp_path.glob("*/openai-*qps*-m-*.json"))   # synchronous: -concurrency1
    assert len(files) == len(points) == 4                     # synchronous, throughput, 2 rates (no SLO)
    for f in files:
        [(meta, recs)] = import_result("vllm", f)
        assert len(recs) == json.loads(f.read_text())["num_prompts"]


def test_slo_without_sweep_is_refused():
    r = CliRunner().invoke(app, ["bench", "--base-url", "http://127.0.0.1:9", "--model", "m",
                                 "--slo", "ttft_p95=1s", "--num-prompts", "1"])
    assert r.exit_code == 2 and "--slo sets the SLO of --sweep" in r.output
