"""`servelab kernels report` on malformed results files: a clear error, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from servelab.cli import app
from servelab.errors import ConfigError
from servelab.kernels.results import read_rows

ROW = {"schema": "servelab.kernels/1", "kernel": "rmsnorm", "provider": "triton", "dtype": "bf16",
       "shape": {"rows": 4096, "hidden": 8192}, "metric": "latency", "unit": "s",
       "p50": 1.2e-05, "p95": 1.3e-05, "p99": 1.4e-05, "n": 200, "gpu": "NVIDIA H200"}

BAD = {
    "not_object": "[1, 2]\n",
    "null": "null\n",
    "missing_fields": json.dumps({"kernel": "rmsnorm"}) + "\n",
    "shape_list": json.dumps({**ROW, "shape": [4096, 8192]}) + "\n",
    "p50_string": json.dumps({**ROW, "p50": "fast"}) + "\n",
    "n_string": json.dumps({**ROW, "n": "many"}) + "\n",
    # a call cannot take zero or negative time (bandwidth = bytes / latency)
    "latency_zero": json.dumps({**ROW, "p50": 0.0, "p95": 0.0, "p99": 0.0}) + "\n",
    "latency_negative": json.dumps({**ROW, "p50": -1e-5}) + "\n",
    "bandwidth_negative": json.dumps({**ROW, "metric": "bandwidth", "unit": "GB/s",
                                      "p50": -5.0, "p95": -5.0, "p99": -5.0}) + "\n",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_row_is_a_config_error_naming_the_line(tmp_path: Path, name: str) -> None:
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps(ROW) + "\n" + BAD[name] + json.dumps(ROW) + "\n")
    with pytest.raises(ConfigError, match=r"r\.jsonl:2"):
        read_rows(p)


def test_binary_file_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    p.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        read_rows(p)


@pytest.mark.parametrize("name", sorted(BAD))
def test_report_exits_2_with_a_message(tmp_path: Path, name: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("r.jsonl").write_text(BAD[name])
    res = CliRunner().invoke(app, ["kernels", "report", "r.jsonl"])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "r.jsonl:1" in res.output


def test_folder_instead_of_results_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        read_rows(tmp_path)
