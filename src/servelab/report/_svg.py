"""SVG building blocks: escaping, palette, scales, "nice" ticks, number labels.

Ticks follow Heckbert, "Nice numbers for graph labels", Graphics Gems (1990):
step = nice(range / (n − 1)) with nice() ∈ {1, 2, 5, 10}·10^k. Log axes tick at
decades (and 2, 5 within a decade when the range spans fewer than three).
Palette: Okabe & Ito, "Color Universal Design" (2008), distinguishable under the
common colour-vision deficiencies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.sax.saxutils import escape as _xml_escape

__all__ = ["PALETTE", "esc", "attr", "nice_ticks", "log_ticks", "fmt_tick", "Scale", "finite"]

# Okabe–Ito (2008); black last, yellow dropped (poor contrast on white).
PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7",
                            "#56B4E9", "#000000")
GOOD, WARN, BAD, GRID, AXIS, MUTED = "#009E73", "#E69F00", "#D55E00", "#e5e5e5", "#333333", "#666666"


def esc(text: object) -> str:
    """Text content, XML-escaped."""
    return _xml_escape(str(text))


def attr(text: object) -> str:
    """An attribute value, XML-escaped including quotes."""
    return _xml_escape(str(text), {'"': "&quot;", "'": "&#39;"})


def finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _nice(x: float, round_: bool) -> float:
    e = math.floor(math.log10(x))
    f = x / 10 ** e
    if round_:
        nf = 1 if f < 1.5 else 2 if f < 3 else 5 if f < 7 else 10
    else:
        nf = 1 if f <= 1 else 2 if f <= 2 else 5 if f <= 5 else 10
    return nf * 10 ** e


def nice_ticks(lo: float, hi: float, n: int = 6) -> tuple[float, float, list[float]]:
    """(axis_lo, axis_hi, ticks) covering [lo, hi] with about ``n`` nice ticks."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    rng = _nice(hi - lo, False)
    step = _nice(rng / max(n - 1, 1), True)
    a_lo = math.floor(lo / step) * step
    a_hi = math.ceil(hi / step) * step
    k = int(round((a_hi - a_lo) / step))
    ticks = [a_lo + i * step for i in range(k + 1)]
    ticks = [0.0 if abs(t) < step * 1e-9 else t for t in ticks]
    return a_lo, a_hi, ticks


def log_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """(axis_lo, axis_hi, ticks) for a log axis over positive [lo, hi]."""
    if not (lo > 0 and math.isfinite(lo)):
        lo = 1.0
    if not (hi > 0 and math.isfinite(hi)) or hi < lo:
        hi = lo * 10
    e_lo, e_hi = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if e_hi == e_lo:
        e_hi += 1
    mults = (1, 2, 5) if e_hi - e_lo < 3 else (1,)
    ticks = [m * 10.0 ** e for e in range(e_lo, e_hi + 1) for m in mults if m * 10.0 ** e <= 10.0 ** e_hi]
    return 10.0 ** e_lo, 10.0 ** e_hi, ticks


def fmt_tick(v: float) -> str:
    """Compact tick label: 0.05, 2.5, 1200, 3e+06, 1e-05."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6 or a < 1e-3:
        return f"{v:.3g}"
    if a >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


@dataclass(frozen=True)
class Scale:
    """Maps data [d0, d1] (log10 when ``log``) to pixels [p0, p1]."""
    d0: float
    d1: float
    p0: float
    p1: float
    log: bool = False

    def __call__(self, v: float) -> float:
        if self.log:
            v = math.log10(v)
            a, b = math.log10(self.d0), math.log10(self.d1)
        else:
            a, b = self.d0, self.d1
        if b == a:
            return (self.p0 + self.p1) / 2
        return self.p0 + (v - a) / (b - a) * (self.p1 - self.p0)

    def ok(self, v: object) -> bool:
        """Whether ``v`` can be placed on this axis (finite; > 0 on a log axis)."""
        return finite(v) and (not self.log or v > 0)  # type: ignore[operator]
