"""Whole-fleet simulations: validation of the chosen plan and its sensitivity runs.

A fleet run is a whole-fleet :class:`~servelab.scenario.Scenario` (the planner's:
``replicas`` identical replicas behind a least-outstanding-requests router, offered the
workload's own arrival process at ``rate_rps`` for ``duration_s`` seconds, optionally
with one replica killed, its in-flight requests retried) simulated through the scenario
builder — the same simulation ``servelab simulate --scenario`` runs for it. The outcome
is the p95 TTFT/TPOT/E2E, the delivery ratio and whether every SLO target was met.

Workload variants for sensitivity: :func:`scale_context` multiplies every input
length (distribution mean, std, bounds, empirical values) by a factor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


__all__ = ["FleetTask", "FleetOutcome", "run_fleet", "fleet_requests", "scale_context", "with_rate"]


@dataclass(frozen=True, kw_only=True)
class FleetTask:
    """One fleet simulation: ``scenario`` (a whole fleet: replicas, router, rate, arrival
    window, seed, faults) run on ``deployment`` (its already-built deployment), with
    every input length × ``context_factor``."""
    label: str
    scenario: Any                  # servelab.scenario.Scenario
    deployment: Any = None         # scenario.build.deployment(scenario), built once by the planner
    context_factor: float = 1.0
    min_delivery: float = 0.99

    @property
    def replicas(self) -> int:
        return self.scenario.replicas


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


def fleet_requests(task: FleetTask) -> list[Any]:
    """The offered requests of ``task`` (the scenario's, with context scaling)."""
    from ..catalog import generate_requests
    from ..scenario import build

    sc = task.scenario
    if task.context_factor == 1.0:
        return build.requests(sc)
    wl = scale_context(build.workload(sc), task.context_factor)
    return generate_requests(wl, rate_rps=build.rate_rps(sc), duration_s=sc.duration_s, seed=sc.seed)


def run_fleet(task: FleetTask) -> FleetOutcome:
    """Simulate the fleet of ``task`` and judge it against the scenario's SLO — exactly what
    ``servelab simulate --scenario`` runs for the same scenario."""
    from ..metrics import summarize
    from ..scenario import build
    from ..sim import simulate

    sc = task.scenario
    reqs = fleet_requests(task)
    res = simulate(build.sim_config(sc, dep=task.deployment), reqs)
    s = summarize(res.records, duration_s=build.throughput_window_s(res.meta.duration_s), slo=build.slo(sc))
    met = s.get("slo_met") or {}
    delivery = s.get("delivery")
    ok = bool(met) and all(v is True for v in met.values()) and (delivery or 0.0) >= task.min_delivery
    return FleetOutcome(label=task.label, replicas=sc.replicas, rate_rps=build.rate_rps(sc),
                        offered=len(reqs), ttft_p95_s=s["ttft_s"].get("p95"),
                        tpot_p95_s=s["tpot_s"].get("p95"), e2e_p95_s=s["e2e_s"].get("p95"),
                        delivery=delivery, slo_met=ok, per_target=dict(met),
                        replica_lost=bool(sc.faults))
