"""Step 9's search: the highest arrival rate at which a replica meets its SLOs.

``passes(rate)`` runs a seeded simulation at ``rate`` and says whether every SLO
percentile was met. The search is deterministic and SLO-monotone by construction:

1. Gallop down from ``start_rps`` (an SLO-independent analytic upper bound on the
   replica's throughput): test ``start, start/f, start/f², …`` until one passes
   (``f = gallop_factor``, default 2) or the rate falls below ``min_rps``; gallop up
   (``×f``) while the start itself passes, up to ``max_rps``.
2. Bisect the bracket ``[lo (pass), hi (fail)]`` at the geometric mean until
   ``hi / lo ≤ 1 + rel_tol``. The answer is ``lo``.

Why monotone: every tested rate depends only on the outcomes so far. If SLO A is
tighter than SLO B (every run passing A passes B), the two searches test the same
rates until the first rate where B passes and A fails; from then on A's bracket lies
below that rate and B's above it, so capacity(A) ≤ capacity(B).

Why a lower bound on the answer, not a point estimate: ``lo`` passed; the true
boundary lies in ``[lo, hi)``. With ``rel_tol = 0.06`` the error is below 6 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["CapacitySearch", "search_capacity"]


@dataclass(frozen=True, kw_only=True)
class CapacitySearch:
    capacity_rps: float                       # highest passing rate found (0 if none)
    upper_rps: float                          # lowest failing rate above it (inf if none)
    evaluations: tuple[tuple[float, bool], ...] = field(default_factory=tuple)

    @property
    def found(self) -> bool:
        return self.capacity_rps > 0


def search_capacity(passes: Callable[[float], bool], *, start_rps: float, min_rps: float,
                    max_rps: float | None = None, gallop_factor: float = 2.0,
                    rel_tol: float = 0.06, max_evals: int = 24) -> CapacitySearch:
    """Deterministic galloping + geometric bisection (see module docstring)."""
    if start_rps <= 0 or min_rps <= 0:
        raise ValueError(f"rates must be > 0 (start_rps={start_rps}, min_rps={min_rps})")
    if gallop_factor <= 1:
        raise ValueError(f"gallop_factor must be > 1, got {gallop_factor}")
    max_rps = max_rps if max_rps is not None else start_rps * gallop_factor ** 6
    evals: list[tuple[float, bool]] = []

    def test(rate: float) -> bool:
        ok = bool(passes(rate))
        evals.append((rate, ok))
        return ok

    lo, hi = 0.0, math.inf
    rate = start_rps
    if test(rate):
        lo = rate
        while rate * gallop_factor <= max_rps and len(evals) < max_evals:
            rate *= gallop_factor
            if test(rate):
                lo = rate
            else:
                hi = rate
                break
    else:
        hi = rate
        while len(evals) < max_evals:
            rate /= gallop_factor
            if rate < min_rps:
                return CapacitySearch(capacity_rps=0.0, upper_rps=hi, evaluations=tuple(evals))
            if test(rate):
                lo = rate
                break
            hi = rate
    if lo == 0.0:
        return CapacitySearch(capacity_rps=0.0, upper_rps=hi, evaluations=tuple(evals))
    while math.isfinite(hi) and hi / lo > 1 + rel_tol and len(evals) < max_evals:
        mid = math.sqrt(lo * hi)
        if test(mid):
            lo = mid
        else:
            hi = mid
    return CapacitySearch(capacity_rps=lo, upper_rps=hi, evaluations=tuple(evals))
