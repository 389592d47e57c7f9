"""Per-kernel, per-dtype, per-backend correctness tolerances.

A kernel output ``y`` passes against the fp32 reference ``r`` when every element is
finite and ``|y - r| <= atol + rtol·|r|`` (the ``torch.testing.assert_close`` rule, but
NaN/inf in the output always fails, even where the reference has one — the reference
never should). Backends:

- ``interpreter`` — Triton's CPU interpreter (``TRITON_INTERPRET=1``). Its ``tl.dot`` is
  numpy's: fp32 dots are exact fp32 there, and bf16 dots are wrong (so the lab's
  kernels upcast dot operands to fp32 when interpreting; see the kernel modules).
- ``gpu`` — compiled for a CUDA GPU. fp32 dots run as TF32 (10-bit mantissa inputs),
  so fp32 tolerances are loose there; bf16/fp16 dots accumulate in fp32.

Where the values come from: the output is rounded once to its storage dtype, so one
unit in the last place is a relative error of at most 2^-10 (fp16) and 2^-7 (bf16)
(IEEE 754 binary16: 10 fraction bits; bfloat16: 7). ``rtol`` allows about two ulps for
single-rounding kernels (RMSNorm, matmul) — 2e-3 fp16 and 1.6e-2 bf16, the latter also
being ``torch.testing``'s bf16 default. The eager baselines round intermediates too and
are held to the same tolerances. Attention rounds softmax weights to the input dtype
before the p·v dot on a GPU and so gets more; the composed decode step rounds 6–8
intermediates and gets the most. Inputs are generated so that outputs are O(1) (see
``lab``), which makes ``atol`` meaningful against a broken kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["Tolerance", "TOLERANCES", "BACKENDS", "FAMILIES", "DTYPES", "tolerance"]

BACKENDS: tuple[str, ...] = ("interpreter", "gpu")
FAMILIES: tuple[str, ...] = ("rmsnorm", "matmul", "decode_attention", "decode_step")
DTYPES: tuple[str, ...] = ("fp32", "fp16", "bf16")


@dataclass(frozen=True, kw_only=True, slots=True)
class Tolerance:
    atol: float
    rtol: float
    why: str


def _same(atol: float, rtol: float, why: str) -> dict[str, Tolerance]:
    t = Tolerance(atol=atol, rtol=rtol, why=why)
    return {"interpreter": t, "gpu": t}


_ONE_ROUNDING = "fp32 math, one rounding to the output dtype (~2 ulp)"
_TF32 = "fp32 dot runs as TF32 on a GPU: inputs keep 10 mantissa bits (2^-11 rel. each)"

# family -> dtype -> backend -> tolerance
_TABLE: dict[str, dict[str, dict[str, Tolerance]]] = {
    "rmsnorm": {
        "fp32": _same(1e-5, 1e-5, "fp32 throughout; only the summation order differs"),
        "fp16": _same(1e-3, 2e-3, _ONE_ROUNDING),
        "bf16": _same(8e-3, 1.6e-2, _ONE_ROUNDING),
    },
    "matmul": {
        "fp32": {
            "interpreter": Tolerance(atol=1e-5, rtol=1e-5, why="interpreter dot is exact fp32"),
            "gpu": Tolerance(atol=1e-2, rtol=1e-2, why=_TF32),
        },
        "fp16": _same(2e-3, 2e-3, "fp32 accumulation, " + _ONE_ROUNDING),
        "bf16": _same(1.6e-2, 1.6e-2, "fp32 accumulation, " + _ONE_ROUNDING),
    },
    "decode_attention": {
        "fp32": {
            "interpreter": Tolerance(atol=1e-5, rtol=1e-5, why="interpreter dot is exact fp32"),
            "gpu": Tolerance(atol=1e-2, rtol=1e-2, why=_TF32),
        },
        "fp16": _same(3e-3, 4e-3, "softmax weights rounded to fp16 before p·v, output rounded"),
        "bf16": _same(2e-2, 2e-2, "softmax weights rounded to bf16 before p·v, output rounded"),
    },
    "decode_step": {
        "fp32": {
            "interpreter": Tolerance(atol=1e-4, rtol=1e-4, why="fp32 chain of 8 ops, exact dots"),
            "gpu": Tolerance(atol=3e-2, rtol=3e-2, why=_TF32 + ", through 5 dots"),
        },
        "fp16": _same(1e-2, 1e-2, "6-8 intermediates rounded to fp16"),
        "bf16": _same(6e-2, 6e-2, "6-8 intermediates rounded to bf16"),
    },
}

TOLERANCES: dict[tuple[str, str, str], Tolerance] = {
    (fam, dt, be): tol
    for fam, by_dtype in _TABLE.items()
    for dt, by_backend in by_dtype.items()
    for be, tol in by_backend.items()
}


def tolerance(family: str, dtype: str, backend: str) -> Tolerance:
    """The tolerance for ``family`` in ``dtype`` on ``backend``; errors name valid values."""
    if family not in _TABLE:
        raise ConfigError(f"unknown kernel family {family!r}; known: {', '.join(FAMILIES)}")
    if dtype not in _TABLE[family]:
        raise ConfigError(f"unknown dtype {dtype!r} for {family}; known: {', '.join(_TABLE[family])}")
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    return _TABLE[family][dtype][backend]
