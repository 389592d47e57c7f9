"""The scenario's rate curve: time-varying demand (``servelab.catalog.ratecurve``).

``rate_curve`` replaces the constant ``rate_rps``: arrivals become a non-homogeneous
Poisson process with rate λ(t) over the scenario's ``duration_s`` (or, for a trace,
the trace replayed). ``start_s`` says where on the curve the run's t = 0 sits, so a
ten-minute run can be the morning ramp of a day. Kinds:

* ``diurnal``: ``peak_rps``, ``peak_to_trough`` (≥ 1), ``peak_hour`` (0–24), ``days``;
* ``table``: ``rates_rps`` (one per ``step_s``, 3600 for an hourly table), ``interpolate``;
* ``points``: ``points`` as ``[[t_s, rate_rps], …]``, linear in between;
* ``trace``: ``file`` (CSV ``timestamp,count`` per interval) and ``trace_mode``: ``counts``
  replays each interval's count exactly, ``rate`` draws Poisson arrivals at count/interval.

Modifiers for every kind but a ``counts`` replay: ``weekly`` (7 factors, Monday first,
``start_day``), ``bursts`` (rate × factor inside a window, times on the curve) and
``noise_cv``/``noise_interval_s`` (a Cox process; see the catalog module).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["RateCurveSettings", "CurveBurst"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CurveBurst(_Model):
    factor: float = Field(..., ge=0.0, le=100.0, description="Rate multiplier inside the window.")
    start_s: float = Field(..., ge=0.0, description="Start of the window on the curve, s.")
    duration_s: float = Field(..., gt=0.0, description="Length of the window, s.")


class RateCurveSettings(_Model):
    kind: Literal["diurnal", "table", "points", "trace"] = Field(..., description="Shape of λ(t).")
    peak_rps: float | None = Field(None, gt=0.0, le=1e7, description="diurnal: rate at the peak hour, req/s.")
    peak_to_trough: float = Field(3.0, ge=1.0, le=1000.0, description="diurnal: peak rate / trough rate.")
    peak_hour: float = Field(14.0, ge=0.0, lt=24.0, description="diurnal: hour of day of the peak.")
    days: float = Field(1.0, gt=0.0, le=366.0, description="diurnal: length of the curve in days.")
    start_hour: float = Field(0.0, ge=0.0, lt=24.0, description="diurnal: hour of day at curve time 0.")
    rates_rps: tuple[float, ...] = Field((), description="table: one rate per step, req/s.")
    step_s: float = Field(3600.0, gt=0.0, le=86400.0 * 7, description="table: length of one step, s.")
    interpolate: Literal["step", "linear"] = Field("step", description="table: held or linear between steps.")
    points: tuple[tuple[float, float], ...] = Field((), description="points: knots [t_s, rate_rps], first at 0.")
    file: str | None = Field(None, description="trace: CSV with timestamp,count per equal interval.")
    trace_mode: Literal["counts", "rate"] = Field(
        "counts", description="trace: replay each interval's count exactly, or Poisson at count/interval.")
    scale: float = Field(1.0, gt=0.0, le=1e6, description="Every rate multiplied by this (growth what-ifs).")
    weekly: tuple[float, ...] | None = Field(None, description="Day factors, Monday first (7 values).")
    start_day: int = Field(0, ge=0, le=6, description="Weekday at curve time 0 (0 = Monday).")
    bursts: tuple[CurveBurst, ...] = Field((), description="Windows where the rate is multiplied.")
    noise_cv: float = Field(0.0, ge=0.0, le=10.0, description="Coefficient of variation of a per-interval "
                                                              "rate factor (0: plain NHPP).")
    noise_interval_s: float = Field(300.0, gt=0.0, le=86400.0, description="Length of a noise interval, s.")
    start_s: float = Field(0.0, ge=0.0, le=86400.0 * 366, description="Curve time at the run's t = 0, s.")

    @model_validator(mode="after")
    def _needs(self) -> "RateCurveSettings":
        need = {"diurnal": ("peak_rps", self.peak_rps is not None), "table": ("rates_rps", bool(self.rates_rps)),
                "points": ("points", len(self.points) >= 2), "trace": ("file", bool(self.file))}[self.kind]
        if not need[1]:
            raise ValueError(f"rate_curve kind {self.kind!r} needs {need[0]}"
                             + (" (at least two knots)" if self.kind == "points" else ""))
        if self.weekly is not None and (len(self.weekly) != 7 or any(f < 0 for f in self.weekly)):
            raise ValueError(f"weekly needs 7 factors >= 0 (Monday first), got {list(self.weekly)}")
        if any(r < 0 for r in self.rates_rps) or any(r < 0 or t < 0 for t, r in self.points):
            raise ValueError("rates and knot times must be >= 0")
        if self.kind == "trace" and self.trace_mode == "counts" and (
                self.weekly or self.bursts or self.noise_cv or self.scale != 1.0):
            raise ValueError("a trace replayed as counts cannot take weekly, bursts, noise_cv or scale; "
                             "use trace_mode: rate")
        return self
