"""Analytical performance model: memory budget, roofline step times, derived answers.

The one interface downstream parts use is :class:`StepModel` — the wall time of one
engine step for a batch. See ``docs/perf.md`` for equations and sources.
"""

from __future__ import annotations

from .deployment import Deployment, Efficiency, StepBatch
from .memory import MemoryBudget, memory_budget
from .step import StepModel

__all__ = [
    "Deployment", "Efficiency", "StepBatch", "MemoryBudget", "memory_budget", "StepModel",
]
