"""Efficiency bounds from kernel-lab rows, and the calibration file round trip."""

from __future__ import annotations

import json

import pytest

from servelab.calibrate import (
    calibration_dict,
    efficiency_from_kernels,
    load_calibration,
    write_calibration,
)
from servelab.catalog import get_gpu
from servelab.errors import ConfigError
from servelab.kernels.results import ResultRow
from servelab.perf import Efficiency


def row(metric, unit, p50, *, kernel="peak", provider="torch", dtype="bf16", gpu="NVIDIA H100 80GB HBM3"):
    return ResultRow(kernel=kernel, provider=provider, dtype=dtype, shape={}, metric=metric, unit=unit,
                     p50=p50, p95=p50, p99=p50, gpu=gpu)


def test_bounds_from_peak_rows_hand_computed():
    rows = [row("peak_copy_bw", "GB/s", 2900.0, kernel="peak_copy"),
            row("peak_copy_bw", "GB/s", 2800.0, kernel="peak_copy"),   # a slower run: the best counts
            row("peak_matmul", "TFLOP/s", 700.0, kernel="peak_matmul", provider="cublas"),
            row("latency", "s", 1e-5, kernel="rmsnorm")]
    kb = efficiency_from_kernels(rows, get_gpu("h100-sxm"))
    # H100 SXM datasheet: 3.35 TB/s HBM3, 989.4 dense bf16 TFLOP/s (catalog)
    assert kb.bounds["memory"].upper == pytest.approx(2900 / 3350)        # 0.8657
    assert kb.bounds["compute"].upper == pytest.approx(700 / 989.4)       # 0.7075
    assert kb.bounds["memory"].row["p50"] == 2900.0
    assert "peak_copy_bw" in kb.bounds["memory"].source
    assert kb.devices == ("NVIDIA H100 80GB HBM3",) and kb.notes == ()


def test_fallback_to_kernel_bandwidth_and_matmul_throughput_rows():
    rows = [row("bandwidth", "GB/s", 2500.0, kernel="rmsnorm", provider="triton"),
            row("throughput", "TFLOP/s", 600.0, kernel="matmul", provider="triton"),
            row("throughput", "TFLOP/s", 1200.0, kernel="matmul", provider="triton", dtype="fp8")]
    kb = efficiency_from_kernels([r.to_dict() for r in rows], get_gpu("h100-sxm"))
    assert kb.bounds["memory"].upper == pytest.approx(2500 / 3350)
    assert kb.bounds["compute"].upper == pytest.approx(600 / 989.4)   # bf16 row, not the fp8 one
    assert "rmsnorm" in kb.bounds["memory"].source


def test_rows_faster_than_the_datasheet_are_flagged():
    kb = efficiency_from_kernels([row("peak_copy_bw", "GB/s", 4200.0)], get_gpu("h100-sxm"))
    assert kb.bounds["memory"].upper > 1.0 and "another GPU" in kb.notes[0]


def test_no_usable_rows_is_an_error_naming_what_is_needed():
    with pytest.raises(ConfigError, match="peak_copy_bw"):
        efficiency_from_kernels([row("latency", "s", 1e-5)], get_gpu("h100-sxm"))


def test_calibration_file_round_trip(tmp_path):
    eff = Efficiency(memory=0.55, compute=0.5, step_overhead_s=3e-3)
    p = write_calibration(tmp_path / "c.json", calibration_dict(efficiency=eff))
    assert load_calibration(p) == eff


@pytest.mark.parametrize("content, match", [
    ("not json", "not JSON"),
    ('{"schema": "other/1"}', "schema 'other/1'"),
    ('{"schema": "servelab.calibration/1", "efficiency": {"memroy": 0.5}}', "unknown efficiency fields"),
    ('{"schema": "servelab.calibration/1", "efficiency": {"memory": 1.5}}', r"memory=1.5 must be a fraction"),
    ('{"schema": "servelab.calibration/1", "efficiency": {"step_overhead_s": -1}}', "must be >= 0"),
    ('{"schema": "servelab.calibration/1", "kernel_bounds": {}}', "no 'efficiency'"),
])
def test_bad_calibration_files_are_refused(tmp_path, content, match):
    p = tmp_path / "c.json"
    p.write_text(content)
    with pytest.raises(ConfigError, match=match):
        load_calibration(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_calibration(tmp_path / "missing.json")


def test_kernel_bounds_only_file_has_bounds_and_no_model(tmp_path):
    kb = efficiency_from_kernels([row("peak_copy_bw", "GB/s", 2900.0)], get_gpu("h100-sxm"))
    d = calibration_dict(kernel_bounds=kb)
    assert "efficiency" not in d
    assert json.loads(json.dumps(d))["kernel_bounds"]["bounds"]["memory"]["upper"] == pytest.approx(2900 / 3350)
