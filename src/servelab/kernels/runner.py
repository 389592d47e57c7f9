"""A GPU run of the lab: measured peaks, correctness, timing, results rows.

Order of a run (each step appends its rows to the results file as soon as it has them,
so an interrupted run keeps what it measured):

1. Environment (GPU, driver, CUDA, torch, triton) and the run's peaks
   (:func:`.peaks.measure_peaks`): rows ``peak_copy_bw`` and ``peak_matmul``.
2. Per kernel, correctness of every provider on the small irregular ``check`` shapes on
   the GPU (fresh inputs, poisoned outputs; rows ``max_abs_err``). A provider that fails
   is not timed.
3. Per benchmark shape and dtype: fresh inputs; each provider is checked once more at
   that shape against the fp32 reference (skipped, and said so in the row's config,
   when the reference does not fit in memory), then timed (:func:`.timing.time_cuda`);
   rows ``latency``, ``bandwidth``, ``throughput``, ``frac_copy_bw``, ``frac_matmul_peak``.
   ``decode_step`` is always timed as a CUDA-graph replay.
4. With ``ncu``: ``dram_throughput_pct`` of each Triton kernel at its first quick shape.

Needs a CUDA GPU and the ``gpu`` extra. ``run_lab(..., device="cpu", timer=time_host,
peaks_fn=...)`` runs the same pipeline through the interpreter on CPU (tests use it on
the ``check`` grid); its times are CPU wall-clock and say nothing about a GPU.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..errors import ServelabError
from ..units import GB, TFLOP
from .results import ResultRow, append_rows
from .specs import KERNEL_NAMES, get_spec

__all__ = ["RunOptions", "RunSummary", "run_lab", "time_host", "GRIDS"]


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    results: Path
    kernels: tuple[str, ...] = KERNEL_NAMES
    grid: str = "bench"          # bench | quick | check (which shapes are timed)
    reps: int = 100
    warmup: int = 10
    l2: str = "flush"
    graph: bool = False
    ncu: bool = False
    check_trials: int = 2


@dataclass(kw_only=True)
class RunSummary:
    run_id: str
    rows: int = 0
    failed_checks: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


GRIDS: tuple[str, ...] = ("bench", "quick", "check")


def time_host(fn: Callable[[], None], *, reps: int, warmup: int, l2: str, graph: bool):
    """Wall-clock per-call timer for CPU runs (``device="cpu"``: pipeline smoke tests
    through the interpreter; such numbers say nothing about a GPU)."""
    from .timing import Timing

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Timing(times_s=tuple(times), warmup=warmup, l2="host", graph=False)


def run_lab(opts: RunOptions, *, on_event: Callable[[str], None] = lambda msg: None,
            device: str = "cuda", timer: Callable[..., Any] | None = None,
            peaks_fn: Callable[[], Any] | None = None) -> RunSummary:
    """Run the lab on ``device``; ``timer`` and ``peaks_fn`` default to the CUDA-event
    timer and :func:`.peaks.measure_peaks` (a CPU run passes its own)."""
    import torch

    from .cases import build_case
    from .env import environment
    from .harness import check, check_case
    from .ncu import ncu_available, ncu_dram_pct

    if device == "cuda":
        if not torch.cuda.is_available():
            raise ServelabError("`servelab kernels run` needs a CUDA GPU; none is visible "
                                "(use `servelab kernels check` for the CPU interpreter checks)")
        from .peaks import measure_peaks
        from .timing import time_cuda
        timer = timer or time_cuda
        peaks_fn = peaks_fn or measure_peaks
    elif timer is None or peaks_fn is None:
        raise ServelabError(f"device {device!r} needs an explicit timer and peaks_fn")
    if opts.grid not in GRIDS:
        raise ServelabError(f"unknown grid {opts.grid!r}; known: {', '.join(GRIDS)}")
    for k in opts.kernels:
        get_spec(k)
    oom = torch.cuda.OutOfMemoryError

    def free() -> None:
        if device == "cuda":
            torch.cuda.empty_cache()

    summary = RunSummary(run_id=uuid.uuid4().hex[:12])
    backend = "gpu" if device == "cuda" else "interpreter"
    env = environment()

    def row(**kw: Any) -> ResultRow:
        return ResultRow(**env, run_id=summary.run_id, timestamp=_now(), **kw)

    def emit(rows: list[ResultRow]) -> None:
        summary.rows += append_rows(opts.results, rows)

    on_event("measuring peaks (copy bandwidth, cuBLAS bf16 8192³)")
    peaks = peaks_fn()
    bw_gb_s, mm_tflop_s = peaks.copy_bytes_per_s / GB, peaks.matmul_flops_per_s / TFLOP
    emit([row(kernel="peak_copy", provider="torch", dtype="bf16", shape={"bytes": 2**31},
              metric="peak_copy_bw", unit="GB/s", p50=bw_gb_s, p95=bw_gb_s, p99=bw_gb_s),
          row(kernel="peak_matmul", provider="cublas", dtype="bf16", shape={"m": 8192, "n": 8192, "k": 8192},
              metric="peak_matmul", unit="TFLOP/s", p50=mm_tflop_s, p95=mm_tflop_s, p99=mm_tflop_s)])
    base_cfg = {"device": device, "l2": opts.l2, "reps": opts.reps, "warmup": opts.warmup,
                "peak_copy_bytes_per_s": peaks.copy_bytes_per_s,
                "peak_matmul_flops_per_s": peaks.matmul_flops_per_s}

    for kernel in opts.kernels:
        spec = get_spec(kernel)
        providers = [p for p in spec.providers if device == "cuda" or p not in spec.gpu_only_providers]
        passed = _check_phase(spec, providers, opts, device, summary, row, emit, on_event, check)
        dtypes = spec.bench_dtypes if opts.grid == "bench" else spec.bench_dtypes[:1]
        shapes = {"bench": spec.bench_shapes, "quick": spec.quick_shapes, "check": spec.check_shapes}[opts.grid]
        for shape in shapes:
            for dtype in dtypes:
                try:
                    case = build_case(kernel, shape, dtype, device, seed=12345)
                except oom:
                    summary.skipped.append(f"{kernel} {shape} {dtype}: inputs do not fit")
                    free()
                    continue
                for prov in providers:
                    if not passed.get((prov, dtype), False):
                        continue
                    on_event(f"time {kernel}/{prov}/{dtype} {shape}")
                    graph = (opts.graph or kernel == "decode_step") and device == "cuda"
                    try:
                        try:
                            ok, *_rest, msg = check_case(case, lambda o, p=prov, c=case: c.run(p, o), device,
                                                         backend, spec.family)
                            check_note = "passed" if ok else f"FAILED: {msg}"
                        except oom:
                            free()
                            ok, check_note = True, "reference skipped (does not fit in memory)"
                        if not ok:
                            summary.failed_checks.append(f"{kernel}/{prov}/{dtype} {shape}: {check_note}")
                            continue
                        outs = case.alloc(device)
                        t = timer(lambda p=prov, c=case, o=outs: c.run(p, o), reps=opts.reps,
                                  warmup=opts.warmup, l2=opts.l2, graph=graph)
                    except Exception as exc:  # noqa: BLE001 — OOM, compile errors: data, not a crash
                        free()
                        summary.skipped.append(f"{kernel}/{prov} {shape} {dtype}: {type(exc).__name__}: {exc}")
                        continue
                    cfg = {**base_cfg, "graph": graph, "check": check_note}
                    emit(_timing_rows(row, spec.work(shape, dtype), t, bw_gb_s, mm_tflop_s, kernel=kernel,
                                      provider=prov, dtype=dtype, shape=shape, config=cfg))
                del case
                free()
        if opts.ncu and device == "cuda" and ncu_available():
            shape, dtype = spec.quick_shapes[0], spec.bench_dtypes[0]
            on_event(f"ncu {kernel} {shape}")
            pct = ncu_dram_pct(kernel, shape, dtype)
            if pct is not None:
                emit([row(kernel=kernel, provider="triton", dtype=dtype, shape=shape,
                          metric="dram_throughput_pct", unit="%", p50=pct, p95=pct, p99=pct,
                          config={"tool": "ncu", "clock_control": "none"})])
    return summary


def _check_phase(spec, providers, opts, device, summary, row, emit, on_event, check) -> dict[tuple[str, str], bool]:
    """Check every provider × check dtype on the irregular shapes; {(provider, dtype): passed}."""
    passed: dict[tuple[str, str], bool] = {}
    for dtype in spec.check_dtypes:
        for prov in providers:
            ok = True
            for i, shape in enumerate(spec.check_shapes):
                on_event(f"check {spec.name}/{prov}/{dtype} {shape}")
                try:
                    r = check(spec.name, prov, shape, dtype, device=device, seed=i, trials=opts.check_trials)
                except Exception as exc:  # noqa: BLE001 — a provider that cannot run is data
                    summary.skipped.append(f"{spec.name}/{prov}/{dtype}: {type(exc).__name__}: {exc}")
                    ok = False
                    break
                emit([row(kernel=spec.name, provider=prov, dtype=dtype, shape=shape, metric="max_abs_err",
                          unit="1", p50=r.max_abs_err, p95=r.max_abs_err, p99=r.max_abs_err, n=r.trials,
                          config={"phase": "check", "passed": r.passed, "excess": r.excess,
                                  "backend": r.backend, "message": r.message})])
                if not r.passed:
                    summary.failed_checks.append(f"{spec.name}/{prov}/{dtype} {shape}: {r.message}")
                    ok = False
            passed[(prov, dtype)] = ok
    return passed


def _timing_rows(row, work, t, bw_gb_s: float, mm_tflop_s: float, *, config: dict[str, Any],
                 **common: Any) -> list[ResultRow]:
    """latency, bandwidth, throughput and fractions of the measured peaks for one timing."""
    cfg = {**config, "bytes": work.bytes, "flops": work.flops}
    lat = (t.p50_s, t.p95_s, t.p99_s)
    gbs = [work.bytes / x / GB for x in lat]
    tfs = [work.flops / x / TFLOP for x in lat]
    series = {"latency": ("s", lat), "bandwidth": ("GB/s", gbs), "throughput": ("TFLOP/s", tfs),
              "frac_copy_bw": ("fraction", [g / bw_gb_s for g in gbs]),
              "frac_matmul_peak": ("fraction", [f / mm_tflop_s for f in tfs])}
    return [row(metric=m, unit=u, p50=v[0], p95=v[1], p99=v[2], n=len(t.times_s), config=cfg, **common)
            for m, (u, v) in series.items()]
