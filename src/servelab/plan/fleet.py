"""Whole-fleet simulations: validation of the chosen plan and its sensitivity runs.

A fleet run simulates ``replicas`` identical replicas behind a least-outstanding-
requests router, offered the workload's own arrival process (Poisson or gamma bursts)
at ``rate_rps`` for ``duration_s`` seconds, optionally killing one replica at
``fault_at_s`` (its in-flight requests are retried through the router). The outcome
is the p95 TTFT/TPOT/E2E, the delivery ratio and whether every SLO target was met.

Workload variants for sensitivity: :func:`scale_context` multiplies every input
length (distribution mean, std, bounds, empirical values) by a factor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .evaluate import SearchSettings, simulate_replicas

__all__ = ["FleetTask", "FleetOutcome", "run_fleet", "scale_context", "with_rate"]


@dataclass(frozen=True, kw_only=True)
class FleetTask:
    label: str
    deployment: Any
    replicas: int
    workload: Any
    rate_rps: float
    duration_s: float
    slo: Any
    settings: SearchSettings
    fault_at_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class FleetOutcome:
    label: str
    replicas: int
    rate_rps: float
    offered: int
    ttft_p95_s: float | None
    tpot_p95_s: float | None
    e2e_p95_s: float | None
    delivery: float | None
    slo_met: bool
    per_target: dict[str, bool | None]
    replica_lost: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def with_rate(workload: Any, rate_rps: float) -> Any:
    """The workload with its arrival rate set to ``rate_rps``."""
    return dataclasses.replace(workload, arrival=dataclasses.replace(workload.arrival, rate_rps=rate_rps))


def scale_context(workload: Any, factor: float) -> Any:
    """The workload with every input length multiplied by ``factor``."""
    d = workload.input_len
    scaled = dataclasses.replace(
        d, mean=d.mean * factor, std=d.std * factor, low=max(1, round(d.low * factor)),
        high=max(1, round(d.high * factor)), values=tuple(max(1, round(v * factor)) for v in d.values))
    return dataclasses.replace(workload, input_len=scaled)


def run_fleet(task: FleetTask) -> FleetOutcome:
    """Simulate the fleet of ``task`` and judge it against the SLO."""
    from ..catalog import generate_requests
    from ..metrics import summarize
    from ..sim import Fault

    reqs = generate_requests(task.workload, rate_rps=task.rate_rps, duration_s=task.duration_s,
                             seed=task.settings.seed)
    faults = ()
    if task.fault_at_s is not None and task.replicas > 0:
        faults = (Fault(at_s=task.fault_at_s, replica=0, in_flight="retry"),)
    res = simulate_replicas(task.deployment, reqs, settings=task.settings, count=task.replicas,
                            faults=faults)
    s = summarize(res.records, duration_s=res.duration_s, slo=task.slo)
    met = s.get("slo_met") or {}
    delivery = s.get("delivery")
    ok = bool(met) and all(v is True for v in met.values()) and \
        (delivery or 0.0) >= task.settings.min_delivery
    return FleetOutcome(label=task.label, replicas=task.replicas, rate_rps=task.rate_rps,
                        offered=len(reqs), ttft_p95_s=s["ttft_s"].get("p95"),
                        tpot_p95_s=s["tpot_s"].get("p95"), e2e_p95_s=s["e2e_s"].get("p95"),
                        delivery=delivery, slo_met=ok, per_target=dict(met),
                        replica_lost=bool(faults))
