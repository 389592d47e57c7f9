"""Kernel lab without torch: hand-counted work, tolerances, results rows, report, CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from servelab.cli import app
from servelab.errors import ConfigError
from servelab.kernels import (
    KERNEL_NAMES,
    KERNELS,
    ResultRow,
    append_rows,
    read_rows,
    tolerance,
    work_of,
)
from servelab.kernels.counts import (
    LLAMA_3_1_8B_LAYER,
    decode_attention_work,
    decode_step_work,
    matmul_work,
    rmsnorm_work,
)
from servelab.kernels.ncu import parse_ncu_csv
from servelab.kernels.timing import percentiles
from servelab.kernels.tolerances import BACKENDS, TOLERANCES

runner = CliRunner()


# --- hand-counted bytes and FLOPs -------------------------------------------------------

def test_rmsnorm_bytes_anchor():
    # 4096 rows × 8192 hidden × (1 read + 1 write) × 2 B + 8192 × 2 B weight
    w = rmsnorm_work(rows=4096, hidden=8192, dtype="bf16")
    assert w.bytes == 134_234_112
    assert w.flops == 134_217_728
    # fused residual: x, r read; s, y written
    assert rmsnorm_work(rows=4096, hidden=8192, dtype="bf16", residual=True).bytes == 268_451_840
    assert rmsnorm_work(rows=1, hidden=2048, dtype="fp32").bytes == 2048 * 4 * 3


def test_matmul_anchor():
    w = matmul_work(m=4096, n=4096, k=4096, dtype="bf16")
    assert w.flops == 137_438_953_472
    assert w.bytes == 100_663_296
    assert w.intensity_flop_per_byte == pytest.approx(4096 / 3)
    dec = matmul_work(m=1, n=6144, k=4096, dtype="bf16")     # decode: weight-read bound
    assert dec.bytes == 50_352_128
    assert dec.intensity_flop_per_byte == pytest.approx(0.9996, abs=1e-4)


def test_decode_attention_anchor():
    w = decode_attention_work(context_lens=[4096] * 32, heads_q=32, heads_kv=8, head_dim=128, dtype="bf16")
    # KV 536,870,912 + q/out 524,288 + 8192 pages × 4 B + 32 × 4 B
    assert w.bytes == 537_428_096
    assert w.flops == 2_147_483_648


def test_decode_step_anchor_matches_published_llama_size():
    # 32 layers × projection weights + 2 × 128256 × 4096 embeddings + norms = 8.03 B
    # parameters, Llama-3.1-8B's published size.
    per_layer = LLAMA_3_1_8B_LAYER.projection_weight_elements()
    assert per_layer == 218_103_808
    total = 32 * (per_layer + 2 * 4096) + 2 * 128256 * 4096 + 4096
    assert total / 1e9 == pytest.approx(8.03, abs=0.005)
    w = decode_step_work(dims=LLAMA_3_1_8B_LAYER, context_lens=[1023], dtype="bf16")
    assert w.bytes == 436_224_000 + 4_210_948 + 4_096 + 16_384


@given(a=st.lists(st.integers(1, 5000), min_size=1, max_size=6),
       b=st.lists(st.integers(1, 5000), min_size=1, max_size=6))
@settings(max_examples=50, deadline=None)
def test_attention_work_is_additive_over_sequences(a, b):
    kw = dict(heads_q=32, heads_kv=8, head_dim=128, dtype="fp16")
    wa, wb = decode_attention_work(context_lens=a, **kw), decode_attention_work(context_lens=b, **kw)
    wab = decode_attention_work(context_lens=a + b, **kw)
    assert wab.bytes == wa.bytes + wb.bytes and wab.flops == wa.flops + wb.flops


def test_every_kernel_has_work_for_every_bench_shape():
    for name, spec in KERNELS.items():
        for shape in spec.bench_shapes + spec.check_shapes:
            for dt in spec.bench_dtypes:
                w = work_of(name, shape, dt)
                assert w.bytes > 0 and w.flops > 0
    with pytest.raises(ConfigError, match="known: rmsnorm"):
        work_of("softmax", {}, "bf16")


# --- tolerances ---------------------------------------------------------------------

def test_tolerance_table_covers_every_checked_combination():
    for spec in KERNELS.values():
        for dt in spec.check_dtypes:
            for be in BACKENDS:
                t = tolerance(spec.family, dt, be)
                assert 0 < t.atol < 0.1 and 0 < t.rtol < 0.1 and t.why


def test_tolerances_order_by_precision_and_tf32():
    for fam in ("rmsnorm", "matmul", "decode_attention", "decode_step"):
        assert tolerance(fam, "fp32", "interpreter").rtol <= tolerance(fam, "fp16", "interpreter").rtol
        for be in BACKENDS:
            assert tolerance(fam, "fp16", be).rtol <= tolerance(fam, "bf16", be).rtol
    # fp32 dots: exact in the interpreter, TF32 on a GPU
    assert tolerance("matmul", "fp32", "interpreter").rtol == 1e-5
    assert tolerance("matmul", "fp32", "gpu").rtol >= 1e-3
    # bf16 rtol equals torch.testing's bf16 default (1.6e-2) for single-rounding kernels
    assert tolerance("rmsnorm", "bf16", "gpu").rtol == 1.6e-2
    assert len(TOLERANCES) == 4 * 3 * 2


def test_tolerance_errors_name_valid_values():
    with pytest.raises(ConfigError, match="known: interpreter, gpu"):
        tolerance("matmul", "bf16", "tpu")
    with pytest.raises(ConfigError, match="known: fp32, fp16, bf16"):
        tolerance("matmul", "fp8", "gpu")


# --- results rows -------------------------------------------------------------------

def _row(**kw):
    base = dict(kernel="rmsnorm", provider="triton", dtype="bf16", shape={"rows": 4096, "hidden": 8192},
                metric="latency", unit="s", p50=5e-5, p95=6e-5, p99=7e-5, n=100, gpu="TEST-GPU",
                driver="0", cuda="0", torch="0", triton="0", timestamp="2026-01-01T00:00:00+00:00",
                run_id="r1", config={"l2": "flush"})
    base.update(kw)
    return ResultRow(**base)


def test_results_row_round_trip(tmp_path):
    rows = [_row(), _row(metric="bandwidth", unit="GB/s", p50=2684.68, p95=2237.2, p99=1917.6),
            _row(metric="max_abs_err", unit="1", p50=math.nan, p95=math.nan, p99=math.nan)]
    path = tmp_path / "k.jsonl"
    assert append_rows(path, rows[:2]) == 2
    append_rows(path, rows[2:])
    back = read_rows(path)
    assert back[:2] == rows[:2]
    assert math.isnan(back[2].p50)                       # NaN stored as null, read back as NaN
    d = json.loads(path.read_text().splitlines()[0])
    for field in ("kernel", "provider", "dtype", "shape", "metric", "unit", "p50", "p95", "p99", "gpu",
                  "driver", "torch", "triton", "timestamp", "config", "schema"):
        assert field in d
    with path.open("a") as f:                            # an interrupted write
        f.write('{"kernel": "rms')
    assert len(read_rows(path)) == 3


def test_results_row_rejects_bad_metric_and_unit():
    with pytest.raises(ConfigError, match="known: latency"):
        _row(metric="speed")
    with pytest.raises(ConfigError, match="GB/s"):
        _row(metric="bandwidth", unit="GiB/s")


# --- report -------------------------------------------------------------------------

def _fixture_rows():
    """A hand-made results file: peaks 3000 GB/s and 800 TFLOP/s; triton 50 µs and eager
    100 µs on rmsnorm 4096×8192 bf16 (134,234,112 B → 2684.68 GB/s at 50 µs)."""
    shape = {"rows": 4096, "hidden": 8192}
    rows = [_row(kernel="peak_copy", provider="torch", shape={"bytes": 2**31}, metric="peak_copy_bw",
                 unit="GB/s", p50=3000.0, p95=3000.0, p99=3000.0),
            _row(kernel="peak_matmul", provider="cublas", shape={"m": 8192}, metric="peak_matmul",
                 unit="TFLOP/s", p50=800.0, p95=800.0, p99=800.0)]
    for prov, t in (("triton", 50e-6), ("eager", 100e-6)):
        gbs = 134_234_112 / t / 1e9
        rows += [_row(provider=prov, shape=shape, p50=t, p95=1.2 * t, p99=1.4 * t),
                 _row(provider=prov, shape=shape, metric="bandwidth", unit="GB/s", p50=gbs, p95=gbs / 1.2,
                      p99=gbs / 1.4),
                 _row(provider=prov, shape=shape, metric="frac_copy_bw", unit="fraction", p50=gbs / 3000,
                      p95=gbs / 3600, p99=gbs / 4200)]
    rows.append(_row(provider="triton", shape={"rows": 7, "hidden": 300}, metric="max_abs_err", unit="1",
                     p50=0.01, p95=0.01, p99=0.01, config={"passed": True, "excess": 0.4}))
    return rows


def test_summary_and_html_from_small_results_file(tmp_path):
    from servelab.report import kernels as render

    rows = _fixture_rows()
    sums = {s.provider: s for s in render.summarize(rows)}
    assert sums["triton"].vs_best_baseline == pytest.approx(2.0)
    assert sums["triton"].gb_per_s == pytest.approx(2684.68, abs=0.01)
    assert sums["triton"].frac_copy_bw == pytest.approx(0.8949, abs=1e-4)
    assert sums["triton"].intensity_flop_per_byte == pytest.approx(134_217_728 / 134_234_112)
    assert math.isnan(sums["eager"].vs_best_baseline)
    assert render.peaks_of(rows) == (3000.0, 800.0)
    html = render.html_report(rows)
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html
    assert "rmsnorm / triton" in html and "3,000 GB/s" in html


def test_report_cli(tmp_path):
    path = tmp_path / "k.jsonl"
    append_rows(path, _fixture_rows())
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["kernels", "report", str(path), "--html", str(out)])
    assert r.exit_code == 0, r.output
    assert "rmsnorm" in r.output and "3000 GB/s" in r.output
    assert "<svg" in out.read_text()
    r = runner.invoke(app, ["kernels", "report", str(path), "--json"])
    d = json.loads(r.output)
    assert d["peak_copy_gb_per_s"] == 3000.0 and len(d["summaries"]) == 2
    r = runner.invoke(app, ["kernels", "report", str(tmp_path / "missing.jsonl")])
    assert r.exit_code == 2


def test_unknown_kernel_is_a_clear_error():
    r = runner.invoke(app, ["kernels", "run", "--kernel", "softmax"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["kernels", "run", "--l2", "lukewarm"])
    assert r.exit_code == 2


def test_list_cli():
    r = runner.invoke(app, ["kernels", "list", "--json"])
    assert r.exit_code == 0
    assert [d["kernel"] for d in json.loads(r.output)] == list(KERNEL_NAMES)


# --- pure helpers -------------------------------------------------------------------

def test_percentiles_linear_interpolation():
    p50, p95, p99 = percentiles([float(i) for i in range(1, 101)])   # 1..100
    assert (p50, p95, p99) == pytest.approx((50.5, 95.05, 99.01))
    with pytest.raises(ValueError):
        percentiles([])


def test_parse_ncu_csv():
    text = ('==PROF== Connected\n"ID","Process ID","Kernel Name","Metric Name","Metric Unit","Metric Value"\n'
            '"0","1","_rmsnorm_kernel","dram__throughput.avg.pct_of_peak_sustained_elapsed","%","91.37"\n')
    assert parse_ncu_csv(text) == pytest.approx(91.37)
    assert parse_ncu_csv("no csv here") is None


# --- the base install never needs torch ----------------------------------------------

_BLOCKED = """
import sys
sys.modules['torch'] = None      # makes `import torch` fail and find_spec return None
sys.modules['triton'] = None
import servelab, servelab.kernels
from typer.testing import CliRunner
from servelab.cli import app
r = CliRunner().invoke(app, ['kernels', '--help'])
assert r.exit_code == 0, r.output
assert 'check' in r.output and 'report' in r.output
r = CliRunner().invoke(app, ['kernels', 'check'])
assert r.exit_code == 2, (r.exit_code, r.output)
print(r.output)
"""


def test_help_and_check_without_torch():
    out = subprocess.run([sys.executable, "-c", _BLOCKED], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "gpu" in out.stdout and "pip install" in out.stdout


def test_importing_the_lab_does_not_import_torch():
    code = ("import sys, servelab.kernels, servelab.report.kernels, servelab.cli; "
            "print(sorted(m for m in ('torch', 'triton') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_docs_say_gpu_numbers_are_unmeasured_until_measured():
    doc = Path(__file__).resolve().parents[1] / "docs" / "kernels.md"
    text = doc.read_text()
    for name in KERNEL_NAMES:
        assert f"`{name}`" in text
    assert "not yet measured" in text.lower() or "measured on" in text.lower()
