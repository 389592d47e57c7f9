"""Peaks measured on the GPU at hand, at the start of every run.

- Copy bandwidth: ``dst.copy_(src)`` of a 2 GiB buffer (40× an H100/H200 L2), counted as
  2 × buffer bytes (one read, one write) per call → bytes/s. This is the practical
  ceiling for a streaming kernel; it is below the datasheet HBM figure.
- Matmul peak: ``torch.matmul`` (cuBLAS) of 8192×8192×8192 bf16, 2·8192³ FLOPs per
  call → FLOP/s. Ceiling for the lab's matmuls, below the datasheet dense bf16 figure
  (clock throttling under sustained load, kernel efficiency).

Both report the p50 call. Needs a CUDA GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..units import GiB
from .timing import time_cuda

__all__ = ["Peaks", "COPY_BUFFER_BYTES", "MATMUL_PEAK_N", "measure_peaks"]

COPY_BUFFER_BYTES = 2 * GiB
MATMUL_PEAK_N = 8192


@dataclass(frozen=True, kw_only=True)
class Peaks:
    copy_bytes_per_s: float
    matmul_flops_per_s: float
    copy_p50_s: float
    matmul_p50_s: float


def _time_copy(reps: int):
    import torch

    src = torch.empty(COPY_BUFFER_BYTES // 2, dtype=torch.bfloat16, device="cuda").normal_()
    dst = torch.empty_like(src)
    return time_cuda(lambda: dst.copy_(src), reps=reps, warmup=5, l2="warm")


def _time_matmul(n: int, reps: int):
    import torch

    a = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    c = torch.empty_like(a)
    return time_cuda(lambda: torch.matmul(a, b, out=c), reps=reps, warmup=5, l2="warm")


def measure_peaks(*, reps: int = 50) -> Peaks:
    """Copy bandwidth and cuBLAS bf16 peak of the current GPU (buffers freed in between)."""
    t_copy = _time_copy(reps)
    n = MATMUL_PEAK_N
    t_mm = _time_matmul(n, reps)
    return Peaks(copy_bytes_per_s=2 * COPY_BUFFER_BYTES / t_copy.p50_s,
                 matmul_flops_per_s=2.0 * n ** 3 / t_mm.p50_s,
                 copy_p50_s=t_copy.p50_s, matmul_p50_s=t_mm.p50_s)
