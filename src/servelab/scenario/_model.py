"""The Scenario: one typed, validated description of what runs where, under what load.

A scenario names a model on a GPU type with its parallelism and precisions, the engine
that runs it (profile and vLLM-named knobs), LoRA and speculative-decoding settings,
KV offload tiers, the fleet (replicas, router, admission, autoscaler, faults), the
workload and its arrivals, the SLO, a calibration file and prices. Every command and
every decision file validates its input into this one model; :mod:`.build` is the only
place that turns it into a deployment, a simulator configuration, a request list, a
throughput window and a fleet cost.

Field names follow vLLM where vLLM has one (``max_num_seqs``, ``max_num_batched_tokens``,
``gpu_memory_utilization``, ``block_size``, ``enable_prefix_caching``,
``enable_chunked_prefill``, ``max_loras``, ``num_speculative_tokens``). Units are in
the names (``_s``, ``_gib``, ``_gb_s``, ``_ms``, ``_rps``, ``_usd``).

"Engine" means one thing here: the serving engine whose behaviour is modelled, chosen
by ``engine.profile`` (``servelab.perf.engines``) and tuned by the other ``engine``
fields. The simulator's per-replica scheduler settings are derived from it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ServelabError
from ..perf.quant import KV_DTYPES, WEIGHT_DTYPES
from ._curve import RateCurveSettings
from ._disagg import DisaggSettings, KVPolicySettings

__all__ = [
    "Scenario", "EngineSettings", "LoraSettings", "SpeculativeSettings", "KVTierSettings",
    "AdmissionSettings", "AutoscalerSettings", "FaultSettings", "BurstSpec", "PrefixOverride",
    "PriceSettings", "ROUTERS", "ROUTER_ALIASES",
]

# Scenario router names -> simulator router names. Underscore spellings are accepted too.
ROUTERS: dict[str, str] = {"round-robin": "round_robin", "least-outstanding": "least_outstanding",
                           "least-kv": "least_kv", "prefix-aware": "prefix"}
ROUTER_ALIASES: dict[str, str] = {**{v: k for k, v in ROUTERS.items()}, "prefix_aware": "prefix-aware"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _accepted_by(check: Any, value: str) -> str:
    """``value`` if ``check(value)`` accepts it; its ServelabError as pydantic's ValueError."""
    try:
        check(value)
    except ServelabError as exc:
        raise ValueError(str(exc)) from None
    return value


def _check_catalog(kind: str, value: str) -> str:
    from .. import catalog

    getter = {"model": catalog.get_model, "gpu": catalog.get_gpu,
              "workload": catalog.get_workload}[kind]
    return _accepted_by(getter, value)


class EngineSettings(_Model):
    profile: str = Field(
        "vllm", description="Engine profile (servelab.perf.engines): efficiencies, per-step overhead, KV memory rule.")
    max_num_seqs: int = Field(
        256, ge=1, le=65536, description="Most sequences in one batch (vLLM --max-num-seqs).")
    max_num_batched_tokens: int = Field(
        8192, ge=16, le=1 << 20, description="Token budget per engine step (vLLM --max-num-batched-tokens).")
    max_queue: int | None = Field(
        None, ge=0, le=1 << 20,
        description="Bound on waiting requests per replica; beyond it requests are rejected (503). None: unbounded.")
    gpu_memory_utilization: float = Field(
        0.9, gt=0.0, le=1.0, description="Memory fraction under the profile's KV rule: of the whole GPU "
                                         "(vllm gpu_memory_utilization), of the memory free after weights (trtllm).")
    block_size: int = Field(16, ge=1, le=1024, description="KV block size in tokens (vLLM --block-size).")
    enable_prefix_caching: bool = Field(True, description="Automatic prefix caching (vLLM default on).")
    enable_chunked_prefill: bool = Field(True, description="Chunked prefill (vLLM V1 default on).")
    scheduling_policy: Literal["fcfs", "priority"] = Field(
        "fcfs", description="Waiting-queue order (vLLM --scheduling-policy).")

    @field_validator("profile")
    @classmethod
    def _profile(cls, v: str) -> str:
        from ..perf.engines import get_engine

        try:
            return get_engine(v).name
        except ServelabError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _budget(self) -> "EngineSettings":
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= "
                             f"max_num_seqs ({self.max_num_seqs}), as vLLM requires")
        return self


class LoraSettings(_Model):
    adapters: int = Field(..., ge=1, le=100_000, description="Distinct LoRA adapters the requests use.")
    distribution: Literal["uniform", "zipf"] = Field(
        "uniform", description="Adapter popularity: equal shares, or Zipf (share of rank k ∝ 1/k).")
    max_loras: int = Field(1, ge=1, le=4096, description="Adapter slots on the GPU (vLLM --max-loras).")
    load_s: float = Field(
        0.0, ge=0.0, le=3600.0, description="Time to load a non-resident adapter (adapter bytes / host-to-device "
                                            "bandwidth; measure it), added to the step that admits it.")


class SpeculativeSettings(_Model):
    num_tokens: int = Field(..., ge=1, le=64, description="Draft tokens per verification step (vLLM num_speculative_tokens).")
    acceptance_rate: float = Field(
        ..., ge=0.0, le=1.0, description="Probability each draft token is accepted (i.i.d.).")
    draft_cost: float = Field(
        0.0, ge=0.0, le=10.0, description="Draft time per draft token as a fraction of a target decode step's fixed time.")


class KVTierSettings(_Model):
    name: str = Field(..., min_length=1, max_length=40, description="Tier name (dram, nvme, …).")
    gib: float = Field(..., ge=0.0, le=1 << 24, description="Capacity per replica, GiB.")
    read_gb_s: float | None = Field(
        None, gt=0.0, le=1e5, description="Read bandwidth per replica, GB/s (None: only the GPU's PCIe link limits it).")
    latency_ms: float = Field(0.0, ge=0.0, le=1e5, description="Fixed cost of one load, ms.")


class AdmissionSettings(_Model):
    max_queue: int | None = Field(
        None, ge=0, le=1 << 24, description="Waiting requests over the whole fleet; full -> 503.")
    rate_limit_rps: float | None = Field(None, gt=0.0, le=1e7, description="Token-bucket admission limit (429 beyond it).")
    burst: float | None = Field(None, gt=0.0, le=1e7, description="Token-bucket size (default max(1, rate limit)).")
    timeout_s: float | None = Field(None, gt=0.0, le=1e6, description="Client timeout per request.")
    priority_preemption: bool = Field(False, description="A waiting request preempts lower-priority running ones.")


class AutoscalerSettings(_Model):
    metric: Literal["waiting", "kv_usage", "running"] = Field("waiting", description="Per-replica metric the HPA rule reads.")
    target: float = Field(4.0, gt=0.0, le=1e6, description="Per-replica target of the metric.")
    min_replicas: int = Field(1, ge=0, le=4096, description="Floor (0 = scale to zero).")
    max_replicas: int = Field(8, ge=1, le=4096, description="Ceiling.")
    poll_interval_s: float = Field(15.0, gt=0.0, le=86400.0, description="Polling period (Kubernetes HPA default 15 s).")
    provisioning_delay_s: float = Field(0.0, ge=0.0, le=86400.0, description="Node acquisition delay.")
    model_load_delay_s: float = Field(0.0, ge=0.0, le=86400.0, description="Weights load and warm-up delay.")
    cooldown_s: float = Field(300.0, ge=0.0, le=86400.0, description="Scale-down stabilization window (HPA default 300 s).")
    tolerance: float = Field(0.1, ge=0.0, le=10.0, description="No scaling while |metric/target - 1| <= this "
                             "(Kubernetes HPA default 0.1).")

    @model_validator(mode="after")
    def _bounds(self) -> "AutoscalerSettings":
        if self.max_replicas < max(1, self.min_replicas):
            raise ValueError(f"need min_replicas <= max_replicas, got {self.min_replicas}..{self.max_replicas}")
        return self


class FaultSettings(_Model):
    at_s: float = Field(..., ge=0.0, description="When the replica is killed, s from run start.")
    replica: int = Field(0, ge=0, description="Index of the replica (in start order).")
    in_flight: Literal["fail", "retry"] = Field("fail", description="What happens to its in-flight requests.")


class BurstSpec(_Model):
    factor: float = Field(..., ge=1.0, le=100.0, description="Arrival rate multiplier during the burst window.")
    start_s: float = Field(..., ge=0.0, description="Start of the burst window, seconds from run start.")
    duration_s: float = Field(..., gt=0.0, description="Length of the burst window in seconds.")


class PrefixOverride(_Model):
    num_groups: int = Field(..., ge=1, le=100000, description="Distinct shared prefixes.")
    prefix_tokens: int = Field(..., ge=1, description="Tokens in each shared prefix (part of the input).")
    fraction: float = Field(1.0, gt=0.0, le=1.0, description="Fraction of requests carrying a prefix.")


class PriceSettings(_Model):
    gpu_hour_usd: float | None = Field(
        None, gt=0.0, le=1e4, description="Price per GPU-hour, USD (default: the GPU catalog's on-demand price).")
    source: str = Field("", max_length=300, description="Where gpu_hour_usd comes from (shown with every cost).")
    node_sizes: tuple[int, ...] = Field(
        (1, 2, 4, 8), min_length=1, description="Instance sizes in GPUs that replicas are packed into.")
    book: str | None = Field(
        None, max_length=1000,
        description="Price file (CSV or YAML with the columns of `servelab catalog prices`) whose instance "
                    "offers the fleet is packed into; default: the built-in price book. Ignored when "
                    "gpu_hour_usd is set.")
    tier: Literal["on_demand", "spot", "reserved_1y", "reserved_3y"] = Field(
        "on_demand", description="Billing tier of the price-book offers.")

    @field_validator("node_sizes")
    @classmethod
    def _sizes(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(s < 1 or s > 1024 for s in v):
            raise ValueError(f"node sizes must be between 1 and 1024 GPUs, got {list(v)}")
        return tuple(sorted(set(v)))


class Scenario(_Model):
    """One serving scenario. Every field has a default except none: the empty scenario is
    Llama-3.1-8B on one H100 SXM under the chat workload at its preset rate."""

    # model and hardware
    model: str = Field("llama-3.1-8b", description="Catalog model id or a path to a Hugging Face config.json.")
    gpu: str = Field("h100-sxm", description="Catalog GPU id.")
    tp: int = Field(1, ge=1, le=64, description="Tensor-parallel degree.")
    pp: int = Field(1, ge=1, le=64, description="Pipeline-parallel degree.")
    ep: int = Field(1, ge=1, le=256, description="Expert-parallel degree (MoE).")
    weight_dtype: str = Field("bf16", description="Weight precision.",
                              json_schema_extra={"enum": list(WEIGHT_DTYPES)})
    kv_dtype: str = Field("bf16", description="KV cache precision.", json_schema_extra={"enum": list(KV_DTYPES)})
    # engine
    engine: EngineSettings = Field(
        default_factory=EngineSettings,
        description="Engine profile and knobs; a bare name (`engine: trtllm`) sets the profile only.")
    lora: LoraSettings | None = Field(None, description="Multi-LoRA serving (None: no adapters).")
    speculative: SpeculativeSettings | None = Field(None, description="Speculative decoding (None: off).")
    kv_tiers: tuple[KVTierSettings, ...] = Field(
        (), description="KV offload tiers below HBM per replica, fastest first (e.g. dram, nvme).")
    kv_policy: KVPolicySettings | None = Field(
        None, description="KV tier policy (lru, priority, cost) and prefetch (None: lru, no prefetch).")
    calibration: str | None = Field(
        None, description="Calibration JSON (`servelab calibrate`): its efficiency replaces the engine profile's.")
    step_time_factor: float = Field(
        1.0, gt=0.0, le=100.0,
        description="Multiplies every modelled step time (servelab.perf.band.scale_efficiency); "
                    "`plan --confidence` sets it to the edge of the candidate's error band.")
    # fleet
    replicas: int = Field(1, ge=0, le=4096, description="Replicas at start (0 needs an autoscaler with min_replicas 0).")
    router: Literal["round-robin", "least-outstanding", "least-kv", "prefix-aware"] = Field(
        "round-robin", description="How requests are spread over replicas.")
    admission: AdmissionSettings = Field(default_factory=AdmissionSettings, description="Fleet front door.")
    autoscaler: AutoscalerSettings | None = Field(None, description="Horizontal autoscaler (None: fixed fleet).")
    faults: tuple[FaultSettings, ...] = Field((), description="Replicas killed during the run.")
    disagg: DisaggSettings | None = Field(
        None, description="Disaggregated prefill/decode pools and the KV link (None: aggregated replicas).")
    # workload
    workload: str = Field("chat", description="Catalog workload preset.")
    rate_rps: float | None = Field(None, gt=0.0, le=1e6, description="Mean arrival rate, requests/s (default: the preset's).")
    duration_s: float = Field(600.0, gt=0.0, le=86400.0 * 7, description="Arrival window in seconds.")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed of arrivals, lengths and the simulator.")
    input_tokens: int | None = Field(None, ge=1, le=1 << 21, description="Override: fixed input length.")
    output_tokens: int | None = Field(None, ge=1, le=1 << 20, description="Override: fixed output length.")
    prefix: PrefixOverride | None = Field(None, description="Override: shared-prefix groups.")
    priorities: dict[int, float] | None = Field(
        None, description="Override: priority classes (lower = more important; tenants) and their shares, e.g. {0: 0.2, 1: 0.8}.")
    priority_by_prefix: bool = Field(
        False, description="Tenants own their prefixes: a request with a shared prefix takes its group's priority "
                           "class (groups split among classes by share, most important first).")
    arrival: Literal["constant", "poisson", "gamma"] | None = Field(None, description="Override: arrival process.")
    burstiness: float | None = Field(None, gt=0.0, le=1000.0, description="Override: gamma shape (vLLM --burstiness).")
    burst: BurstSpec | None = Field(None, description="A window where the rate is multiplied.")
    rate_curve: RateCurveSettings | None = Field(
        None, description="Time-varying arrival rate (diurnal, table, points or a trace) instead of rate_rps.")
    slo: str | None = Field(None, description="SLO like 'ttft_p95=2s,tpot_p95=50ms' (default: the workload's).")
    # money
    prices: PriceSettings = Field(default_factory=PriceSettings, description="GPU price and instance sizes.")

    _m = field_validator("model")(lambda cls, v: v if v.endswith(".json") else _check_catalog("model", v))
    _g = field_validator("gpu")(lambda cls, v: _check_catalog("gpu", v))
    _w = field_validator("workload")(lambda cls, v: _check_catalog("workload", v))

    @field_validator("engine", mode="before")
    @classmethod
    def _engine_name(cls, v: Any) -> Any:
        return {"profile": v} if isinstance(v, str) else v

    @field_validator("router", mode="before")
    @classmethod
    def _router(cls, v: Any) -> Any:
        return ROUTER_ALIASES.get(v, v) if isinstance(v, str) else v

    @field_validator("weight_dtype", "kv_dtype", mode="before")
    @classmethod
    def _dtype(cls, v: Any, info: Any) -> Any:
        if not isinstance(v, str):
            return v
        v = v.strip().lower()
        valid = WEIGHT_DTYPES if info.field_name == "weight_dtype" else KV_DTYPES
        if v not in valid:
            kind = "weight" if info.field_name == "weight_dtype" else "KV"
            raise ValueError(f"unknown {kind} dtype {v!r}; valid: {', '.join(valid)}")
        return v

    @field_validator("slo")
    @classmethod
    def _slo(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from ..catalog import parse_slo

        return _accepted_by(parse_slo, v)

    @model_validator(mode="after")
    def _fleet(self) -> "Scenario":
        if self.replicas == 0 and (self.autoscaler is None or self.autoscaler.min_replicas != 0):
            raise ValueError("replicas 0 needs an autoscaler with min_replicas 0 (scale to zero; "
                             "on the command line: --autoscale-max N --autoscale-min 0)")
        if self.rate_curve is not None and self.rate_rps is not None:
            raise ValueError("give rate_rps or rate_curve, not both (rate_curve.scale multiplies a curve)")
        if self.disagg is not None and self.autoscaler is not None and self.autoscaler.min_replicas < 1:
            raise ValueError("with disagg each pool is autoscaled separately and cannot scale to zero; "
                             f"autoscaler min_replicas must be >= 1, got {self.autoscaler.min_replicas}")
        names = [t.name for t in self.kv_tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"kv_tiers names must be unique, got {names}")
        return self

    @property
    def sim_router(self) -> str:
        """The simulator's name of :attr:`router`."""
        return ROUTERS[self.router]
