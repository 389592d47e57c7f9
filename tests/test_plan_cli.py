"""`servelab plan` through typer's CliRunner: JSON keys, tables, HTML report, errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from servelab.cli import app

ARGS = ["plan", "--gpus", "l40s", "--precisions", "fp8", "--tp", "1", "--max-requests", "600",
        "--fleet-duration", "30", "--jobs", "1", "--seed", "0"]


def test_json_has_the_promised_keys():
    res = CliRunner().invoke(app, ARGS + ["--json", "--slo", "ttft_p95=2s,tpot_p95=50ms", "--rate", "20"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    rec = out["recommendation"]
    for key in ("gpu", "tp", "replicas", "gpus_total", "cost_per_hour", "cost_per_million_tokens",
                "ttft_p95_s", "tpot_p95_s"):
        assert key in rec
    assert rec["gpu"] == "l40s" and rec["tp"] == 1
    assert out["candidates"] and all("verdict" in c and "reason" in c for c in out["candidates"])
    assert out["inputs"]["slo"] == "ttft_p95=2s,tpot_p95=50ms"
    assert len([k for k in out["steps"]]) == 13


def test_tables_for_every_step_and_report(tmp_path):
    report = tmp_path / "plan.html"
    res = CliRunner().invoke(app, ARGS + ["--report", str(report), "--no-hetero"])
    assert res.exit_code == 0, res.output
    for title in ("1 · Workload", "2–3 · Footprint", "4 · Candidates", "5–8 · Memory", "9–11 · Simulated",
                  "12 · Heterogeneous", "13 · Recommendation", "13 · Sensitivity", "13 · Claims"):
        assert title in res.stdout, title
    html = report.read_text()
    assert html.count("<svg") >= 5 and "13 · Recommendation" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "<script" not in html


def test_unknown_gpu_exits_2_naming_the_known_ones():
    res = CliRunner().invoke(app, ["plan", "--gpus", "h1000", "--json"])
    assert res.exit_code == 2
    assert "unknown GPU 'h1000'" in res.output and "h100-sxm" in res.output


def test_bad_tp_list_is_rejected():
    res = CliRunner().invoke(app, ["plan", "--tp", "two"])
    assert res.exit_code == 2 and "--tp takes comma-separated integers" in res.output


def test_headroom_below_one_is_rejected():
    res = CliRunner().invoke(app, ["plan", "--headroom", "0.5"])
    assert res.exit_code == 2 and "--headroom must be >= 1, got 0.5" in res.output


def test_impossible_slo_exits_1_with_no_recommendation():
    res = CliRunner().invoke(app, ARGS + ["--slo", "tpot_p95=1ms", "--json"])
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert out["recommendation"] is None
    assert all(c["verdict"] == "hopeless" for c in out["candidates"])


def test_jobs_and_max_requests_below_one_are_refused_naming_the_value():
    for flag in ("--jobs", "--max-requests"):
        for bad in ("0", "-3"):
            res = CliRunner().invoke(app, ["plan", flag, bad])
            assert res.exit_code == 2, (flag, bad, res.output)
            msg = " ".join(res.output.split())       # rich wraps long lines
            assert f"{flag} must be >= 1" in msg and msg.endswith(f"got {bad}"), msg


def test_day_commands_refuse_jobs_below_one():
    from pathlib import Path
    fleet = str(Path(__file__).resolve().parents[1] / "examples" / "fleet-day" / "three-models.yaml")
    for cmd in (["plan-day", fleet], ["simulate-day", fleet, "--hours", "0.01"]):
        res = CliRunner().invoke(app, [*cmd, "--jobs", "0"])
        assert res.exit_code == 2, (cmd, res.output)
        assert "--jobs must be >= 1, got 0" in res.output, res.output
