"""`servelab calibrate` through the CLI runner, on run folders written with recordio."""

from __future__ import annotations

import json

import pytest
from test_calibrate_fit import TRUTH, hand_records
from typer.testing import CliRunner

from servelab.calibrate import load_calibration
from servelab.cli import app
from servelab.kernels.results import ResultRow, append_rows
from servelab.metrics import summarize
from servelab.recordio import write_run
from servelab.records import RequestRecord, RunMeta

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    recs = hand_records(TRUTH)
    meta = RunMeta(run_id="bench-test", kind="bench", started_at="2026-01-01T00:00:00+00:00",
                   complete=True, config={"model": "llama-3.1-8b"})
    return write_run(d, meta, recs, summarize(recs))


def test_fit_json_and_out_file(run_dir, tmp_path):
    out = tmp_path / "calib.json"
    r = runner.invoke(app, ["calibrate", str(run_dir), "--gpu", "h100-sxm", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    # --model came from the run's meta.config
    assert d["deployment"]["model"] == "llama-3.1-8b" and d["deployment"]["gpu"] == "h100-sxm"
    assert d["fitted"]["memory"] == pytest.approx(0.55, rel=0.01)
    assert d["errors_mdape_pct"]["after"]["holdout"]["all"] < 1.0
    assert d["provenance"]["runs"][0]["run_id"] == "bench-test"
    assert d["counts"]["records"] == len(hand_records(TRUTH))
    eff = load_calibration(out)
    assert eff.memory == pytest.approx(0.55, rel=0.01)
    assert eff.step_overhead_s == pytest.approx(3e-3, abs=1e-4)


def test_fit_table_output(run_dir):
    r = runner.invoke(app, ["calibrate", str(run_dir), "--model", "llama-3.1-8b", "--gpu", "h100-sxm",
                            "--params", "memory,step_overhead_s"])
    assert r.exit_code == 0, r.output
    assert "MdAPE" in r.output and "step_overhead_s" in r.output and "holdout" in r.output


def test_kernel_bounds_command(tmp_path):
    f = tmp_path / "k.jsonl"
    append_rows(f, [ResultRow(kernel="peak_copy", provider="torch", dtype="bf16", shape={},
                              metric="peak_copy_bw", unit="GB/s", p50=2900.0, p95=2900.0, p99=2900.0)])
    r = runner.invoke(app, ["calibrate", "--kernels", str(f), "--gpu", "h100-sxm", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["kernel_bounds"]["bounds"]["memory"]["upper"] == pytest.approx(2900 / 3350)
    r = runner.invoke(app, ["calibrate", "--kernels", str(f), "--gpu", "h100-sxm"])
    assert r.exit_code == 0 and "upper bound" in r.output


def test_kernel_bounds_cap_the_fit(run_dir, tmp_path):
    f = tmp_path / "k.jsonl"
    append_rows(f, [ResultRow(kernel="peak_copy", provider="torch", dtype="bf16", shape={},
                              metric="peak_copy_bw", unit="GB/s", p50=1675.0, p95=1675.0, p99=1675.0)])
    r = runner.invoke(app, ["calibrate", str(run_dir), "--gpu", "h100-sxm", "--kernels", str(f), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["bounds"]["memory"][1] == pytest.approx(0.5)       # 1675 / 3350
    assert d["fitted"]["memory"] <= 0.5


@pytest.mark.parametrize("args, match", [
    ([], "RUN_DIR"),
    (["--gpu", "h100-sxm"], "RUN_DIR"),
])
def test_usage_errors(args, match):
    r = runner.invoke(app, ["calibrate", *args])
    assert r.exit_code == 2 and match in r.output


def test_unusable_and_missing_runs_exit_2(tmp_path, run_dir):
    bad = write_run(tmp_path / "bad", RunMeta(run_id="b", kind="bench", started_at="x"),
                    [RequestRecord(id="1", arrival_s=0.0, input_tokens=10, status="failed", reason="503")],
                    {})
    r = runner.invoke(app, ["calibrate", str(bad), "--model", "llama-3.1-8b", "--gpu", "h100-sxm"])
    assert r.exit_code == 2 and "none of its 1 records" in r.output
    r = runner.invoke(app, ["calibrate", str(tmp_path / "nope"), "--model", "llama-3.1-8b", "--gpu", "h100-sxm"])
    assert r.exit_code == 2 and "not a run folder" in r.output
    r = runner.invoke(app, ["calibrate", str(run_dir), "--gpu", "h1000"])
    assert r.exit_code == 2 and "h1000" in r.output
    r = runner.invoke(app, ["calibrate", str(run_dir), "--gpu", "h100-sxm", "--params", "memroy"])
    assert r.exit_code == 2 and "memroy" in r.output


def test_import_without_send_times_is_refused_unless_a_burst(tmp_path):
    recs = hand_records(TRUTH)
    zeroed = [RequestRecord(**{**r.to_dict(), "arrival_s": 0.0, "start_s": None}) for r in recs]
    note = "arrival times unknown in this vLLM result (all set to 0)"
    d = write_run(tmp_path / "r5", RunMeta(run_id="v", kind="import-vllm", started_at="x", notes=note,
                                           config={"request_rate": 5.0}), zeroed, {})
    r = runner.invoke(app, ["calibrate", str(d), "--model", "llama-3.1-8b", "--gpu", "h100-sxm"])
    assert r.exit_code == 2 and "arrival times unknown" in r.output
    d = write_run(tmp_path / "rinf", RunMeta(run_id="v", kind="import-vllm", started_at="x", notes=note,
                                             config={"request_rate": "inf"}), zeroed, {})
    r = runner.invoke(app, ["calibrate", str(d), "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--json"])
    assert r.exit_code == 0, r.output
