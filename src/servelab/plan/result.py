"""What ``plan()`` returns: the 13 steps as typed fields, the recommendation, the candidates.

:class:`PlanResult` holds one field per step (``characterize`` … ``recommendation_detail``)
and the :class:`Recommendation`. Candidate rows stay plain mappings (one per enumerated
candidate, with the keys listed in docs/plan.md) because they are data for tables, JSON and
the HTML report rather than objects the planner reasons with. :meth:`PlanResult.to_dict`
gives the JSON layout of ``servelab plan --json`` (steps under ``"1_characterize"`` …
``"13_recommendation"``), which is what scripts and dashboards read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Recommendation", "PlanSteps", "PlanResult", "STEP_KEYS"]


@dataclass(frozen=True, kw_only=True)
class Recommendation:
    """The chosen fleet, validated by a whole-fleet simulation."""
    key: str                              # candidate key, e.g. "h100-sxm/tp2/fp8/kv-fp8"
    gpu: str
    tp: int
    pp: int
    ep: int
    weight_dtype: str
    kv_dtype: str
    replicas: int                         # active + spare
    active_replicas: int
    spare_replicas: int
    gpus_total: int                       # billed GPUs (packed instances)
    nodes: list[dict[str, int]]           # [{"gpus_per_node": s, "count": c}, …]
    cost_per_hour: float                  # USD/h
    cost_per_million_tokens: float        # USD per 1M output tokens
    monthly_usd: dict[str, float]         # price tier -> monthly TCO
    price_source: str
    capacity_per_replica_rps: float
    peak_rate_rps: float
    utilization: float
    ttft_p95_s: float | None
    tpot_p95_s: float | None
    e2e_p95_s: float | None
    delivery: float | None
    slo_met: bool
    slo_per_target: dict[str, bool | None]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scenario: dict[str, Any] = field(default_factory=dict)   # the validated fleet as a scenario file
    # Error band the plan was sized at (servelab.perf.band; None with a user calibration),
    # the --confidence edge, whether the band rests on held-out rows, the GPU count at each
    # edge (approximate: capacity scaled by the step-time ratio) and the one-line headline.
    band: dict[str, Any] | None = None
    confidence: str = "expected"
    calibrated: bool = False
    gpus_by_confidence: dict[str, int] | None = None
    fleet_at_band_edges: dict[str, Any] | None = None   # edge -> p95 TTFT/TPOT, SLO met (re-simulated)
    headline: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Step field -> its key in the JSON layout.
STEP_KEYS: dict[str, str] = {
    "characterize": "1_characterize", "weights": "2_weights", "kv_cache": "3_kv_cache",
    "candidates": "4_candidates", "memory": "5_memory", "roofline": "6_roofline",
    "quantization": "7_quantization", "operating_point": "8_operating_point", "search": "9_search",
    "replicas": "10_replicas", "cost": "11_cost", "heterogeneous": "12_heterogeneous",
    "recommendation": "13_recommendation",
}


@dataclass(frozen=True, kw_only=True)
class PlanSteps:
    """The 13 steps of docs/plan.md, each as the planner computed it."""
    characterize: dict[str, Any]          # 1: WorkloadProfile.to_dict()
    weights: dict[str, Any]               # 2: weight dtype -> {"weight_bytes"}
    kv_cache: dict[str, Any]              # 3: KV dtype -> {"kv_bytes_per_token"}
    candidates: dict[str, Any]            # 4: counts by verdict before simulation
    memory: dict[str, Any]                # 5: candidate key -> memory budget
    roofline: dict[str, Any]              # 6: candidate key -> roofline summary
    quantization: list[dict[str, Any]]    # 7: quantized candidate vs its bf16 twin
    operating_point: dict[str, Any]       # 8: candidate key -> SLO batch and rates
    search: dict[str, Any]                # 9: simulations run and verdict counts
    replicas: dict[str, Any]              # 10: candidate key -> sizing
    cost: dict[str, Any]                  # 11: candidate key -> fleet cost
    heterogeneous: dict[str, Any]         # 12: two-pool split
    recommendation: dict[str, Any]        # 13: Pareto front, fleet validation, sensitivity, claims

    def to_dict(self) -> dict[str, Any]:
        return {STEP_KEYS[f.name]: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True, kw_only=True)
class PlanResult:
    inputs: dict[str, Any]
    recommendation: Recommendation | None
    candidates: list[dict[str, Any]]
    steps: PlanSteps
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The ``servelab plan --json`` layout."""
        return {"inputs": self.inputs,
                "recommendation": None if self.recommendation is None else self.recommendation.to_dict(),
                "candidates": self.candidates, "steps": self.steps.to_dict(),
                "timing": {"wall_s": self.wall_s}}
