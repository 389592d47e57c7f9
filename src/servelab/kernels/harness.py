"""Correctness harness: poison, run, compare with the fp32 reference; never time first.

For each check the harness draws *fresh* random inputs (a new seed per trial), allocates
the outputs and fills them with NaN ("poisoning": an output element the kernel never
writes stays NaN and fails), runs the provider, and compares every output with the fp32
reference under the tolerance of (family, dtype, backend) from :mod:`.tolerances`:

    pass  ⇔  all(isfinite(y))  and  all(|y − r| ≤ atol + rtol·|r|)

``excess`` = max(|y − r| / (atol + rtol·|r|)) is the fraction of the tolerance used by the
worst element (≤ 1 passes); it shows how close a pass came.
Imports torch (the ``gpu`` extra).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .cases import Case, build_case
from .specs import Shape, get_spec
from .tolerances import Tolerance, tolerance

__all__ = ["CheckResult", "poison", "compare", "check_case", "check", "backend_of"]


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    kernel: str
    provider: str
    dtype: str
    shape: Shape
    backend: str
    passed: bool
    max_abs_err: float
    excess: float
    nonfinite: int
    trials: int
    message: str = ""


def backend_of(device: torch.device | str) -> str:
    """``gpu`` for CUDA tensors; ``interpreter`` otherwise (CPU tensors need it)."""
    return "gpu" if torch.device(device).type == "cuda" else "interpreter"


def poison(outputs: dict[str, torch.Tensor]) -> None:
    """Fill every floating output with NaN so untouched elements cannot pass."""
    for t in outputs.values():
        if t.is_floating_point():
            t.fill_(math.nan)


def compare(y: torch.Tensor, ref: torch.Tensor, tol: Tolerance) -> tuple[bool, float, float, int]:
    """(passed, max |y−r| over finite elements, excess, number of non-finite outputs)."""
    if y.shape != ref.shape:
        raise ValueError(f"output shape {tuple(y.shape)} != reference shape {tuple(ref.shape)}")
    if not torch.isfinite(ref).all():
        raise ValueError("the reference itself is not finite; the check cannot judge")
    yf = y.float()
    finite = torch.isfinite(yf)
    nonfinite = int((~finite).sum())
    diff = (yf - ref).abs().masked_fill(~finite, 0.0)
    max_abs = float(diff.max()) if diff.numel() else 0.0
    excess = float((diff / (tol.atol + tol.rtol * ref.abs())).max()) if diff.numel() else 0.0
    passed = nonfinite == 0 and excess <= 1.0
    return passed, max_abs, excess, nonfinite


def check_case(case: Case, run: Callable[[dict[str, torch.Tensor]], None], device,
               backend: str, family: str) -> tuple[bool, float, float, int, str]:
    """Poison the outputs, run ``run(outputs)``, compare each with the reference."""
    outs = case.alloc(device)
    poison(outs)
    run(outs)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    refs = case.reference()
    tol = tolerance(family, case.dtype, backend)
    ok, worst_abs, worst_excess, bad, msgs = True, 0.0, -math.inf, 0, []
    for name, y in outs.items():
        p, a, e, n = compare(y, refs[name], tol)
        ok &= p
        worst_abs, worst_excess, bad = max(worst_abs, a), max(worst_excess, e), bad + n
        if not p:
            msgs.append(f"{name}: max_abs_err {a:.3g}, excess {e:.3g} (atol {tol.atol}, "
                        f"rtol {tol.rtol}), {n} non-finite")
    return ok, worst_abs, worst_excess, bad, "; ".join(msgs)


def check(kernel: str, provider: str, shape: Shape, dtype: str, *, device="cpu",
          seed: int = 0, trials: int = 2) -> CheckResult:
    """Check ``provider`` of ``kernel`` on ``trials`` fresh input draws."""
    spec = get_spec(kernel)
    backend = backend_of(device)
    ok, worst_abs, worst_excess, bad, msgs = True, 0.0, -math.inf, 0, []
    for t in range(trials):
        case = build_case(kernel, shape, dtype, device, seed=seed * 1000 + t)
        p, a, e, n, m = check_case(case, lambda o, c=case: c.run(provider, o), device, backend, spec.family)
        ok &= p
        worst_abs, worst_excess, bad = max(worst_abs, a), max(worst_excess, e), bad + n
        if m:
            msgs.append(f"trial {t}: {m}")
    return CheckResult(kernel=kernel, provider=provider, dtype=dtype, shape=shape, backend=backend,
                       passed=ok, max_abs_err=worst_abs, excess=worst_excess, nonfinite=bad,
                       trials=trials, message="; ".join(msgs))
