"""Newcombe's hybrid score interval and the Wilson interval against references.

References: the worked examples of Newcombe (Statistics in Medicine 17:873, 1998,
Table II, method 10 — the published limits to 4 decimals), and a plain re-implementation
of the Wilson (1927) and Newcombe formulas written out below from the papers.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from servelab.metrics.proportion import newcombe_diff_interval, wilson_interval


def _wilson_ref(k: int, n: int, conf: float) -> tuple[float, float]:
    # Wilson 1927: roots in p of (p̂ − p)² = z² p(1 − p)/n, i.e.
    # (2np̂ + z² ± z√(z² + 4np̂(1 − p̂))) / (2(n + z²)); clamped to [0, 1].
    z = NormalDist().inv_cdf(1 - (1 - conf) / 2)
    p = k / n
    root = z * math.sqrt(z * z + 4 * n * p * (1 - p))
    return (max(0.0, (2 * n * p + z * z - root) / (2 * (n + z * z))),
            min(1.0, (2 * n * p + z * z + root) / (2 * (n + z * z))))


def _newcombe_ref(k1, n1, k2, n2, conf):
    # Newcombe 1998, method 10: L = d − δ, U = d + ε with
    # δ = √((p1 − l1)² + (u2 − p2)²), ε = √((u1 − p1)² + (p2 − l2)²).
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = _wilson_ref(k1, n1, conf)
    l2, u2 = _wilson_ref(k2, n2, conf)
    d = p1 - p2
    return (d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2))


# Newcombe 1998, Table II, method 10 (95 %): the published limits.
PUBLISHED = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),   # (a)
    ((9, 10, 3, 10), (0.1705, 0.8090)),     # (b)
    ((5, 56, 0, 29), (-0.0381, 0.1926)),    # (d)
    ((0, 10, 0, 20), (-0.1611, 0.2775)),    # (e)
    ((0, 10, 0, 10), (-0.2775, 0.2775)),    # (f)
    ((10, 10, 0, 20), (0.6791, 1.0000)),    # (g)
    ((10, 10, 0, 10), (0.6075, 1.0000)),    # (h)
]


@pytest.mark.parametrize("counts,limits", PUBLISHED)
def test_newcombe_published_examples(counts, limits):
    k1, n1, k2, n2 = counts
    lo, hi = newcombe_diff_interval(k1 / n1, n1, k2 / n2, n2, 0.95)
    assert lo == pytest.approx(limits[0], abs=6e-5)
    assert hi == pytest.approx(limits[1], abs=6e-5)


@pytest.mark.parametrize("counts", [(6, 7, 2, 7), (3, 40, 17, 25), (1, 3, 12, 13), (70, 90, 33, 50)])
@pytest.mark.parametrize("conf", [0.8, 0.95, 0.99])
def test_newcombe_matches_formula(counts, conf):
    # Asymmetric cases (p1 < p2, unequal n, other levels) against the written-out formula.
    k1, n1, k2, n2 = counts
    got = newcombe_diff_interval(k1 / n1, n1, k2 / n2, n2, conf)
    assert got == pytest.approx(_newcombe_ref(k1, n1, k2, n2, conf), abs=1e-12)


def test_newcombe_swap_negates():
    # Interval of p2 − p1 is the mirror image of that of p1 − p2.
    lo, hi = newcombe_diff_interval(3 / 40, 40, 17 / 25, 25, 0.9)
    lo2, hi2 = newcombe_diff_interval(17 / 25, 25, 3 / 40, 40, 0.9)
    assert (lo, hi) == pytest.approx((-hi2, -lo2), abs=1e-12)


@pytest.mark.parametrize("k,n", [(0, 9), (9, 9), (4, 9), (26, 26), (1, 30)])
def test_wilson_matches_formula_and_stays_in_unit_interval(k, n):
    # For k = n the unclamped upper root is 1 in exact arithmetic but rounds to 1 + ulp
    # for n = 9 or 26 at 95 %: the interval of a proportion must still end at ≤ 1.
    lo, hi = wilson_interval(k, n, 0.95)
    assert (lo, hi) == pytest.approx(_wilson_ref(k, n, 0.95), abs=1e-12)
    assert 0.0 <= lo <= hi <= 1.0
