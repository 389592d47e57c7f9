"""Optional Nsight Compute evidence: DRAM throughput (% of peak) of one Triton kernel.

Runs ``ncu`` on a child process that launches the named kernel a few times, profiling
the first matching launch after one warm-up, and reads the metric
``dram__throughput.avg.pct_of_peak_sustained_elapsed`` from its CSV output.
``--clock-control none`` keeps ncu from locking the GPU clocks to base (its default),
so the GPU's settings are never changed. Needs ``ncu`` on PATH and a CUDA GPU.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

from .specs import Shape

__all__ = ["NCU_METRIC", "TRITON_KERNEL_NAMES", "ncu_available", "parse_ncu_csv", "ncu_dram_pct"]

NCU_METRIC = "dram__throughput.avg.pct_of_peak_sustained_elapsed"

# Lab kernel name → the Triton function whose launch is profiled (regex on its name).
TRITON_KERNEL_NAMES: dict[str, str] = {
    "rmsnorm": "_rmsnorm_kernel", "rmsnorm_residual": "_rmsnorm_kernel",
    "matmul": "_matmul_tiled_kernel", "matmul_persistent": "_matmul_persistent_kernel",
    "decode_attention": "_stage1",
}


def ncu_available() -> bool:
    return shutil.which("ncu") is not None


def parse_ncu_csv(text: str, metric: str = NCU_METRIC) -> float | None:
    """The first value of ``metric`` in ncu's ``--csv`` output (None if absent)."""
    start = text.find('"ID"')
    if start < 0:
        return None
    for row in csv.DictReader(io.StringIO(text[start:])):
        if row.get("Metric Name") == metric:
            try:
                return float(row["Metric Value"].replace(",", ""))
            except (KeyError, ValueError):
                return None
    return None


def ncu_dram_pct(kernel: str, shape: Shape, dtype: str, *, timeout_s: float = 600) -> float | None:
    """DRAM throughput % of peak for the lab's Triton ``kernel`` at ``shape``."""
    exe = shutil.which("ncu")
    if exe is None or kernel not in TRITON_KERNEL_NAMES:
        return None
    cmd = [exe, "--clock-control", "none", "--metrics", NCU_METRIC,
           "--kernel-name", f"regex:{TRITON_KERNEL_NAMES[kernel]}", "--launch-skip", "1",
           "--launch-count", "1", "--csv",
           sys.executable, "-m", "servelab.kernels._ncu_target", kernel, json.dumps(shape), dtype]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    return parse_ncu_csv(out.stdout)
