"""Configuration of a simulated serving fleet: replica schedulers, replicas, admission, autoscaler, faults.

Naming: "engine" means the serving engine being modelled (vLLM, TensorRT-LLM: its profile in
``servelab.perf.engines``; ``ReplicaEngine`` simulates one replica of it). The per-replica
scheduler and KV-cache settings it runs with are a :class:`SchedulerConfig`
(``ReplicaSpec.scheduler``).

Defaults and their sources:
- ``max_num_seqs=256``, ``max_num_batched_tokens=8192``, ``block_size=16``, prefix
  caching and chunked prefill on: vLLM v1 engine defaults for online serving on
  data-centre GPUs (vLLM ``EngineArgs`` / ``SchedulerConfig`` docs).
- Cache-aware router thresholds ``cache_threshold=0.5``, ``balance_abs_threshold=32``,
  ``balance_rel_threshold=1.0001``: SGLang router (sgl-router) defaults.
- Autoscaler ``poll_interval_s=15`` (Kubernetes HPA ``--horizontal-pod-autoscaler-sync-period``
  default) and the HPA rule ``desired = ceil(current * metric / target)``;
  ``tolerance=0.1`` (HPA: no scaling while the metric/target ratio is within 10 % of 1,
  kubernetes.io "Horizontal Pod Autoscaling", algorithm details; ``HPAScalingRules.tolerance``
  "by default 10%"); ``cooldown_s=300`` (HPA scale-down stabilization window default:
  "the highest recommendation for the last 300sec is used", ``HorizontalPodAutoscalerBehavior``).
Delays (provisioning, model load) have no universal value: they default to 0 and
should be set from the platform's own measurements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigError

__all__ = [
    "KVTier", "SchedulerConfig", "ReplicaSpec", "AdmissionConfig", "AutoscalerConfig", "Fault",
    "SimConfig", "ROUTERS", "AUTOSCALER_METRICS",
]

ROUTERS: tuple[str, ...] = ("round_robin", "least_outstanding", "least_kv", "prefix")
AUTOSCALER_METRICS: tuple[str, ...] = ("waiting", "kv_usage", "running")


def _positive(name: str, value: float | int | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or not value > 0:          # NaN fails too
        raise ConfigError(f"{name} must be > 0, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class KVTier:
    """One KV offload tier below HBM (host DRAM, NVMe, …), per replica.

    Bringing ``n`` blocks back from it takes ``latency_s + n · block_bytes / read_bytes_per_s``
    (one latency per request and tier, then the link streams). ``block_bytes`` and
    ``read_bytes_per_s`` are per GPU of the replica (TP shards load in parallel), and
    the bandwidth is the bottleneck of the whole path (e.g. min(NVMe, PCIe host link)).
    """
    name: str
    blocks: int                             # capacity in KV blocks
    block_bytes: float = 0.0                # bytes of one block per GPU
    read_bytes_per_s: float = 1.0           # sustained read bandwidth to the GPU, bytes/s
    latency_s: float = 0.0                  # fixed cost of one load (request set-up)

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("KVTier.name must not be empty")
        if self.blocks < 0 or self.block_bytes < 0 or self.latency_s < 0:
            raise ConfigError(f"KV tier {self.name!r}: blocks, block_bytes and latency_s must be >= 0, got "
                              f"{self.blocks!r}, {self.block_bytes!r}, {self.latency_s!r}")
        _positive(f"KV tier {self.name!r} read_bytes_per_s", self.read_bytes_per_s)

    @property
    def load_s_per_block(self) -> float:
        """Transfer time of one block, block_bytes / read_bytes_per_s."""
        return self.block_bytes / self.read_bytes_per_s


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig:
    """One replica's scheduler and KV cache settings (vLLM names)."""
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    block_size: int = 16
    enable_prefix_caching: bool = True
    enable_chunked_prefill: bool = True
    max_waiting: int | None = None          # None = unbounded; full -> "503 queue full"
    num_kv_blocks: int | None = None        # None = perf.memory_budget(deployment).kv_blocks
    preemption: Literal["recompute"] = "recompute"
    scheduling_policy: Literal["fcfs", "priority"] = "fcfs"
    kv_tiers: tuple[KVTier, ...] = ()       # offload tiers below HBM, fastest first (host DRAM,
                                            # NVMe, …; sized by servelab.scenario.build)
    kv_policy: Any = None                   # sim.tiering.KVPolicy (lru / priority / cost, prefetch); None = lru
    max_loras: int = 0                      # LoRA adapter slots on the GPU (vLLM --max-loras); 0 = not modelled
    lora_load_s: float = 0.0                # time to load a non-resident adapter (adapter bytes / host-to-device
                                            # bandwidth; measure it), added to the step that admits it

    num_speculative_tokens: int = 0         # k draft tokens per verification step; 0 = off
    spec_acceptance_rate: float = 0.0       # α: probability each draft token is accepted (i.i.d.)
    spec_draft_cost: float = 0.0            # draft time per draft token, as a fraction of a
                                            # target decode step's fixed time t0 (measure it)

    def offload_tiers(self) -> tuple[KVTier, ...]:
        """Ordered offload tiers (``kv_tiers`` without those of capacity 0)."""
        return tuple(t for t in self.kv_tiers if t.blocks > 0)

    @property
    def spec_tokens_per_step(self) -> float:
        """Expected tokens per verification step, (1 − α^(k+1)) / (1 − α)
        (Leviathan et al. 2023, "Fast Inference from Transformers via Speculative
        Decoding", §3.1: expected tokens per iteration)."""
        k, a = self.num_speculative_tokens, self.spec_acceptance_rate
        if k == 0:
            return 1.0
        return float(k + 1) if a >= 1.0 else (1.0 - a ** (k + 1)) / (1.0 - a)

    def __post_init__(self) -> None:
        if self.num_speculative_tokens < 0 or not 0.0 <= self.spec_acceptance_rate <= 1.0 \
                or self.spec_draft_cost < 0:
            raise ConfigError(
                f"need num_speculative_tokens >= 0, 0 <= spec_acceptance_rate <= 1, spec_draft_cost >= 0; "
                f"got {self.num_speculative_tokens!r}, {self.spec_acceptance_rate!r}, {self.spec_draft_cost!r}")
        names = [t.name for t in self.kv_tiers]
        if len(set(names)) != len(names):
            raise ConfigError(f"KV tier names must be unique, got {names}")
        if self.max_loras < 0 or self.lora_load_s < 0:
            raise ConfigError(f"max_loras and lora_load_s must be >= 0, got {self.max_loras!r}, "
                              f"{self.lora_load_s!r}")
        _positive("max_num_seqs", self.max_num_seqs)
        _positive("max_num_batched_tokens", self.max_num_batched_tokens)
        _positive("block_size", self.block_size)
        _positive("num_kv_blocks", self.num_kv_blocks, allow_none=True)
        if self.max_waiting is not None and self.max_waiting < 0:
            raise ConfigError(f"max_waiting must be >= 0 or None, got {self.max_waiting!r}")
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ConfigError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= "
                f"max_num_seqs ({self.max_num_seqs}), as vLLM requires")
        if self.preemption != "recompute":
            raise ConfigError(f"unknown preemption {self.preemption!r}; known: recompute")
        if self.scheduling_policy not in ("fcfs", "priority"):
            raise ConfigError(
                f"unknown scheduling_policy {self.scheduling_policy!r}; known: fcfs, priority")


@dataclass(frozen=True, kw_only=True)
class ReplicaSpec:
    """``count`` identical replicas named ``{name}-{i}``.

    ``step_model`` replaces ``perf.StepModel(deployment)`` (any object with
    ``step_time_s(StepBatch)`` and ``decode_affine(B)``): for calibration fits and tests.
    ``deployment`` may then be None if ``scheduler.num_kv_blocks`` is set.
    """
    deployment: Any = None                  # perf.Deployment
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    count: int = 1
    name: str = "replica"
    step_model: Any = None

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ConfigError(f"replica count must be >= 0, got {self.count!r}")
        if self.deployment is None and (self.step_model is None or self.scheduler.num_kv_blocks is None):
            raise ConfigError("a ReplicaSpec without a deployment needs step_model and scheduler.num_kv_blocks")


@dataclass(frozen=True, kw_only=True)
class AdmissionConfig:
    """Cluster front door: bounded queue (503), token bucket (429), timeouts, priorities."""
    max_queue: int | None = None            # waiting requests over all replicas; full -> "503 queue full"
    rate_limit_rps: float | None = None     # token bucket refill rate; empty -> "429 rate limited"
    burst: float | None = None              # bucket size; None = max(1, rate_limit_rps)
    client_timeout_s: float | None = None   # unfinished after this -> "timed_out"
    priority_preemption: bool = False       # a waiting request preempts lower-priority running ones

    def __post_init__(self) -> None:
        if self.max_queue is not None and self.max_queue < 0:
            raise ConfigError(f"max_queue must be >= 0 or None, got {self.max_queue!r}")
        _positive("rate_limit_rps", self.rate_limit_rps, allow_none=True)
        _positive("burst", self.burst, allow_none=True)
        _positive("client_timeout_s", self.client_timeout_s, allow_none=True)

    @property
    def bucket_size(self) -> float:
        if self.burst is not None:
            return self.burst
        return max(1.0, self.rate_limit_rps or 1.0)


@dataclass(frozen=True, kw_only=True)
class AutoscalerConfig:
    """Horizontal autoscaler: desired = ceil(ready * mean(metric) / target), clamped, with the HPA's
    tolerance band and scale-down stabilization window (``cluster.py`` docstring)."""
    metric: Literal["waiting", "kv_usage", "running"] = "waiting"
    target: float = 4.0                     # per-replica target of the metric (assumption; tune)
    poll_interval_s: float = 15.0           # Kubernetes HPA default sync period
    provisioning_delay_s: float = 0.0       # node/GPU acquisition (set from your platform)
    model_load_delay_s: float = 0.0         # weights load + warm-up (set from your platform)
    cooldown_s: float = 300.0               # scale-down stabilization window (HPA default 300 s)
    tolerance: float = 0.1                  # no scaling while |metric/target - 1| <= this (HPA default 0.1)
    min_replicas: int = 1                   # 0 = scale to zero (requests wait at the router
                                            # through a cold start; see cluster.py)
    max_replicas: int = 8
    template: int = 0                       # index in SimConfig.replicas used for new replicas

    def __post_init__(self) -> None:
        if self.metric not in AUTOSCALER_METRICS:
            raise ConfigError(
                f"unknown autoscaler metric {self.metric!r}; known: {', '.join(AUTOSCALER_METRICS)}")
        _positive("target", self.target)
        _positive("poll_interval_s", self.poll_interval_s)
        if self.min_replicas < 0 or self.max_replicas < max(1, self.min_replicas):
            raise ConfigError(
                f"need 0 <= min_replicas <= max_replicas and max_replicas >= 1, got "
                f"{self.min_replicas}..{self.max_replicas}")
        for name in ("provisioning_delay_s", "model_load_delay_s", "cooldown_s", "tolerance"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass(frozen=True, kw_only=True)
class Fault:
    """Kill a replica (index in start order, or name) at ``at_s``.

    In-flight requests (waiting or running there) end "failed", or with
    ``in_flight="retry"`` are sent again through the router (``record.retries``).
    """
    at_s: float
    replica: int | str = 0
    action: Literal["kill"] = "kill"
    in_flight: Literal["fail", "retry"] = "fail"

    def __post_init__(self) -> None:
        if self.action != "kill":
            raise ConfigError(f"unknown fault action {self.action!r}; known: kill")
        if self.in_flight not in ("fail", "retry"):
            raise ConfigError(f"unknown in_flight {self.in_flight!r}; known: fail, retry")


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    replicas: tuple[ReplicaSpec, ...]
    router: str = "round_robin"
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    autoscaler: AutoscalerConfig | None = None
    faults: tuple[Fault, ...] = ()
    exact: bool = False                     # step by step instead of event skipping
    seed: int = 0                           # recorded in meta; the request list carries the randomness
    record_token_times: bool = False
    timeseries_interval_s: float = 1.0
    disagg: Any = None                      # sim.disagg.DisaggConfig: prefill and decode pools

    def __post_init__(self) -> None:
        if self.router not in ROUTERS:
            raise ConfigError(f"unknown router {self.router!r}; known: {', '.join(ROUTERS)}")
        if not self.replicas:
            raise ConfigError("SimConfig.replicas is empty; give at least one ReplicaSpec")
        _positive("timeseries_interval_s", self.timeseries_interval_s)
        if self.autoscaler is not None and not 0 <= self.autoscaler.template < len(self.replicas):
            raise ConfigError(
                f"autoscaler.template {self.autoscaler.template} is not an index of replicas "
                f"(0..{len(self.replicas) - 1})")
