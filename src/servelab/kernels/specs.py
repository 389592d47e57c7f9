"""The lab's kernels by name: providers, dtypes, check and benchmark shapes, and work.

One name per kernel, used by the kernel module, the tests, the benchmark and the results
rows. This module is torch-free, so the CLI can list kernels and the report can compute
bytes and FLOPs without the ``gpu`` extra.

Shapes are dicts. ``check`` shapes are small and irregular (not multiples of any block
size) so that masking is exercised; the interpreter runs them on CPU in seconds.
``bench`` shapes are LLM-shaped (Llama-2-7B / Llama-3.1-8B dimensions); ``quick`` is a
subset. Decode-attention check shapes are *ragged*: each check draws fresh random
context lengths in [1, context] (the longest forced to ``context``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Any, Callable

from ..errors import ConfigError
from .counts import (
    LLAMA_3_1_8B_LAYER,
    LayerDims,
    Work,
    decode_attention_work,
    decode_step_work,
    matmul_work,
    rmsnorm_work,
)

__all__ = ["KernelSpec", "KERNELS", "KERNEL_NAMES", "get_spec", "work_of", "TINY_LAYER",
           "layer_dims", "check_jobs", "kernel_listing", "kernel_names"]

Shape = dict[str, Any]

# A tiny layer for interpreter checks of the composed decode step (irregular sizes).
TINY_LAYER = LayerDims(hidden=72, heads=4, kv_heads=2, head_dim=24, ffn=100)


@dataclass(frozen=True, kw_only=True)
class KernelSpec:
    name: str
    family: str                       # tolerance family (see tolerances)
    providers: tuple[str, ...]        # "triton" first, then the baselines
    check_dtypes: tuple[str, ...]
    bench_dtypes: tuple[str, ...]
    check_shapes: tuple[Shape, ...]
    bench_shapes: tuple[Shape, ...]
    quick_shapes: tuple[Shape, ...]
    work: Callable[[Shape, str], Work]
    gpu_only_providers: tuple[str, ...] = ("compile",)
    description: str = ""


def layer_dims(shape: Shape) -> LayerDims:
    return TINY_LAYER if shape.get("layer") == "tiny" else LLAMA_3_1_8B_LAYER


def _rms_work(residual: bool) -> Callable[[Shape, str], Work]:
    return lambda s, dt: rmsnorm_work(rows=s["rows"], hidden=s["hidden"], dtype=dt, residual=residual)


def _attn_work(s: Shape, dt: str) -> Work:
    # Benchmarks use uniform contexts; ragged check shapes are counted at their maximum.
    return decode_attention_work(context_lens=[s["context"]] * s["batch"], heads_q=s["heads_q"],
                                 heads_kv=s["heads_kv"], head_dim=s["head_dim"], dtype=dt)


def _step_work(s: Shape, dt: str) -> Work:
    return decode_step_work(dims=layer_dims(s), context_lens=[s["context"]] * s["batch"], dtype=dt)


_RMS_CHECK = ({"rows": 7, "hidden": 300}, {"rows": 1, "hidden": 1000}, {"rows": 5, "hidden": 2048})
_RMS_BENCH = tuple({"rows": r, "hidden": h} for r, h in product((1, 128, 4096, 32768), (2048, 4096, 8192, 16384)))
_RMS_QUICK = ({"rows": 4096, "hidden": 4096}, {"rows": 4096, "hidden": 8192})

_MM_CHECK = ({"m": 37, "n": 53, "k": 71}, {"m": 1, "n": 45, "k": 64}, {"m": 8, "n": 100, "k": 33},
             {"m": 70, "n": 96, "k": 130})
# Llama-2-7B MLP (4096→11008) at 512 tokens, square 4096 and 8192, and decode-shaped
# M ∈ {1, 8, 32, 128} on Llama-3.1-8B's QKV (4096→6144) and gate/up (4096→28672).
_MM_BENCH = (({"m": 512, "n": 11008, "k": 4096}, {"m": 4096, "n": 4096, "k": 4096},
              {"m": 8192, "n": 8192, "k": 8192})
             + tuple({"m": m, "n": n, "k": 4096} for n, m in product((6144, 28672), (1, 8, 32, 128))))
_MM_QUICK = ({"m": 512, "n": 11008, "k": 4096}, {"m": 4096, "n": 4096, "k": 4096},
             {"m": 8, "n": 6144, "k": 4096})

_GQA = {"heads_q": 32, "heads_kv": 8, "head_dim": 128}   # Llama-3.1-8B attention
_ATTN_CHECK = ({"batch": 3, "context": 200, "heads_q": 6, "heads_kv": 2, "head_dim": 24, "ragged": True},
               {"batch": 2, "context": 77, "heads_q": 4, "heads_kv": 4, "head_dim": 16, "ragged": True},
               {"batch": 1, "context": 1, "heads_q": 8, "heads_kv": 1, "head_dim": 32, "ragged": True})
_ATTN_BENCH = tuple({"batch": b, "context": c, **_GQA}
                    for b, c in product((1, 8, 32, 128), (512, 4096, 32768)))
_ATTN_QUICK = ({"batch": 1, "context": 4096, **_GQA}, {"batch": 32, "context": 4096, **_GQA})

_STEP_CHECK = ({"batch": 3, "context": 40, "layer": "tiny"}, {"batch": 1, "context": 17, "layer": "tiny"})
_STEP_BENCH = tuple({"batch": b, "context": c, "layer": "llama-3.1-8b"}
                    for b, c in product((1, 8, 32, 64), (1024, 4096)))
_STEP_QUICK = ({"batch": 1, "context": 1024, "layer": "llama-3.1-8b"},
               {"batch": 32, "context": 1024, "layer": "llama-3.1-8b"})

_ALL = ("fp32", "fp16", "bf16")

KERNELS: dict[str, KernelSpec] = {s.name: s for s in (
    KernelSpec(name="rmsnorm", family="rmsnorm", providers=("triton", "eager", "functional", "compile"),
               check_dtypes=_ALL, bench_dtypes=("bf16", "fp16", "fp32"), check_shapes=_RMS_CHECK,
               bench_shapes=_RMS_BENCH, quick_shapes=_RMS_QUICK, work=_rms_work(False),
               description="RMSNorm forward"),
    KernelSpec(name="rmsnorm_residual", family="rmsnorm",
               providers=("triton", "eager", "functional", "compile"), check_dtypes=_ALL,
               bench_dtypes=("bf16",), check_shapes=_RMS_CHECK, bench_shapes=_RMS_BENCH,
               quick_shapes=_RMS_QUICK, work=_rms_work(True),
               description="RMSNorm forward with fused residual add"),
    KernelSpec(name="matmul", family="matmul", providers=("triton", "cublas"), check_dtypes=_ALL,
               bench_dtypes=("bf16", "fp16"), check_shapes=_MM_CHECK, bench_shapes=_MM_BENCH,
               quick_shapes=_MM_QUICK, work=lambda s, dt: matmul_work(m=s["m"], n=s["n"], k=s["k"], dtype=dt),
               description="matmul, tiled schedule"),
    KernelSpec(name="matmul_persistent", family="matmul", providers=("triton", "cublas"),
               check_dtypes=_ALL, bench_dtypes=("bf16", "fp16"), check_shapes=_MM_CHECK,
               bench_shapes=_MM_BENCH, quick_shapes=_MM_QUICK,
               work=lambda s, dt: matmul_work(m=s["m"], n=s["n"], k=s["k"], dtype=dt),
               description="matmul, persistent schedule"),
    KernelSpec(name="decode_attention", family="decode_attention",
               providers=("triton", "eager", "sdpa", "sdpa_dense", "compile"), check_dtypes=_ALL,
               bench_dtypes=("bf16",), check_shapes=_ATTN_CHECK, bench_shapes=_ATTN_BENCH,
               quick_shapes=_ATTN_QUICK, work=_attn_work,
               description="paged split-K decode attention (GQA, page 16)"),
    KernelSpec(name="decode_step", family="decode_step", providers=("triton", "eager"),
               check_dtypes=("fp32", "bf16"), bench_dtypes=("bf16",), check_shapes=_STEP_CHECK,
               bench_shapes=_STEP_BENCH, quick_shapes=_STEP_QUICK, work=_step_work,
               description="one decoder layer's decode step (CUDA-graph replay on GPU)"),
)}

KERNEL_NAMES: tuple[str, ...] = tuple(KERNELS)


def get_spec(name: str) -> KernelSpec:
    try:
        return KERNELS[name]
    except KeyError:
        raise ConfigError(f"unknown kernel {name!r}; known: {', '.join(KERNEL_NAMES)}") from None


def work_of(kernel: str, shape: Shape, dtype: str) -> Work:
    """Hand-counted bytes and FLOPs of ``kernel`` at ``shape`` in ``dtype``."""
    return get_spec(kernel).work(shape, dtype)


def check_jobs(names: list[str] | tuple[str, ...], device: str) -> list[tuple[str, str, str, int, Shape]]:
    """``(kernel, provider, dtype, shape index, shape)`` for every correctness check of
    ``names`` on ``device`` (``cpu`` leaves out the GPU-only providers); the index seeds
    the check's inputs."""
    return [(n, p, dt, i, sh) for n in names for dt in KERNELS[n].check_dtypes
            for p in KERNELS[n].providers if not (device == "cpu" and p in KERNELS[n].gpu_only_providers)
            for i, sh in enumerate(KERNELS[n].check_shapes)]


def kernel_listing() -> list[dict[str, Any]]:
    """One JSON-ready entry per kernel: description, providers, dtypes, shape counts."""
    return [{"kernel": s.name, "description": s.description, "providers": list(s.providers),
             "check_dtypes": list(s.check_dtypes), "bench_dtypes": list(s.bench_dtypes),
             "check_shapes": len(s.check_shapes), "bench_shapes": len(s.bench_shapes)}
            for s in KERNELS.values()]


def kernel_names(names: list[str] | None) -> list[str]:
    """``names`` (default: every kernel), each checked by :func:`get_spec`."""
    names = names or list(KERNEL_NAMES)
    for n in names:
        get_spec(n)
    return names
