"""Time-varying demand: rate curves λ(t) and arrivals from them.

A :class:`RateCurve` is a piecewise-linear arrival rate in requests/s over
``[0, end_s)``, stored as segments ``(t0, t1, r0, r1)`` (a step is a segment with
``r0 == r1``), so both the rate and its integral are exact and cheap:

    Λ(a, b) = ∫_a^b λ(t) dt          (trapezoids over the segments; exact for linear pieces)

The expected number of arrivals in any window is Λ over it (the defining property of
a non-homogeneous Poisson process, NHPP).

Builders (all return a RateCurve):

* :func:`points` — knots ``(t_s, rate_rps)``, linear in between.
* :func:`table` — one rate per ``step_s`` (an hourly table with ``step_s = 3600``),
  held (``interpolate="step"``) or linear between step midpoints (``"linear"``).
* :func:`diurnal` — ``λ(h) = trough + (peak − trough)·(1 + cos(2π(h − peak_hour)/24))/2``
  for hour-of-day ``h``, with ``trough = peak / peak_to_trough``; sampled at knots every
  ``knot_s`` (600 s) and linear in between. The largest gap between the cosine and its
  chords is ``knot_s²/8 · max|λ''| = knot_s²/8 · (peak − trough)/2 · (2π/86400)²``,
  2.4·10⁻⁴·(peak − trough) at 600 s (ignorable); Λ is exact for the curve as stored.
* :meth:`RateCurve.weekly` — multiplies each day ``d`` (``start_day + ⌊t/86400⌋`` mod 7)
  by a factor; :meth:`RateCurve.burst` — multiplies ``[start, start + duration)`` by
  ``factor``; :meth:`RateCurve.noisy` — a Cox (doubly stochastic) process: each
  ``interval_s`` window's rate is multiplied by an independent Gamma(1/cv², cv²) factor
  of mean 1, so a window's count has mean Λ and variance Λ + cv²·Λ² (negative binomial)
  instead of the plain Poisson variance Λ.
* :func:`from_counts_csv` — per-minute request counts exported from a gateway or
  Prometheus (``increase(vllm:request_success_total[1m])``): rate = count/interval held
  over each interval. :func:`replay_counts` instead places exactly each interval's count
  uniformly inside it (a Poisson process conditioned on its counts has i.i.d. uniform
  points: Ross, *Stochastic Processes*, Thm 2.3.1), so the replay matches the trace
  minute by minute.

Sampling (:func:`nhpp_arrivals`): thinning (Lewis & Shedler, *Naval Research Logistics
Quarterly* 26(3), 1979) with a piecewise-constant majorant: on each segment a
homogeneous Poisson process at ``m = max(r0, r1)`` is drawn (its count is
Poisson(m·(t1 − t0)) and its points are uniform), and a point at ``t`` is kept with
probability ``λ(t)/m``. The kept points form an NHPP with rate λ.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import ConfigError

__all__ = ["RateCurve", "points", "table", "diurnal", "from_counts_csv", "read_counts_csv",
           "nhpp_arrivals", "replay_counts", "DAY_S", "HOUR_S"]

HOUR_S = 3600.0
DAY_S = 86400.0


@dataclass(frozen=True, kw_only=True)
class RateCurve:
    """Piecewise-linear λ(t), requests/s, on contiguous segments starting at 0."""
    t0_s: tuple[float, ...]
    t1_s: tuple[float, ...]
    r0_rps: tuple[float, ...]
    r1_rps: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.t0_s)
        if n == 0 or not (len(self.t1_s) == len(self.r0_rps) == len(self.r1_rps) == n):
            raise ConfigError("a rate curve needs at least one segment")
        t0, t1 = np.asarray(self.t0_s), np.asarray(self.t1_s)
        if t0[0] != 0.0 or not (t1 > t0).all() or not np.array_equal(t0[1:], t1[:-1]):
            raise ConfigError("rate curve segments must start at 0, be contiguous and have positive length")
        r = np.concatenate((self.r0_rps, self.r1_rps))
        if not (np.isfinite(r).all() and (r >= 0).all()):
            bad = [x for x in r if not (math.isfinite(x) and x >= 0)][0]
            raise ConfigError(f"rate curve rates must be finite and >= 0 requests/s, got {bad!r}")

    @property
    def end_s(self) -> float:
        return self.t1_s[-1]

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(np.asarray(x, dtype=np.float64) for x in (self.t0_s, self.t1_s, self.r0_rps, self.r1_rps))

    def rate(self, t_s: float | np.ndarray) -> np.ndarray:
        """λ(t) (0 outside [0, end_s))."""
        t0, t1, r0, r1 = self._arrays()
        t = np.asarray(t_s, dtype=np.float64)
        i = np.clip(np.searchsorted(t1, t, side="right"), 0, len(t0) - 1)
        out = r0[i] + (r1[i] - r0[i]) * (t - t0[i]) / (t1[i] - t0[i])
        return np.where((t >= 0) & (t < self.end_s), out, 0.0)

    def integral(self, a_s: float, b_s: float) -> float:
        """Λ(a, b) = expected arrivals in [a, b) (exact for the stored linear pieces)."""
        t0, t1, r0, r1 = self._arrays()
        lo, hi = np.maximum(t0, a_s), np.minimum(t1, b_s)
        keep = hi > lo
        if not keep.any():
            return 0.0
        slope = (r1 - r0) / (t1 - t0)
        ra = r0 + slope * (lo - t0)
        rb = r0 + slope * (hi - t0)
        return float(np.sum(((ra + rb) / 2 * (hi - lo))[keep]))

    def mean_rps(self, a_s: float = 0.0, b_s: float | None = None) -> float:
        b = self.end_s if b_s is None else b_s
        return self.integral(a_s, b) / (b - a_s)

    def peak_rps(self, a_s: float = 0.0, b_s: float | None = None) -> float:
        """Largest λ on [a, b) (at a knot or an end)."""
        b = self.end_s if b_s is None else b_s
        t0, t1, _, _ = self._arrays()
        knots = np.concatenate(([a_s], t0[(t0 > a_s) & (t0 < b)], [np.nextafter(b, -np.inf)]))
        return float(self.rate(knots).max())

    def _split(self, cuts: Iterable[float]) -> "RateCurve":
        """The same curve with extra knots at ``cuts`` (inside the segments)."""
        t0, t1, r0, r1 = (list(x) for x in (self.t0_s, self.t1_s, self.r0_rps, self.r1_rps))
        for c in sorted(set(cuts)):
            if not 0.0 < c < self.end_s:
                continue
            i = int(np.searchsorted(np.asarray(t1), c, side="right"))
            if t0[i] == c:
                continue
            rc = r0[i] + (r1[i] - r0[i]) * (c - t0[i]) / (t1[i] - t0[i])
            t0.insert(i + 1, c)
            t1.insert(i, c)
            r0.insert(i + 1, rc)
            r1.insert(i, rc)
        return RateCurve(t0_s=tuple(t0), t1_s=tuple(t1), r0_rps=tuple(r0), r1_rps=tuple(r1))

    def _scaled(self, factor_of_segment: Sequence[float]) -> "RateCurve":
        f = np.asarray(factor_of_segment, dtype=np.float64)
        return RateCurve(t0_s=self.t0_s, t1_s=self.t1_s,
                         r0_rps=tuple(np.asarray(self.r0_rps) * f), r1_rps=tuple(np.asarray(self.r1_rps) * f))

    def scaled(self, factor: float) -> "RateCurve":
        """λ multiplied by ``factor`` everywhere."""
        return self._scaled([factor] * len(self.t0_s))

    def window(self, start_s: float, duration_s: float) -> "RateCurve":
        """The curve on ``[start_s, start_s + duration_s)`` shifted to start at 0."""
        end = start_s + duration_s
        if not (0 <= start_s < end <= self.end_s + 1e-9):
            raise ConfigError(f"window [{start_s:g}, {end:g}) s is outside the curve's [0, {self.end_s:g}) s")
        c = self._split([start_s, end])
        keep = [i for i, (a, b) in enumerate(zip(c.t0_s, c.t1_s)) if a >= start_s and b <= end + 1e-9]
        return RateCurve(t0_s=tuple(c.t0_s[i] - start_s for i in keep),
                         t1_s=tuple(min(c.t1_s[i], end) - start_s for i in keep),
                         r0_rps=tuple(c.r0_rps[i] for i in keep), r1_rps=tuple(c.r1_rps[i] for i in keep))

    def weekly(self, factors: Sequence[float], *, start_day: int = 0) -> "RateCurve":
        """Day ``d`` (``start_day + ⌊t/86400⌋`` mod 7; 0 = Monday) multiplied by ``factors[d]``."""
        if len(factors) != 7 or any(not (f >= 0 and math.isfinite(f)) for f in factors):
            raise ConfigError(f"weekly needs 7 factors >= 0 (Monday first), got {list(factors)}")
        c = self._split(np.arange(DAY_S, self.end_s, DAY_S))
        days = (start_day + np.floor(np.asarray(c.t0_s) / DAY_S).astype(int)) % 7
        return c._scaled([factors[d] for d in days])

    def burst(self, *, factor: float, start_s: float, duration_s: float) -> "RateCurve":
        """λ multiplied by ``factor`` on ``[start_s, start_s + duration_s)``."""
        if not (factor >= 0 and duration_s > 0 and start_s >= 0):
            raise ConfigError(f"burst needs factor >= 0, duration_s > 0, start_s >= 0; got "
                              f"factor={factor!r}, start_s={start_s!r}, duration_s={duration_s!r}")
        c = self._split([start_s, start_s + duration_s])
        mids = (np.asarray(c.t0_s) + np.asarray(c.t1_s)) / 2
        inside = (mids >= start_s) & (mids < start_s + duration_s)
        return c._scaled(np.where(inside, factor, 1.0))

    def noisy(self, *, cv: float, interval_s: float, seed: int) -> "RateCurve":
        """One draw of the Cox process (module docstring): each ``interval_s`` window × Gamma(1/cv², cv²)."""
        if not (cv >= 0 and interval_s > 0):
            raise ConfigError(f"noise needs cv >= 0 and interval_s > 0, got cv={cv!r}, interval_s={interval_s!r}")
        if cv == 0:
            return self
        c = self._split(np.arange(interval_s, self.end_s, interval_s))
        n_win = int(math.ceil(self.end_s / interval_s))
        g = np.random.default_rng(np.random.SeedSequence([seed, 0x6E6F6973])).gamma(1 / cv**2, cv**2, size=n_win)
        idx = np.minimum((np.asarray(c.t0_s) / interval_s + 1e-9).astype(int), n_win - 1)
        return c._scaled(g[idx])


def points(knots: Sequence[tuple[float, float]]) -> RateCurve:
    """Linear between knots ``(t_s, rate_rps)``; the first knot must be at t = 0."""
    k = sorted((float(t), float(r)) for t, r in knots)
    if len(k) < 2 or k[0][0] != 0.0:
        raise ConfigError(f"rate curve points need at least two knots, the first at t = 0 s; got {list(knots)}")
    return RateCurve(t0_s=tuple(t for t, _ in k[:-1]), t1_s=tuple(t for t, _ in k[1:]),
                     r0_rps=tuple(r for _, r in k[:-1]), r1_rps=tuple(r for _, r in k[1:]))


def table(rates_rps: Sequence[float], *, step_s: float = HOUR_S, interpolate: str = "step") -> RateCurve:
    """One rate per ``step_s``: held (``step``) or linear between step midpoints (``linear``;
    held flat over the first and last half step). An hourly table has ``step_s = 3600``."""
    r = [float(x) for x in rates_rps]
    if not r or not step_s > 0:
        raise ConfigError(f"a rate table needs at least one rate and step_s > 0, got {len(r)} rates, step_s={step_s!r}")
    n = len(r)
    if interpolate == "step":
        return RateCurve(t0_s=tuple(i * step_s for i in range(n)), t1_s=tuple((i + 1) * step_s for i in range(n)),
                         r0_rps=tuple(r), r1_rps=tuple(r))
    if interpolate == "linear":
        mids = [(i + 0.5) * step_s for i in range(n)]
        return points([(0.0, r[0])] + list(zip(mids, r)) + [(n * step_s, r[-1])])
    raise ConfigError(f"unknown interpolation {interpolate!r}; valid: step, linear")


def diurnal(*, peak_rps: float, peak_to_trough: float, peak_hour: float = 14.0, days: float = 1.0,
            start_hour: float = 0.0, knot_s: float = 600.0) -> RateCurve:
    """The cosine day of the module docstring over ``days`` days, t = 0 at ``start_hour``."""
    if not (peak_rps > 0 and peak_to_trough >= 1 and days > 0 and knot_s > 0):
        raise ConfigError(f"diurnal needs peak_rps > 0, peak_to_trough >= 1, days > 0; got peak_rps={peak_rps!r}, "
                          f"peak_to_trough={peak_to_trough!r}, days={days!r}")
    trough = peak_rps / peak_to_trough
    end = days * DAY_S
    t = np.append(np.arange(0.0, end, knot_s), end)
    h = start_hour + t / HOUR_S
    lam = trough + (peak_rps - trough) * (1 + np.cos(2 * np.pi * (h - peak_hour) / 24.0)) / 2
    return points(list(zip(t.tolist(), lam.tolist())))


def read_counts_csv(path: str | Path) -> tuple[np.ndarray, float]:
    """Counts per interval and the interval (s) from a CSV with a header ``timestamp,count``
    (timestamps ISO-8601 or Unix seconds, equally spaced; a Prometheus/Grafana export)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"trace file {str(p)!r} not found")
    with p.open(newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 3:
        raise ConfigError(f"trace file {str(p)!r}: need a header and at least two rows (timestamp,count)")
    head = [h.strip().lower() for h in rows[0]]
    try:
        ti = next(i for i, h in enumerate(head) if h in ("timestamp", "time", "ts", "t"))
        ci = next(i for i, h in enumerate(head) if h in ("count", "requests", "value"))
    except StopIteration:
        raise ConfigError(f"trace file {str(p)!r}: header {rows[0]} needs a timestamp column "
                          "(timestamp/time/ts/t) and a count column (count/requests/value)") from None
    ts, counts = [], []
    for k, row in enumerate(rows[1:], start=2):
        if not any(x.strip() for x in row):
            continue
        raw_t, raw_c = row[ti].strip(), row[ci].strip()
        try:
            t = float(raw_t)
        except ValueError:
            try:
                t = datetime.fromisoformat(raw_t.replace("Z", "+00:00")).timestamp()
            except ValueError:
                raise ConfigError(f"trace file {str(p)!r} line {k}: timestamp {raw_t!r} is neither "
                                  "Unix seconds nor ISO-8601") from None
        try:
            c = float(raw_c)
        except ValueError:
            raise ConfigError(f"trace file {str(p)!r} line {k}: count {raw_c!r} is not a number") from None
        if not (c >= 0 and math.isfinite(c)):
            raise ConfigError(f"trace file {str(p)!r} line {k}: count must be >= 0, got {raw_c!r}")
        ts.append(t)
        counts.append(c)
    gaps = np.diff(ts)
    if len(gaps) == 0 or not (gaps > 0).all() or np.ptp(gaps) > 1e-6 * gaps[0]:
        raise ConfigError(f"trace file {str(p)!r}: timestamps must be increasing and equally spaced")
    return np.asarray(counts), float(gaps[0])


def from_counts_csv(path: str | Path) -> RateCurve:
    """The trace as a held rate (count / interval) per interval."""
    counts, step = read_counts_csv(path)
    return table(counts / step, step_s=step, interpolate="step")


def nhpp_arrivals(curve: RateCurve, rng: np.random.Generator, *, end_s: float | None = None) -> np.ndarray:
    """Sorted arrival times (s) of an NHPP with rate ``curve`` on ``[0, end_s)``, by thinning."""
    end = curve.end_s if end_s is None else min(end_s, curve.end_s)
    t0, t1, r0, r1 = curve._arrays()
    keep = t0 < end
    t0, t1, r0, r1 = t0[keep], np.minimum(t1[keep], end), r0[keep], r1[keep]
    full_t1 = np.asarray(curve.t1_s)[keep]
    m = np.maximum(r0, r1)
    n = rng.poisson(m * (t1 - t0))
    seg = np.repeat(np.arange(len(t0)), n)
    t = t0[seg] + rng.random(seg.size) * (t1 - t0)[seg]
    lam = r0[seg] + (r1 - r0)[seg] * (t - t0[seg]) / (full_t1 - t0)[seg]
    with np.errstate(invalid="ignore", divide="ignore"):
        accept = rng.random(seg.size) * m[seg] < lam
    return np.sort(t[accept])


def replay_counts(counts: Sequence[float], interval_s: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``round(counts[i])`` arrivals uniform in interval ``i`` (module docstring), sorted."""
    c = np.rint(np.asarray(counts, dtype=np.float64)).astype(np.int64)
    if (c < 0).any():
        raise ConfigError("trace counts must be >= 0")
    idx = np.repeat(np.arange(c.size), c)
    return np.sort((idx + rng.random(idx.size)) * interval_s)
