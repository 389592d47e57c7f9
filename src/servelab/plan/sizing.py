"""Step 10: replica count from the peak rate and the simulated per-replica capacity.

    active   = ceil(peak_rate / capacity_per_replica × headroom)
    replicas = active + spares                      (N + spares for failures; default N+1)
    utilization = peak_rate / (active × saturation_rate)

``capacity_per_replica`` is the highest rate at which ONE replica meets every SLO
percentile in simulation (step 9); ``headroom`` (default 1.1) is a policy margin for
model error, not a measured quantity. ``saturation_rate`` is the replica's maximum
sustainable request rate ignoring SLOs (analytic, step 8). Queueing delay grows
without bound as utilization → 1 (M/M/1 mean wait ∝ ρ/(1−ρ): 4× the service time at
ρ = 0.8, 9× at 0.9 — Kleinrock, *Queueing Systems* vol. 1, 1975), so the plan warns
above ``KNEE_UTILIZATION`` = 0.8.

Units: requests/s.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["KNEE_UTILIZATION", "DEFAULT_HEADROOM", "Sizing", "size_replicas"]

KNEE_UTILIZATION = 0.8   # queueing knee (see module docstring)
DEFAULT_HEADROOM = 1.1   # policy margin for model error (10 %)


@dataclass(frozen=True, kw_only=True)
class Sizing:
    peak_rate_rps: float
    capacity_per_replica_rps: float
    headroom: float
    active_replicas: int
    spare_replicas: int
    replicas: int
    utilization: float              # peak / (active × saturation), or peak / (active × capacity)
    utilization_basis: str          # "saturation" | "slo_capacity"
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


def size_replicas(*, peak_rate_rps: float, capacity_per_replica_rps: float,
                  headroom: float = DEFAULT_HEADROOM, spares: int = 1,
                  saturation_rate_rps: float | None = None,
                  knee: float = KNEE_UTILIZATION) -> Sizing:
    """Replicas for ``peak_rate_rps``; ValueError when a replica has no SLO capacity."""
    if capacity_per_replica_rps <= 0:
        raise ValueError(f"capacity_per_replica_rps must be > 0, got {capacity_per_replica_rps}")
    if headroom < 1.0:
        raise ValueError(f"headroom must be >= 1, got {headroom}")
    if spares < 0:
        raise ValueError(f"spares must be >= 0, got {spares}")
    # Round the ratio to 1e-9 first so 20 / 10 × 1.0 is 2, not 3 through float noise.
    ratio = round(peak_rate_rps / capacity_per_replica_rps * headroom, 9)
    active = max(1, math.ceil(ratio))
    if saturation_rate_rps and saturation_rate_rps > 0:
        basis, denom = "saturation", saturation_rate_rps
    else:
        basis, denom = "slo_capacity", capacity_per_replica_rps
    util = peak_rate_rps / (active * denom)
    warnings = []
    if util > knee:
        warnings.append(
            f"utilization {util:.0%} of {basis.replace('_', ' ')} rate at peak is above the "
            f"~{knee:.0%} queueing knee: latency is sensitive to small rate increases")
    if spares and active > 0:
        util_lost = peak_rate_rps / (max(1, active + spares - 1) * capacity_per_replica_rps)
        if util_lost > 1.0:
            warnings.append(f"with one replica lost the peak needs {util_lost:.0%} of SLO capacity")
    return Sizing(peak_rate_rps=peak_rate_rps, capacity_per_replica_rps=capacity_per_replica_rps,
                  headroom=headroom, active_replicas=active, spare_replicas=spares,
                  replicas=active + spares, utilization=util, utilization_basis=basis,
                  warnings=tuple(warnings))
