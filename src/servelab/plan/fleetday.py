"""Fleet-day files: several model pools, each a scenario with its own rate curve.

A fleet-day file (YAML or JSON) lists the pools of one fleet and the capacity prices::

    name: three-models
    prices:                      # fractions of each pool's on-demand $/GPU-hour
      reserved_fraction: 0.80
      spot_fraction: 0.67
      spot_interruptions_per_month: 0.20
      source: "…"
    autoscaler: {poll_interval_s: 15, provisioning_delay_s: 300, model_load_delay_s: 120}
    pools:
      - name: chat
        priority: 0              # lower = more important (shown; sharing gives it reserved GPUs first)
        spot: false              # the SLO tolerates spot reclaim
        scenario:                # a Scenario (docs/scenario.md) with a rate_curve, or a file
          model: llama-3.1-8b
          gpu: h100-sxm
          workload: chat
          rate_curve: {kind: diurnal, peak_rps: 40, peak_to_trough: 3, peak_hour: 14}
          slo: ttft_p95=2s,tpot_p95=50ms

A pool may add ``search: {gpus: [h100-sxm, h200], tps: [1, 2, 4], weight_dtypes: [bf16, fp8]}``:
the planner (``servelab plan``'s 13 steps) then chooses the GPU, TP and precisions at the
curve's peak rate, and the day is planned with its choice.

Relative scenario and trace paths resolve next to the fleet file. Every pool scenario
must have a ``rate_curve``; its ``duration_s`` is ignored (a day is planned).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError
from ..scenario import Scenario, load_scenario_data, resolve
from ..scenario.io import format_errors

__all__ = ["CapacityPrices", "DayAutoscaler", "PoolSearch", "PoolSpec", "FleetDay", "load_fleet_day", "pool_scenario"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapacityPrices(_Model):
    reserved_fraction: float = Field(
        ..., gt=0.0, le=1.0, description="Reserved (1-year) $/GPU-hour as a fraction of on-demand.")
    spot_fraction: float = Field(..., gt=0.0, le=1.0, description="Spot $/GPU-hour as a fraction of on-demand.")
    spot_interruptions_per_month: float = Field(
        0.05, ge=0.0, le=30.0, description="Expected reclaims of one spot instance per 730-hour month.")
    source: str = Field(..., min_length=1, max_length=500, description="Where the fractions come from.")


class DayAutoscaler(_Model):
    poll_interval_s: float = Field(15.0, gt=0.0, le=3600.0, description="HPA polling period (Kubernetes default 15 s).")
    provisioning_delay_s: float = Field(300.0, ge=0.0, le=86400.0, description="Node acquisition delay.")
    model_load_delay_s: float = Field(120.0, ge=0.0, le=86400.0, description="Weights load and warm-up.")
    cooldown_s: float = Field(300.0, ge=0.0, le=86400.0, description="Scale-down stabilization (HPA default 300 s).")


class PoolSearch(_Model):
    gpus: tuple[str, ...] = Field(..., min_length=1, description="GPU types the planner may choose from.")
    tps: tuple[int, ...] = Field((1, 2, 4, 8), min_length=1, description="Tensor-parallel degrees to try.")
    weight_dtypes: tuple[str, ...] = Field(("bf16", "fp8"), min_length=1, description="Weight precisions to try.")


class PoolSpec(_Model):
    name: str = Field(..., min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")
    priority: int = Field(0, ge=0, le=100)
    spot: bool = Field(False, description="The pool's SLO tolerates spot reclaim (in-flight requests retried).")
    scenario: dict[str, Any] | str = Field(..., description="Scenario mapping or scenario file path.")
    search: PoolSearch | None = Field(
        None, description="Let the planner choose GPU, TP and precision at the curve's peak rate "
                          "(None: the scenario's configuration).")


class FleetDay(_Model):
    name: str = Field("fleet", min_length=1, max_length=80)
    prices: CapacityPrices
    autoscaler: DayAutoscaler = Field(default_factory=DayAutoscaler)
    headroom: float = Field(1.1, ge=1.0, le=3.0, description="Policy margin over the simulated capacity.")
    spares: int = Field(1, ge=0, le=64, description="Spare replicas per pool (N + spares).")
    pools: tuple[PoolSpec, ...] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "FleetDay":
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise ValueError(f"pool names must be unique, got {names}")
        return self


def pool_scenario(pool: PoolSpec, base: Path | None = None) -> Scenario:
    """The pool's validated Scenario (file paths relative to ``base``); must have a rate curve."""
    data = pool.scenario
    where = f"pool {pool.name!r}"
    if isinstance(data, str):
        p = Path(data) if base is None or Path(data).is_absolute() else base / data
        data = load_scenario_data(p)
        where += f" ({p})"
    data = json.loads(json.dumps(data))
    curve = data.get("rate_curve")
    if not isinstance(curve, dict):
        raise ConfigError(f"{where}: the scenario needs a rate_curve (diurnal, table, points or trace)")
    if curve.get("file") and base is not None and not Path(curve["file"]).is_absolute():
        curve["file"] = str(base / curve["file"])
    return resolve(data, source=where)


def load_fleet_day(path: str | Path) -> tuple[FleetDay, list[Scenario]]:
    """The fleet-day file and each pool's scenario."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read fleet-day file {p}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"fleet-day file {p} is not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"fleet-day file {p}: expected a mapping with prices and pools")
    try:
        fleet = FleetDay.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, str(p), FleetDay, prefix="invalid fleet-day file")) from None
    return fleet, [pool_scenario(pl, p.parent) for pl in fleet.pools]
