"""Upper bounds on efficiency parameters from the kernel lab's measured peaks.

The kernel lab (docs/kernels.md) measures, at the start of every run, the practical
ceilings of the GPU at hand and writes them as result rows:

* ``peak_copy_bw`` [GB/s]: ``dst.copy_(src)`` of a 2 GiB buffer, counted as read +
  write bytes; the fastest a streaming kernel moves HBM data on that device;
* ``peak_matmul`` [TFLOP/s]: cuBLAS bf16 8192³ matmul; the fastest dense GEMM.

A serving engine's weight reads and GEMMs cannot beat those, so::

    memory  ≤ copy_bytes_per_s  / GPU.hbm_bytes_per_s       (datasheet HBM bandwidth)
    compute ≤ matmul_flops_per_s / peak_flops(GPU, dtype)   (datasheet dense bf16)

Where a file holds several runs, the best (largest p50) measurement is used: a bound
must hold for every run. Without ``peak_*`` rows, the best ``bandwidth`` row of any
kernel and the best ``throughput`` row of a matmul kernel in ``dtype`` stand in (they
are lower, hence tighter but less certain bounds; ``source`` says which was used).
Units: bytes/s and FLOP/s internally; rows carry GB/s (1e9) and TFLOP/s (1e12).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..catalog.gpus import GPU
from ..errors import ConfigError
from ..perf.quant import peak_flops
from ..units import GB, TFLOP

__all__ = ["EfficiencyBound", "KernelBounds", "efficiency_from_kernels"]


@dataclass(frozen=True, kw_only=True)
class EfficiencyBound:
    param: str                    # "memory" | "compute"
    upper: float                  # measured / datasheet
    measured: float               # bytes/s or FLOP/s
    datasheet: float              # bytes/s or FLOP/s
    unit: str                     # "bytes/s" | "FLOP/s"
    source: str                   # which metric the measurement came from
    row: dict[str, Any]           # the result row it came from


@dataclass(frozen=True, kw_only=True)
class KernelBounds:
    gpu: str
    bounds: dict[str, EfficiencyBound]
    devices: tuple[str, ...]      # device names found in the rows (nvidia-smi names)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"gpu": self.gpu, "devices": list(self.devices), "notes": list(self.notes),
                "bounds": {k: {"upper": b.upper, "measured": b.measured, "datasheet": b.datasheet,
                               "unit": b.unit, "source": b.source, "row": b.row}
                           for k, b in self.bounds.items()}}


def _as_dict(row: Any) -> dict[str, Any]:
    if isinstance(row, Mapping):
        return dict(row)
    if hasattr(row, "to_dict"):
        return row.to_dict()
    raise ConfigError(f"not a kernel result row: {row!r}")


def _best(rows: list[dict[str, Any]], metric: str, *, kernel_prefix: str = "",
          dtype: str | None = None) -> dict[str, Any] | None:
    cands = [r for r in rows if r.get("metric") == metric
             and str(r.get("kernel", "")).startswith(kernel_prefix)
             and (dtype is None or r.get("dtype") == dtype)
             and isinstance(r.get("p50"), (int, float)) and math.isfinite(r["p50"]) and r["p50"] > 0]
    return max(cands, key=lambda r: r["p50"]) if cands else None


def efficiency_from_kernels(rows: Iterable[Any], gpu: GPU, *, dtype: str = "bf16") -> KernelBounds:
    """Memory and compute efficiency upper bounds of ``gpu`` from kernel-lab rows
    (``kernels.results.ResultRow`` or their dicts). Raises ``ConfigError`` when no
    row gives either bound."""
    rs = [_as_dict(r) for r in rows]
    bounds: dict[str, EfficiencyBound] = {}
    notes: list[str] = []
    bw = _best(rs, "peak_copy_bw")
    bw_source = "peak_copy_bw (copy of a 2 GiB buffer, read + write)"
    if bw is None and (bw := _best(rs, "bandwidth")) is not None:
        bw_source = f"bandwidth of kernel {bw.get('kernel')!r} (no peak_copy_bw row)"
    if bw is not None:
        measured = float(bw["p50"]) * GB
        bounds["memory"] = EfficiencyBound(param="memory", upper=measured / gpu.hbm_bytes_per_s,
                                           measured=measured, datasheet=gpu.hbm_bytes_per_s,
                                           unit="bytes/s", source=bw_source, row=bw)
    mm = _best(rs, "peak_matmul", dtype=dtype)
    mm_source = f"peak_matmul (cuBLAS {dtype} 8192³)"
    if mm is None and (mm := _best(rs, "throughput", kernel_prefix="matmul", dtype=dtype)) is not None:
        mm_source = f"throughput of kernel {mm.get('kernel')!r} (no peak_matmul row)"
    if mm is not None:
        measured = float(mm["p50"]) * TFLOP
        peak = peak_flops(gpu, dtype)
        bounds["compute"] = EfficiencyBound(param="compute", upper=measured / peak, measured=measured,
                                            datasheet=peak, unit="FLOP/s", source=mm_source, row=mm)
    if not bounds:
        metrics = sorted({str(r.get("metric")) for r in rs}) or ["none"]
        raise ConfigError(
            f"no kernel row gives an efficiency bound ({len(rs)} rows; metrics: {', '.join(metrics)}); "
            "needed: peak_copy_bw or bandwidth (memory), peak_matmul or matmul throughput in "
            f"{dtype} (compute) — run `servelab kernels run` on the GPU")
    for b in bounds.values():
        if b.upper > 1.0:
            notes.append(f"{b.param}: measured {b.measured:.4g} {b.unit} exceeds the {gpu.name} "
                         f"datasheet {b.datasheet:.4g}: are the rows from another GPU?")
    devices = tuple(sorted({str(r.get("gpu")) for r in rs if r.get("gpu")}))
    if len(devices) > 1:
        notes.append(f"rows come from several devices: {', '.join(devices)}")
    return KernelBounds(gpu=gpu.name, bounds=bounds, devices=devices, notes=tuple(notes))
