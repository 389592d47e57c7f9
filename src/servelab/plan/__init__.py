"""The fleet planner: the sizing algorithm behind ``servelab plan``.

``plan(PlanRequest(...))`` runs the 13 steps (characterize, footprints, candidates,
memory, roofline, quantization, operating point, simulated capacity, replicas, cost,
heterogeneous pools, recommendation) and returns a typed ``PlanResult`` (``to_dict()``:
the ``--json`` layout). See docs/plan.md.
"""

from __future__ import annotations

from .candidates import Candidate, enumerate_candidates, screen_candidate
from .capacity import CapacitySearch, search_capacity
from .characterize import WorkloadProfile, characterize, peak_rate
from ..scenario.cost import PRICE_TIERS, FleetCost, Packing, fleet_cost, pack_replicas
from .evaluate import SearchSettings
from .executor import EXECUTORS, TaskRunner
from .pareto import pareto_front
from .planner import plan
from .result import PlanResult, PlanSteps, Recommendation
from .request import DEFAULT_MODEL, DEFAULT_RATE_RPS, DEFAULT_WORKLOAD, PlanRequest
from .sizing import KNEE_UTILIZATION, Sizing, size_replicas

__all__ = [
    "plan", "PlanRequest", "PlanResult", "PlanSteps", "Recommendation", "SearchSettings", "DEFAULT_MODEL", "DEFAULT_WORKLOAD", "DEFAULT_RATE_RPS",
    "Candidate", "enumerate_candidates", "screen_candidate",
    "CapacitySearch", "search_capacity", "WorkloadProfile", "characterize", "peak_rate",
    "PRICE_TIERS", "FleetCost", "Packing", "fleet_cost", "pack_replicas",
    "EXECUTORS", "TaskRunner", "pareto_front", "KNEE_UTILIZATION", "Sizing", "size_replicas",
]
