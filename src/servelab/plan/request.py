"""What to plan for: the one object the CLI validates its flags into."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..scenario.cost import DEFAULT_NODE_SIZES
from .evaluate import SearchSettings
from .sizing import DEFAULT_HEADROOM

__all__ = ["PlanRequest", "base_scenario", "DEFAULT_MODEL", "DEFAULT_WORKLOAD", "DEFAULT_RATE_RPS"]

DEFAULT_MODEL = "llama-3.1-8b"
DEFAULT_WORKLOAD = "chat"
DEFAULT_RATE_RPS = 20.0


@dataclass(frozen=True, kw_only=True)
class PlanRequest:
    model: str = DEFAULT_MODEL
    workload: str = DEFAULT_WORKLOAD
    rate_rps: float | None = DEFAULT_RATE_RPS   # None: the workload preset's rate
    slo: str | None = None                      # "ttft_p95=2s,tpot_p95=50ms"; None: the preset's
    gpus: tuple[str, ...] = ()                  # empty: every GPU in the catalog
    weight_dtypes: tuple[str, ...] = ("bf16", "fp8")
    kv_dtypes: tuple[str, ...] = ()             # empty: same list as weight_dtypes
    tps: tuple[int, ...] = (1, 2, 4, 8)
    pps: tuple[int, ...] = ()                   # empty: 1, plus 2 when the weights outgrow a node
    headroom: float = DEFAULT_HEADROOM
    spares: int = 1                              # N+1
    node_sizes: tuple[int, ...] = DEFAULT_NODE_SIZES
    characterize_s: float = 600.0                # arrivals drawn to measure the peak rate
    peak_window_s: float = 10.0
    peak_percentile: float = 99.0
    search: SearchSettings = field(default_factory=SearchSettings)
    ub_slack: float = 1.5        # capacity upper bound = slack × analytic saturation rate
    prune_factor: float = 3.0    # skip candidates whose cost lower bound > factor × best
    wave_size: int = 4           # candidates simulated per round (fixed: results never
                                 # depend on --jobs)
    fleet_duration_s: float = 120.0
    heterogeneous: bool = True
    sensitivity: bool = True
    executor: str = "local"
    jobs: int | None = None
    engine: str = "vllm"        # engine profile (servelab.perf.engines): step overheads, KV rule
    # Which edge of each candidate's error band the plan sizes for (servelab.perf.band; the
    # `plan` command defaults to "pessimistic"):
    # "pessimistic" scales step times to the band's upper edge, "optimistic" to its lower
    # edge, "expected" keeps the model's values.
    confidence: str = "expected"
    # A calibrated perf.Efficiency (servelab calibrate) and the GPU it was fitted on: it
    # replaces the engine profile's efficiency for candidates on that GPU only; the
    # others keep the profile (efficiencies are fractions of one GPU's peaks, measured
    # with that GPU's kernels). ``calibration_info``: what outputs record (path, sha256, ...).
    calibration: Any = None
    calibration_gpu: str | None = None
    calibration_info: dict[str, Any] | None = None
    # The base scenario (servelab.scenario.Scenario) every candidate derives from: model,
    # workload and rate, SLO, engine knobs, LoRA, speculative decoding, KV tiers, prices.
    # None: built from the fields above (base_scenario). When given, its model, workload,
    # rate, SLO, engine profile, seed and node sizes are the plan's.
    scenario: Any = None


def base_scenario(req: PlanRequest) -> Any:
    """The scenario candidates derive from (``req.scenario``, else one built from ``req``).
    Its ``duration_s`` and ``seed`` are the fleet validation's arrival window and seed, its
    router least-outstanding (the plan's fleet router)."""
    from ..scenario import Scenario, build

    st = req.search
    if req.scenario is None:
        sc = Scenario(model=req.model, workload=req.workload, rate_rps=req.rate_rps, slo=req.slo,
                      engine={"profile": req.engine, "max_num_seqs": st.max_num_seqs,
                              "max_num_batched_tokens": st.max_num_batched_tokens},
                      prices={"node_sizes": req.node_sizes})
    else:
        sc = req.scenario
    return build.derive(sc, seed=st.seed, duration_s=req.fleet_duration_s, router="least-outstanding",
                        replicas=1, autoscaler=None, faults=[])
