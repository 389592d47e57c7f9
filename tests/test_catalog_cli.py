"""`servelab catalog` through the CLI runner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from servelab.cli import app

runner = CliRunner()


@pytest.mark.parametrize("kind,first,count", [("gpus", "a10g", 10), ("models", "llama-2-7b", 15),
                                             ("workloads", "chat", 6)])
def test_json_lists(kind: str, first: str, count: int) -> None:
    res = runner.invoke(app, ["catalog", kind, "--json"])
    assert res.exit_code == 0, res.output
    items = json.loads(res.output)
    assert isinstance(items, list) and len(items) >= count and items[0]["name"] == first


def test_models_json_carries_param_counts() -> None:
    items = {m["name"]: m for m in json.loads(runner.invoke(app, ["catalog", "models", "--json"]).output)}
    assert items["llama-3.1-8b"]["param_count"] == 8_030_261_248
    assert items["mixtral-8x7b"]["active_param_count"] < items["mixtral-8x7b"]["param_count"]


def test_workloads_json_offline_rate_is_inf_string() -> None:
    items = {w["name"]: w for w in json.loads(runner.invoke(app, ["catalog", "workloads", "--json"]).output)}
    assert items["offline"]["arrival"]["rate_rps"] == "inf"
    assert items["chat"]["slo"] == "ttft_p95=2s,tpot_p95=50ms"


@pytest.mark.parametrize("kind,needle", [("gpus", "h100-sxm"), ("models", "deepseek-v3"), ("workloads", "agentic")])
def test_tables(kind: str, needle: str) -> None:
    res = runner.invoke(app, ["catalog", kind], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert needle in res.output
