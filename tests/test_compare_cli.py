"""`servelab report` and `servelab compare` through the CLI runner: input detection
(run folders, records files, vLLM / guidellm result JSON), JSON and HTML output, errors."""

from __future__ import annotations

import json
import re
import sys

import pytest
from typer.testing import CliRunner

from servelab import recordio
from servelab.cli import app
from servelab.report.inputs import load_inputs
from servelab.errors import ConfigError
from servelab.metrics import summarize
from servelab.records import RunMeta
from test_compare import make_records

runner = CliRunner()


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _write(tmp_path, name: str, ttft_s: float, n: int = 20, kind: str = "bench"):
    recs = make_records(n, ttft_s=ttft_s)
    meta = RunMeta(run_id=name, kind=kind, started_at="2026-01-01T00:00:00+00:00", duration_s=n * 0.5,
                   complete=True)
    return recordio.write_run(tmp_path / name, meta, recs, summarize(recs, duration_s=n * 0.5))


@pytest.fixture()
def vllm_json(tmp_path):
    """A `vllm bench serve --save-result --save-detailed` style result: 4 requests,
    TTFT 125/250/375/500 ms, 3 ITL gaps of 62.5 ms each, the last one errored."""
    data = {"date": "20260101-000000", "backend": "vllm", "model_id": "m", "duration": 2.0,
            "completed": 3, "num_prompts": 4, "request_rate": 2.0,
            "input_lens": [8, 8, 8, 8], "output_lens": [4, 4, 4, 0],
            "ttfts": [0.125, 0.25, 0.375, 0.0], "itls": [[0.0625] * 3, [0.0625] * 3, [0.0625] * 3, []],
            "errors": ["", "", "", "HTTP 500"], "start_times": [100.0, 100.5, 101.0, 101.5]}
    p = tmp_path / "vllm_result.json"
    p.write_text(json.dumps(data))
    return p


@pytest.fixture()
def guidellm_json(tmp_path):
    """guidellm (0.2/0.3 flat schema): one benchmark, two successful requests, one errored."""
    def req(i, start, first, last):
        return {"request_id": f"g{i}", "start_time": 1000.0 + start, "first_token_time": 1000.0 + first,
                "last_token_time": 1000.0 + last, "end_time": 1000.0 + last, "prompt_tokens": 8,
                "output_tokens": 5, "scheduler_info": {"targeted_start_time": 1000.0 + start}}
    data = {"benchmarks": [{"duration": 2.0, "requests": {
        "successful": [req(0, 0.0, 0.25, 0.5), req(1, 0.5, 1.0, 1.25)],
        "errored": [{"request_id": "g2", "start_time": 1001.0, "end_time": 1001.5, "prompt_tokens": 8,
                     "output_tokens": 0, "error": "timeout",
                     "scheduler_info": {"targeted_start_time": 1001.0}}]}}]}
    p = tmp_path / "guidellm.json"
    p.write_text(json.dumps(data))
    return p


def test_detects_every_input_format(tmp_path, vllm_json, guidellm_json) -> None:
    d = _write(tmp_path, "a", 0.125)
    assert [x.fmt for x in load_inputs(d)] == ["run-folder"]
    assert load_inputs(d)[0].label == "bench a" and load_inputs(d)[0].duration_s == 10.0
    assert load_inputs(d / "meta.json")[0].fmt == "run-folder"
    _write(tmp_path / "sweep", "rate_2", 0.125)
    _write(tmp_path / "sweep", "rate_1", 0.25)
    assert [x.label for x in load_inputs(tmp_path / "sweep")] == ["bench rate_1", "bench rate_2"]
    assert len(load_inputs(d / "records.parquet")[0].records) == 20
    assert load_inputs(d / "records.jsonl")[0].fmt == "jsonl"
    (tmp_path / "lines.json").write_text((d / "records.jsonl").read_text())
    assert [len(x.records) for x in load_inputs(tmp_path / "lines.json")] == [20]
    listed = [json.loads(line) for line in (d / "records.jsonl").read_text().splitlines()]
    (tmp_path / "list.json").write_text(json.dumps(listed))
    assert [(x.fmt, len(x.records)) for x in load_inputs(tmp_path / "list.json")] == [("json-list", 20)]
    v = load_inputs(vllm_json)
    assert [x.fmt for x in v] == ["vllm"] and len(v[0].records) == 4
    assert [r.status for r in v[0].records] == ["ok", "ok", "ok", "failed"]
    g = load_inputs(guidellm_json)
    assert [x.fmt for x in g] == ["guidellm"] and len(g[0].records) == 3


def test_unknown_formats_and_missing_paths_name_valid_inputs(tmp_path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    (tmp_path / "other.json").write_text('{"foo": 1}')
    (tmp_path / "empty").mkdir()
    for bad, msg in (("x.csv", "unknown input format"), ("other.json", "unknown input format"),
                     ("empty", "not a run folder"), ("missing", "no such file or folder")):
        with pytest.raises(ConfigError, match=msg) as ei:
            load_inputs(tmp_path / bad)
        assert "run folder" in str(ei.value) and ".parquet" in str(ei.value) and "guidellm" in str(ei.value)
        r = runner.invoke(app, ["report", str(tmp_path / bad)])
        assert r.exit_code == 2 and msg in _flat(r.output) and "vllm bench serve" in _flat(r.output)
    r = runner.invoke(app, ["compare", str(tmp_path / "missing"), str(tmp_path / "x.csv")])
    assert r.exit_code == 2 and "no such file or folder" in _flat(r.output)


def test_importers_missing_is_said_clearly(vllm_json, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "servelab.load.importers", None)
    r = runner.invoke(app, ["report", str(vllm_json)])
    assert r.exit_code == 2
    assert "looks like a vllm result" in _flat(r.output) and "servelab.load.importers" in _flat(r.output)


def test_report_vllm_json_hand_values(vllm_json) -> None:
    r = runner.invoke(app, ["report", str(vllm_json), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["offered"] == 4 and s["completed"] == 3 and s["delivery"] == 0.75
    assert s["ttft_s"]["p50"] == 0.25 and s["ttft_s"]["max"] == 0.375
    assert s["itl_s"]["mean"] == pytest.approx(0.0625)
    assert s["throughput_tokens_per_s"] == 6.0                     # 12 tokens over vLLM's 2.0 s


def test_report_run_folder_table_json_html(tmp_path) -> None:
    d = _write(tmp_path, "a", 0.125)
    r = runner.invoke(app, ["report", str(d)])
    assert r.exit_code == 0, r.output
    assert "bench a" in r.output and "TTFT" in r.output and "125" in r.output
    r = runner.invoke(app, ["report", str(d), "--json"])
    assert json.loads(r.stdout) == recordio.read_run(d).summary
    out = tmp_path / "one.html"
    r = runner.invoke(app, ["report", str(d / "records.parquet"), "--html", str(out)])
    assert r.exit_code == 0, r.output
    page = out.read_text()
    assert "<svg" in page and "http://" not in page and "https://" not in page


def test_compare_json_ratio_and_flags(tmp_path) -> None:
    a, b = _write(tmp_path, "a", 0.125), _write(tmp_path, "b", 0.25, n=30)
    r = runner.invoke(app, ["compare", str(a), str(b), "--json", "--resamples", "200"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["baseline"] == "bench a" and d["confidence"] == 0.95 and d["n_resamples"] == 200
    assert [m["metric"] for m in d["metrics"]] == ["ttft_p50", "ttft_p95", "tpot_p95", "e2e_p95",
                                                   "throughput_tokens_per_s", "delivery"]
    ttft = d["metrics"][0]["runs"]
    assert ttft[0]["baseline"] is True and ttft[0]["value"] == 0.125 and ttft[0]["ratio"] is None
    assert ttft[1]["ratio"] == 2.0 and ttft[1]["ratio_ci"] == [2.0, 2.0] and ttft[1]["overlap"] is False
    assert ttft[1]["rel_error"] == 1.0
    # same tokens per second in both: 5 tokens every 0.5 s over each run's own window
    thr = d["metrics"][4]["runs"]
    assert thr[0]["value"] == 10.0 and thr[1]["value"] == 10.0 and thr[1]["ratio"] == 1.0
    assert [x["n_records"] for x in d["runs"]] == [20, 30]


def test_compare_table_labels_baseline_and_html(tmp_path, vllm_json) -> None:
    a, b = _write(tmp_path, "a", 0.125), _write(tmp_path, "b", 0.25)
    out = tmp_path / "cmp.html"
    r = runner.invoke(app, ["compare", str(a), str(b), str(vllm_json), "-l", "pred", "-l", "meas", "-l", "vllm",
                            "--baseline", "meas", "--metrics", "ttft_p50,itl_p50", "--resamples", "100",
                            "--html", str(out)])
    assert r.exit_code == 0, r.output
    assert "meas (baseline)" in r.output and "-50.0%" in r.output and "NO" in r.output
    page = out.read_text()
    assert "<svg" in page and "http://" not in page and "https://" not in page
    assert "ITL distribution" in page and "TTFT distribution" in page and "Delivery over time" in page
    r = runner.invoke(app, ["compare", str(a), str(b), "--baseline", "2", "--metrics", "ttft_p50", "--json",
                            "--resamples", "50"])
    assert json.loads(r.stdout)["baseline"] == "bench b"


def test_compare_argument_errors(tmp_path) -> None:
    a, b = _write(tmp_path, "a", 0.125), _write(tmp_path, "b", 0.25)
    cases = [
        (["compare", str(a)], "at least two runs"),
        (["compare", str(a), str(b), "-l", "x"], "--label given 1 times for 2 runs"),
        (["compare", str(a), str(b), "--baseline", "zzz"], "unknown baseline 'zzz'"),
        (["compare", str(a), str(b), "--metrics", "ttft_p95,speed"], "unknown metric 'speed'"),
        (["compare", str(a), str(b), "--confidence", "95"], "confidence must be in (0, 1)"),
    ]
    for args, msg in cases:
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and msg in _flat(r.output), (args, r.output)


def test_truncated_jsonl_keeps_what_was_written(tmp_path) -> None:
    d = _write(tmp_path, "a", 0.125, n=6)
    p = tmp_path / "crashed.jsonl"
    p.write_text((d / "records.jsonl").read_text() + '{"id": "r6", "arrival_s": 3.0, "inp')
    lr = load_inputs(p)[0]
    assert len(lr.records) == 6 and lr.skipped_lines == 1
    r = runner.invoke(app, ["report", str(p), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["offered"] == 6
    assert "1 unreadable record line(s) skipped" in _flat(r.stderr)
