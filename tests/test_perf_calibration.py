"""Calibration set integrity and an accuracy guard against published TRT-LLM throughput."""

import importlib.util
from pathlib import Path

import pytest

from servelab.catalog import get_gpu, get_model
from servelab.perf import Efficiency
from servelab.perf.quant import KV_DTYPES, WEIGHT_DTYPES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cal():
    spec = importlib.util.spec_from_file_location("calibrate", ROOT / "benchmarks" / "calibrate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_row_is_sourced_and_resolvable(cal):
    rows = cal.load_rows()
    assert len(rows) >= 400
    for r in rows:
        assert r["source"].startswith("https://github.com/NVIDIA/TensorRT-LLM/blob/")
        assert r["trtllm_version"] in ("v0.17", "v1.0") and r["per"].startswith("total")
        assert r["output_tokens_per_s"] > 0 and r["isl"] > 0 and r["osl"] > 0
        assert r["dtype"] in WEIGHT_DTYPES and r["kv_dtype"] in KV_DTYPES
        get_model(r["model"]), get_gpu(r["gpu"])
    # spot checks against the published tables (v0.17: 8B H100 FP8 128/128; v1.0: 405B H100 TP8)
    by = {(r["model"], r["gpu"], r["tp"], r["isl"], r["osl"], r["trtllm_version"]): r["output_tokens_per_s"]
          for r in rows}
    assert by[("llama-3.1-8b", "h100-sxm", 1, 128, 128, "v0.17")] == 28836.77
    assert by[("llama-3.1-405b", "h100-sxm", 8, 2048, 2048, "v1.0")] == 2296


def test_default_efficiencies_stay_calibrated(cal):
    rows = cal.load_rows()
    prepared = [cal.prepare(r) for r in rows]
    preds = [cal.predict(p, r, Efficiency()) for p, r in zip(prepared, rows)]
    groups = cal.split_errors(rows, preds)
    # docs/perf.md reports 7.4 % (train), 9.6 % (validate rows), 5.7 % (H200 v0.17 dense),
    # 8.0 % (all H200), 8.7 % (Mixtral) for the shipped global defaults
    assert groups["train"]["mdape_pct"] < 9.0
    assert groups["held_out"]["mdape_pct"] < 12.0
    assert groups["held_out_h200_v0.17_dense"]["mdape_pct"] < 8.0
    assert groups["held_out_h200_all"]["mdape_pct"] < 10.0
    assert groups["held_out_moe_mixtral_v0.17"]["mdape_pct"] < 11.0
