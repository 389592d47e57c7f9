"""Kernel lab on a CUDA GPU: compiled correctness, a quick timed run, the report.

Marked ``gpu`` and skipped without CUDA. Each test runs the CLI in a child process so
that the compiled (not interpreted) Triton path is used whatever the parent imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.gpu


def _cuda() -> bool:
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("triton") is None:
        return False
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                         capture_output=True, text=True, timeout=120)
    return out.stdout.strip() == "True"


needs_cuda = pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU and the gpu extra")


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    cmd = [sys.executable, "-c", "from servelab.cli import main; main()", "kernels", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@needs_cuda
def test_compiled_kernels_pass_checks_on_gpu():
    r = _cli("check", "--device", "cuda", "--json")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    d = json.loads(r.stdout)
    assert d["passed"] and all(x["backend"] == "gpu" for x in d["results"])


@needs_cuda
def test_quick_run_writes_rows_and_report(tmp_path):
    res = tmp_path / "k.jsonl"
    r = _cli("run", "--quick", "--kernel", "rmsnorm", "--reps", "20", "--results", str(res))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = [json.loads(x) for x in res.read_text().splitlines()]
    metrics = {x["metric"] for x in rows}
    assert {"peak_copy_bw", "peak_matmul", "latency", "bandwidth", "frac_copy_bw"} <= metrics
    lat = [x for x in rows if x["metric"] == "latency"]
    assert all(0 < x["p50"] <= x["p95"] <= x["p99"] for x in lat)
    r = _cli("report", str(res), "--html", str(tmp_path / "r.html"))
    assert r.returncode == 0 and "<svg" in (tmp_path / "r.html").read_text()
