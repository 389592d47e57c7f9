"""``--calibration FILE`` on estimate, simulate and plan, with files written by
``servelab.calibrate`` (calibration_dict + write_calibration)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from typer.testing import CliRunner

from servelab.calibrate import calibration_dict, write_calibration
from servelab.catalog import get_gpu, get_model
from servelab.cli import app
from servelab.perf import Deployment, get_engine

runner = CliRunner()
VLLM = get_engine("vllm").efficiency          # step_overhead_s 2.19 ms


def _write(path, gpu: str = "h100-sxm", model: str = "llama-3.1-8b", dtype: str = "bf16", **eff):
    dep = Deployment(model=get_model(model), gpu=get_gpu(gpu), weight_dtype=dtype, kv_dtype=dtype)
    write_calibration(path, calibration_dict(deployment=dep,
                                             efficiency=dataclasses.replace(VLLM, **eff)))
    return str(path)


def _sha(path: str) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _estimate(*extra: str) -> tuple[dict, str]:
    r = runner.invoke(app, ["estimate", "--input", "2048", "--output", "256", "--json", *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout), r.stderr


def test_estimate_uses_the_calibrated_efficiency(tmp_path) -> None:
    # +10 ms per engine step and +30 ms per request over the vllm profile: a batch-1
    # decode step is exactly 10 ms longer; a 2048-token prompt is one prefill step
    # (budget 8192), so TTFT is 10 + 30 = 40 ms longer.
    f = _write(tmp_path / "cal.json", step_overhead_s=VLLM.step_overhead_s + 0.010,
               request_overhead_s=0.030)
    base, _ = _estimate()
    cal, err = _estimate("--calibration", f)
    assert base["calibration"] is None and base["efficiency_source"] == "engine profile vllm"
    assert cal["efficiency_source"] == "calibration"
    assert cal["calibration"]["path"] == f and cal["calibration"]["sha256"] == _sha(f)
    assert cal["efficiency"]["step_overhead_s"] == pytest.approx(0.01219)
    assert cal["decode_step_s"]["1"] - base["decode_step_s"]["1"] == pytest.approx(0.010, abs=1e-12)
    assert cal["ttft_s"] - base["ttft_s"] == pytest.approx(0.040, abs=1e-12)
    assert cal["warnings"] == [] and "warning" not in err
    # memory (KV capacity) is not an efficiency: unchanged
    assert cal["kv_capacity_tokens"] == base["kv_capacity_tokens"]


def test_estimate_warns_when_the_deployment_differs(tmp_path) -> None:
    f = _write(tmp_path / "cal.json", gpu="h100-sxm")
    out, err = _estimate("--calibration", f, "--gpu", "a100-80g")
    assert out["efficiency_source"] == "calibration"
    assert len(out["warnings"]) == 1 and "gpu: h100-sxm → a100-80g" in out["warnings"][0]
    assert "warning:" in err and "a100-80g" in err


@pytest.mark.parametrize("content, match", [
    (None, "does not exist"),
    ('{"schema": "other/1"}', "schema"),
    ('{"schema": "servelab.calibration/1", "efficiency": {"memory": 1.7}}', "memory=1.7"),
])
def test_bad_calibration_file_exits_2(tmp_path, content, match) -> None:
    f = tmp_path / "cal.json"
    if content is not None:
        f.write_text(content)
    for cmd in (["estimate"], ["simulate", "--duration", "5"], ["plan", "--gpus", "l40s"]):
        r = runner.invoke(app, [*cmd, "--calibration", str(f)])
        assert r.exit_code == 2, (cmd, r.output)
        assert match in " ".join(r.output.split())     # rich wraps long lines


def _simulate(*extra: str) -> dict:
    r = runner.invoke(app, ["simulate", "--duration", "30", "--rate", "2", "--seed", "1", "--json", *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_simulate_request_overhead_from_calibration(tmp_path) -> None:
    # Every request reaches the engine 0.5 s after it arrives; the engine's timeline is
    # the same, shifted: every TTFT and E2E is 0.5 s longer, TPOT unchanged.
    f0 = _write(tmp_path / "c0.json")
    f1 = _write(tmp_path / "c1.json", request_overhead_s=0.5)
    a, b = _simulate("--calibration", f0), _simulate("--calibration", f1)
    assert b["calibration"]["sha256"] == _sha(f1) and b["calibration"]["path"] == f1
    assert b["efficiency_source"] == "calibration"
    assert a["completed"] == b["completed"] == a["offered"]
    for p in ("p50", "p95", "p99"):
        assert b["ttft_s"][p] - a["ttft_s"][p] == pytest.approx(0.5, abs=1e-9)
        assert b["e2e_s"][p] - a["e2e_s"][p] == pytest.approx(0.5, abs=1e-9)
        assert b["tpot_s"][p] == pytest.approx(a["tpot_s"][p], rel=1e-9)
    # a calibration equal to the vllm profile changes nothing
    base = _simulate()
    assert base["ttft_s"]["p50"] == pytest.approx(a["ttft_s"]["p50"], rel=1e-12)


def test_simulate_writes_calibration_into_meta(tmp_path) -> None:
    f = _write(tmp_path / "c.json", memory=0.5)
    out = tmp_path / "run"
    r = runner.invoke(app, ["simulate", "--duration", "5", "--rate", "2", "--calibration", f,
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "efficiency from calibration" in r.stdout
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"]["calibration"]["sha256"] == _sha(f)
    assert meta["config"]["replicas"][0]["deployment"]["efficiency"]["memory"] == 0.5


# --confidence expected: the model's own step times, so a calibration's +5 ms shows as such
PLAN = ["plan", "--gpus", "l40s,l4", "--precisions", "fp8", "--tp", "1", "--max-requests", "600",
        "--fleet-duration", "30", "--jobs", "1", "--seed", "0", "--no-hetero", "--no-sensitivity",
        "--confidence", "expected", "--json"]


def _plan(*extra: str) -> tuple[dict, str]:
    r = runner.invoke(app, [*PLAN, *extra])
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout), r.stderr


def test_plan_applies_calibration_to_its_gpu_only(tmp_path) -> None:
    # fitted on l40s: +5 ms per step there; the l4 candidate keeps the vllm profile
    f = _write(tmp_path / "cal.json", gpu="l40s", dtype="fp8",
               step_overhead_s=VLLM.step_overhead_s + 0.005)
    base, _ = _plan()
    cal, err = _plan("--calibration", f)
    info = cal["inputs"]["calibration"]
    assert base["inputs"]["calibration"] is None
    assert info["sha256"] == _sha(f) and info["path"] == f and info["gpu"] == "l40s"
    assert info["applied_to"] == ["l40s/tp1/fp8/kv-fp8"]
    assert "l40s only" in info["rule"] and "l40s only" in " ".join(err.split())
    b = {c["key"]: c for c in base["candidates"]}
    c = {c["key"]: c for c in cal["candidates"]}
    d_l40s = c["l40s/tp1/fp8/kv-fp8"]["analytic"]["decode_step_b1_s"] - \
        b["l40s/tp1/fp8/kv-fp8"]["analytic"]["decode_step_b1_s"]
    assert d_l40s == pytest.approx(0.005, abs=1e-12)
    assert c["l4/tp1/fp8/kv-fp8"]["analytic"] == b["l4/tp1/fp8/kv-fp8"]["analytic"]
    assert any("calibration" in n for n in c["l40s/tp1/fp8/kv-fp8"]["notes"])
    assert not any("calibration" in n for n in c["l4/tp1/fp8/kv-fp8"]["notes"])


def test_plan_refuses_a_calibration_for_an_excluded_gpu(tmp_path) -> None:
    f = _write(tmp_path / "cal.json", gpu="h100-sxm")
    r = runner.invoke(app, [*PLAN, "--calibration", f])
    text = " ".join(r.output.split())
    assert r.exit_code == 2 and "fitted on h100-sxm, which --gpus" in text
