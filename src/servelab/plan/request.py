"""What to plan for: the one object the CLI validates its flags into."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..scenario.cost import DEFAULT_NODE_SIZES
from .evaluate import SearchSettings
from .sizing import DEFAULT_HEADROOM

__all__ = ["PlanRequest", "DEFAULT_MODEL", "DEFAULT_WORKLOAD", "DEFAULT_RATE_RPS"]

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
    # A calibrated perf.Efficiency (servelab calibrate) and the GPU it was fitted on: it
    # replaces the engine profile's efficiency for candidates on that GPU only; the
    # others keep the profile (efficiencies are fractions of one GPU's peaks, measured
    # with that GPU's kernels). ``calibration_info``: what outputs record (path, sha256, ...).
    calibration: Any = None
    calibration_gpu: str | None = None
    calibration_info: dict[str, Any] | None = None
