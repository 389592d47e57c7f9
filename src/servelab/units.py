"""Unit constants: the one place where a unit is defined.

Decimal prefixes are decimal (GB = 1e9 bytes, TFLOP/s = 1e12 FLOP/s) as on every GPU
datasheet; binary prefixes are spelled out (GiB = 2**30). Quantities elsewhere carry
their unit in their name (``hbm_bytes_per_s``, ``ttft_s``, ``kv_bytes_per_token``) and
are stored in base SI units: bytes, seconds, FLOP, FLOP/s, bytes/s, US dollars.

Data-type widths follow the formats' definitions (IEEE 754 binary32/16, bfloat16,
OCP FP8 E4M3/E5M2, OCP MX FP4 E2M1, two's-complement int8/int4).
"""

from __future__ import annotations

__all__ = [
    "BYTE", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB",
    "KFLOP", "MFLOP", "GFLOP", "TFLOP", "PFLOP",
    "S", "MS", "US", "NS", "MINUTE", "HOUR", "DAY", "MONTH_HOURS",
    "DTYPE_BYTES", "dtype_bytes", "fmt_bytes", "fmt_seconds",
]

BYTE = 1
KB = 1e3
MB = 1e6
GB = 1e9
TB = 1e12
KiB = 2**10
MiB = 2**20
GiB = 2**30
TiB = 2**40

KFLOP = 1e3
MFLOP = 1e6
GFLOP = 1e9
TFLOP = 1e12
PFLOP = 1e15

S = 1.0
MS = 1e-3
US = 1e-6
NS = 1e-9
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
# Hours in an average month (365.25 days * 24 h / 12), the usual cloud-billing convention.
MONTH_HOURS = 730.5

# Bytes per element of each storage dtype (format definitions; see module docstring).
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "tf32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5,
}


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of ``dtype``; raises ``ValueError`` naming the valid dtypes."""
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ValueError(
            f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}"
        ) from None


def fmt_bytes(n_bytes: float) -> str:
    """Human form in decimal units (``80.0 GB``), as datasheets print memory."""
    for unit, size in (("TB", TB), ("GB", GB), ("MB", MB), ("KB", KB)):
        if abs(n_bytes) >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{n_bytes:.0f} B"


def fmt_seconds(t_s: float) -> str:
    """Human form of a duration (``12.3 ms``, ``45 µs``, ``2.10 s``)."""
    if t_s != t_s:  # NaN
        return "n/a"
    a = abs(t_s)
    if a >= 100:
        return f"{t_s:.0f} s"
    if a >= 1:
        return f"{t_s:.2f} s"
    if a >= 1e-3:
        return f"{t_s / MS:.1f} ms"
    return f"{t_s / US:.0f} µs"
