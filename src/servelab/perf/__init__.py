"""Analytical performance model: memory budget, roofline step times, derived answers.

The one interface downstream parts use is :class:`StepModel` — the wall time of one
engine step for a batch. See ``docs/perf.md`` for equations and sources.
"""

from __future__ import annotations

from .answers import (DecodePoint, OfflineThroughput, decode_point, offline_throughput,
                      ridge_point, step_bound, ttft_s)
from .deployment import FIT_NOTE, Deployment, Efficiency, StepBatch, validate_deployment
from .engines import (DEFAULT_ENGINE, ENGINE_PROFILES, EngineProfile, engine_names,
                      get_engine)
from .memory import MemoryBudget, kv_bytes_per_token, memory_budget, weight_bytes_total
from .step import StepModel

__all__ = [
    "Deployment", "Efficiency", "StepBatch", "MemoryBudget", "memory_budget", "StepModel",
    "validate_deployment", "FIT_NOTE", "kv_bytes_per_token", "weight_bytes_total",
    "DecodePoint", "OfflineThroughput", "ttft_s", "decode_point", "ridge_point",
    "offline_throughput", "step_bound",
    "EngineProfile", "ENGINE_PROFILES", "DEFAULT_ENGINE", "get_engine", "engine_names",
]
