"""Discrete-event simulation of an LLM serving fleet (see docs/sim.md).

Replicas run a vLLM-like continuous-batching scheduler over a paged KV cache with
prefix caching (:mod:`.engine`, :mod:`.kv`); the fleet adds routing, admission
control, an autoscaler and faults (:mod:`.cluster`, :mod:`.router`). Between events
that change a batch the engine jumps over whole stretches of decode steps. KV offload
tiers take a policy (lru, priority, cost) and prefetch (:mod:`.tiering`); a fleet may be
split into prefill and decode pools with KV transfers between them (:mod:`.disagg`,
:mod:`.pd_fleet`).
"""

from __future__ import annotations

from .cluster import SimResult, simulate
from .config import (
    AUTOSCALER_METRICS,
    ROUTERS,
    AdmissionConfig,
    AutoscalerConfig,
    SchedulerConfig,
    Fault,
    KVTier,
    ReplicaSpec,
    SimConfig,
)
from .engine import ReplicaEngine
from .request import SimRequest, StepOutcome
from .fakes import AffineStepModel, ConstantStepModel
from .tiering import TIER_POLICIES, KVPolicy
from .disagg import LINKS, DisaggConfig, KVLink, link_for, transfer_s

__all__ = [
    "SchedulerConfig", "KVTier", "ReplicaSpec", "AdmissionConfig", "AutoscalerConfig", "Fault", "SimConfig",
    "ROUTERS", "AUTOSCALER_METRICS",
    "simulate", "SimResult", "ReplicaEngine", "StepOutcome", "SimRequest",
    "ConstantStepModel", "AffineStepModel", "KVPolicy", "TIER_POLICIES",
    "DisaggConfig", "KVLink", "LINKS", "link_for", "transfer_s",
]
