"""The estimate of one deployment described by a scenario: memory budget, KV capacity,
TTFT, decode speed and offline throughput (``perf.estimate``), with the error bands of
its calibration status (``perf.band``) and one replica's cost on the price book
(``scenario.cost``).

Lengths: the scenario's fixed ``input_tokens``/``output_tokens``, else one typical
chat-to-RAG request (:data:`DEFAULT_INPUT_TOKENS` in, :data:`DEFAULT_OUTPUT_TOKENS` out).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError
from ..perf.band import calibration_status, estimate_bands
from ..perf.engines import get_engine
from ..perf.estimate import deployment_warnings, estimate_report
from . import build

__all__ = ["estimate_scenario", "DEFAULT_INPUT_TOKENS", "DEFAULT_OUTPUT_TOKENS"]

# Lengths estimate uses when the scenario sets none (one typical chat-to-RAG request).
DEFAULT_INPUT_TOKENS = 2048
DEFAULT_OUTPUT_TOKENS = 256


def estimate_scenario(sc: Any) -> tuple[dict[str, Any], list[str]]:
    """The estimate of ``sc``'s replica (a JSON-ready dict) and the warnings about it;
    ``ConfigError`` for a disaggregated scenario."""
    if sc.disagg is not None:
        raise ConfigError("estimate sizes one aggregated replica; a disaggregated fleet (disagg) runs "
                          "with `servelab simulate` or `servelab decide`")
    profile = get_engine(sc.engine.profile)
    cal = build.calibration(sc)
    dep = build.deployment(sc, cal=cal)
    warnings = build.warnings(sc, dep, cal=cal)
    input_tokens = sc.input_tokens or DEFAULT_INPUT_TOKENS
    output_tokens = sc.output_tokens or DEFAULT_OUTPUT_TOKENS
    result = estimate_report(dep, input_tokens, output_tokens, profile)
    warnings += deployment_warnings(dep, result)
    result["engine_memory_fraction"] = sc.engine.gpu_memory_utilization   # as given, under the engine's rule
    result["efficiency_source"] = "calibration" if cal is not None else f"engine profile {profile.name}"
    result["calibration"] = cal.to_dict() if cal is not None else None
    result["warnings"] = warnings
    if result.get("feasible"):
        moe = dep.model.moe is not None
        result["bands"] = estimate_bands(result, gpu=dep.gpu, moe=moe, engine=profile.name)
        result["calibration_status"] = calibration_status(dep.gpu, profile.name, moe=moe)
        # one replica at its offline throughput, on the price book's instances (--prices)
        cost = build.fleet_cost(sc, output_tokens_per_s=result["offline_output_tokens_per_s"], replicas=1)
        per_m = cost.cost_per_million_output_tokens_usd
        result["cost"] = {"cost_per_hour_usd": cost.cost_per_hour_usd,
                          "cost_per_million_output_tokens_usd": per_m if math.isfinite(per_m) else None,
                          "billed_gpus": cost.packing.billed_gpus, "price_source": cost.price_source}
    return result, warnings
