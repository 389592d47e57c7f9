"""Score intervals for proportions of offered requests (``delivery``, ``slo_attainment``).

The percentile bootstrap over requests collapses to a point when every request (or
none) succeeded: 133 of 133 delivered gives [1, 1], although a true delivery of 0.99
yields 133 of 133 with probability 0.99¹³³ ≈ 0.26. Callers widen the bootstrap
interval to contain these:

- Wilson score interval of k successes in n (Wilson, JASA 22:209, 1927):
  (p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n), z the normal quantile of the
  confidence level;
- difference p₁ − p₂ of two independent proportions: Newcombe's hybrid score interval
  (Newcombe, Statistics in Medicine 17:873, 1998, method 10), from the Wilson limits
  [l₁, u₁], [l₂, u₂]: d − √((p₁ − l₁)² + (u₂ − p₂)²) … d + √((u₁ − p₁)² + (p₂ − l₂)²).

Units: proportions in [0, 1].
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["PROPORTION_METRICS", "newcombe_diff_interval", "wilson_interval"]

PROPORTION_METRICS: tuple[str, ...] = ("delivery", "slo_attainment")


def wilson_interval(k: float, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion with ``k`` successes out of ``n``."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_diff_interval(p1: float, n1: int, p2: float, n2: int,
                           confidence: float) -> tuple[float, float]:
    """Interval of p1 − p2 for independent proportions (hybrid score, module doc)."""
    l1, u1 = wilson_interval(p1 * n1, n1, confidence)
    l2, u2 = wilson_interval(p2 * n2, n2, confidence)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))
