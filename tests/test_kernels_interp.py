"""Kernel correctness on CPU through Triton's interpreter (TRITON_INTERPRET=1).

Skipped when the ``gpu`` extra (torch, triton) is not installed. The interpreter is
selected before triton is imported (Triton fixes it at decoration time), so this module
must not import triton before ``use_interpreter``.
"""

from __future__ import annotations

import importlib.util
import math

import pytest

if importlib.util.find_spec("torch") is None or importlib.util.find_spec("triton") is None:
    pytest.skip("needs the gpu extra (torch, triton)", allow_module_level=True)

from servelab.kernels._deps import use_interpreter  # noqa: E402

use_interpreter(True)

import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from servelab.cli import app  # noqa: E402
from servelab.errors import ServelabError  # noqa: E402
from servelab.kernels import KERNELS, tolerance  # noqa: E402
from servelab.kernels.cases import build_case  # noqa: E402
from servelab.kernels.decode_attention import decode_attention  # noqa: E402
from servelab.kernels.harness import check, check_case, compare, poison  # noqa: E402
from servelab.kernels.matmul import gpu_config, matmul, matmul_persistent  # noqa: E402

CASES = [(name, dt, i, shape) for name, spec in KERNELS.items() for dt in spec.check_dtypes
         for i, shape in enumerate(spec.check_shapes)]


@pytest.mark.parametrize("kernel,dtype,seed,shape", CASES,
                         ids=[f"{n}-{d}-{i}" for n, d, i, _ in CASES])
def test_triton_kernel_matches_reference(kernel, dtype, seed, shape):
    r = check(kernel, "triton", shape, dtype, device="cpu", seed=seed, trials=2)
    assert r.backend == "interpreter"
    assert r.passed, r.message
    assert r.nonfinite == 0 and r.excess <= 1.0


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_cpu_baselines_match_reference(kernel):
    spec = KERNELS[kernel]
    for prov in spec.providers[1:]:
        if prov in spec.gpu_only_providers:
            continue
        r = check(kernel, prov, spec.check_shapes[0], "bf16", device="cpu", seed=7, trials=1)
        assert r.passed, (prov, r.message)


# --- the checker itself must be able to fail ----------------------------------------

def _case():
    return build_case("rmsnorm", {"rows": 5, "hidden": 96}, "bf16", "cpu", seed=3)


def test_poisoning_catches_an_untouched_output():
    case = _case()
    ok, _, _, nonfinite, msg = check_case(case, lambda outs: None, "cpu", "interpreter", "rmsnorm")
    assert not ok and nonfinite == 5 * 96 and "non-finite" in msg


def test_broken_launchers_fail():
    case = _case()

    def zeros(outs):
        outs["y"].zero_()

    def skips_last_row(outs):
        full = {"y": torch.empty_like(outs["y"])}
        case.run("triton", full)
        outs["y"][:-1] = full["y"][:-1]

    def scaled(outs):      # every element 23% low
        outs["y"].copy_(case.reference()["y"] / 1.3)

    for broken in (zeros, skips_last_row, scaled):
        ok, *_ = check_case(case, broken, "cpu", "interpreter", "rmsnorm")
        assert not ok, broken.__name__
    ok, *_ = check_case(case, lambda o: case.run("triton", o), "cpu", "interpreter", "rmsnorm")
    assert ok


def test_poison_fills_nan():
    outs = {"a": torch.zeros(3, dtype=torch.bfloat16), "b": torch.zeros(2)}
    poison(outs)
    assert all(torch.isnan(t).all() for t in outs.values())


@given(scale=st.floats(0.1, 100.0), where=st.integers(0, 63))
@settings(max_examples=30, deadline=None)
def test_nan_never_passes_and_small_errors_do(scale, where):
    ref = torch.randn(64, generator=torch.Generator().manual_seed(where)) * scale
    tol = tolerance("matmul", "bf16", "interpreter")
    assert compare(ref.to(torch.bfloat16), ref, tol)[0]          # one rounding passes
    y = ref.clone()
    y[where] = math.nan
    assert not compare(y, ref, tol)[0]
    y = ref.clone()
    y[where] = math.inf
    assert not compare(y, ref, tol)[0]
    y = ref * 1.1 + 0.05                                        # a 10% error fails
    assert not compare(y, ref, tol)[0]


def test_interpreter_mode_cannot_be_switched_after_import():
    with pytest.raises(ServelabError, match="already imported"):
        use_interpreter(False)


# --- kernel-specific properties -----------------------------------------------------

def test_decode_attention_result_does_not_depend_on_split_count():
    g = torch.Generator().manual_seed(5)
    lens = [3, 130, 64]
    pages = [-(-c // 16) for c in lens]
    table = torch.zeros(3, max(pages), dtype=torch.int32)
    perm = torch.randperm(sum(pages), generator=g)
    i = 0
    for b, p in enumerate(pages):
        table[b, :p] = perm[i:i + p]
        i += p
    kc = torch.randn(sum(pages), 16, 2, 16, generator=g)
    vc = torch.randn(sum(pages), 16, 2, 16, generator=g)
    q = torch.randn(3, 4, 16, generator=g)
    cl = torch.tensor(lens, dtype=torch.int32)
    outs = [decode_attention(q, kc, vc, table, cl, max_context=130, num_splits=s) for s in (1, 2, 3)]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], atol=1e-5, rtol=1e-5)


def test_matmul_accepts_strided_inputs():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(40, 70, generator=g)[:, :37]           # non-contiguous rows
    b = torch.randn(50, 37, generator=g).t()               # transposed (column-major) B
    torch.testing.assert_close(matmul(a, b), a @ b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("m", [1, 8, 32, 128, 300])
def test_matmul_gpu_tile_configs_are_valid_programs(m):
    # The GPU path's tile shapes, run in the interpreter on a small irregular problem
    # (132 SMs as on an H100 SXM); warps/stages only matter when compiled.
    g = torch.Generator().manual_seed(m)
    a = torch.randn(m, 100, generator=g).to(torch.bfloat16)
    b = (torch.randn(100, 300, generator=g) / 10).to(torch.bfloat16)
    ref = a.float() @ b.float()
    tol = tolerance("matmul", "bf16", "interpreter")
    for fn in (matmul, matmul_persistent):
        cfg = gpu_config(m, 300, 100, 132)
        out = torch.full((m, 300), math.nan, dtype=torch.bfloat16)
        fn(a, b, out=out, config=cfg)
        assert compare(out, ref, tol)[0], (fn.__name__, cfg)


def test_run_pipeline_on_cpu_writes_consistent_rows(tmp_path):
    # The GPU run's pipeline (checks, per-shape check, timing, rows) on CPU through the
    # interpreter, with a host timer and placeholder peaks (1 GB/s, 10 GFLOP/s).
    from servelab.kernels import read_rows
    from servelab.kernels.peaks import Peaks
    from servelab.report.kernels import html_report, summarize
    from servelab.kernels.runner import RunOptions, run_lab, time_host

    res = tmp_path / "k.jsonl"
    opts = RunOptions(results=res, kernels=("rmsnorm", "decode_attention"), grid="check", reps=3,
                      warmup=1, check_trials=1)
    peaks = Peaks(copy_bytes_per_s=1e9, matmul_flops_per_s=1e10, copy_p50_s=0.0, matmul_p50_s=0.0)
    summary = run_lab(opts, device="cpu", timer=time_host, peaks_fn=lambda: peaks)
    assert not summary.failed_checks and not summary.skipped
    rows = read_rows(res)
    assert summary.rows == len(rows)
    lat = [r for r in rows if r.metric == "latency"]
    # rmsnorm: 3 shapes × (triton, eager, functional); attention: 3 × (triton, eager, sdpa, sdpa_dense)
    assert len(lat) == 3 * 3 + 3 * 4
    assert all(r.config["check"] == "passed" and 0 < r.p50 <= r.p95 <= r.p99 for r in lat)
    for r in lat:   # every rate row agrees with the latency row and the hand counts
        bw = next(x for x in rows if x.metric == "bandwidth" and x.kernel == r.kernel
                  and x.provider == r.provider and x.shape == r.shape)
        assert bw.p50 == pytest.approx(r.config["bytes"] / r.p50 / 1e9)
        frac = next(x for x in rows if x.metric == "frac_copy_bw" and x.kernel == r.kernel
                    and x.provider == r.provider and x.shape == r.shape)
        assert frac.p50 == pytest.approx(bw.p50 / 1.0)
    checks = [r for r in rows if r.metric == "max_abs_err"]
    assert checks and all(c.config["passed"] for c in checks)
    assert len(summarize(rows)) == len(lat)
    assert "<svg" in html_report(rows)


# --- CLI ----------------------------------------------------------------------------

def test_check_cli_on_interpreter():
    r = CliRunner().invoke(app, ["kernels", "check", "--kernel", "matmul", "--trials", "1", "--json"])
    assert r.exit_code == 0, r.output
    import json
    d = json.loads(r.output)
    assert d["passed"] and d["failed"] == 0
    assert {x["provider"] for x in d["results"]} == {"triton", "cublas"}
    assert all(x["backend"] == "interpreter" for x in d["results"])


@pytest.mark.slow
def test_compile_baseline_on_cpu():
    # torch.compile through Inductor's CPU backend (needs a C++ compiler; ~40 s cold).
    import shutil
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("no C++ compiler for Inductor's CPU backend")
    r = check("rmsnorm", "compile", KERNELS["rmsnorm"].check_shapes[0], "bf16", device="cpu", trials=1)
    assert r.passed, r.message
