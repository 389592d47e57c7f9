"""The GPU kernel lab: Triton kernels for LLM-shaped primitives, checked and timed.

Kernels (one name across kernel, test, benchmark and results rows; see ``specs``):
``rmsnorm``, ``rmsnorm_residual``, ``matmul`` (tiled), ``matmul_persistent``,
``decode_attention`` (paged, split-K, GQA) and ``decode_step`` (one decoder layer's
decode step composed from them, replayed as a CUDA graph).

Torch-free modules (importable with the base install): ``specs`` (names, shapes,
providers), ``counts`` (hand-counted bytes and FLOPs), ``tolerances``, ``results``
(the JSONL results rows, defined in ``servelab.kernelrows``), ``env``, ``ncu``, Tables, the roofline and the HTML page of a results file are in ``servelab.report.kernels``.
``timing.percentiles``. Modules needing the ``gpu`` extra (torch, triton), imported
only on demand: ``rmsnorm``, ``matmul``, ``decode_attention``, ``decode_step``,
``cases``, ``harness``, ``peaks``, ``runner``. Triton's CPU interpreter is chosen with
``_deps.use_interpreter`` before those are imported (``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

from ._deps import GpuExtraMissing, gpu_extra_available, require_gpu_extra, use_interpreter
from .counts import Work, decode_attention_work, decode_step_work, matmul_work, rmsnorm_work
from .results import SCHEMA, ResultRow, append_rows, read_rows
from .specs import KERNEL_NAMES, KERNELS, KernelSpec, get_spec, work_of
from .tolerances import Tolerance, tolerance

__all__ = [
    "KERNEL_NAMES", "KERNELS", "KernelSpec", "get_spec", "work_of",
    "Work", "rmsnorm_work", "matmul_work", "decode_attention_work", "decode_step_work",
    "Tolerance", "tolerance", "SCHEMA", "ResultRow", "append_rows", "read_rows",
    "GpuExtraMissing", "gpu_extra_available", "require_gpu_extra", "use_interpreter",
]
