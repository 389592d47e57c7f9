"""Decision files: the YAML a user writes, validated into pydantic models.

A decision file has three parts (full reference in docs/evidence.md)::

    name: bounded-queue-burst
    scenarios:                       # named deployments under a workload
      bounded:
        model: llama-3.1-8b          # catalog model id
        gpu: h100-sxm                # catalog GPU id
        tp: 1                        # tensor / pipeline / expert parallel degrees
        workload: chat               # catalog workload preset (+ overrides below)
        rate_rps: 10
        duration_s: 60
        burst: {factor: 3, start_s: 20, duration_s: 10}
        engine: {profile: vllm, max_num_seqs: 256, max_queue: 64}   # or just `engine: vllm`
        experiments: [{kind: simulate}]
    claims:
      - id: bounded-delivery
        scenario: bounded
        metric: delivery             # any metrics.metric_names() entry, cost or kernel metric
        comparison: ">="
        threshold: 0.99              # or {scenario: baseline, factor: 0.95}
        evidence: {kinds: [simulate, bench], min_requests: 200}

Validation errors are :class:`~servelab.errors.ConfigError` listing every bad field by
its path (``claims[0].comparison``) with the valid values or kinds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from ..errors import ConfigError, ServelabError

__all__ = [
    "Decision", "Scenario", "EngineSettings", "BurstSpec", "PrefixOverride",
    "SimulateExperiment", "BenchExperiment", "ImportSpec", "KernelsExperiment",
    "Claim", "RelativeThreshold", "EvidenceRequirement", "KernelFilter",
    "load_decision", "parse_decision", "COST_METRICS", "EXPERIMENT_KINDS", "ROUTERS",
]

COMPARISONS = ("<", "<=", ">", ">=")
EXPERIMENT_KINDS = ("simulate", "bench", "kernels")
COST_METRICS = ("cost_per_million_tokens",)
ROUTERS = ("round-robin", "least-outstanding", "least-kv", "prefix-aware")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EngineSettings(_Model):
    max_num_seqs: int = Field(
        256, ge=1, le=65536, description="Most sequences in one batch (vLLM --max-num-seqs).")
    max_num_batched_tokens: int = Field(
        8192, ge=16, le=1 << 20, description="Token budget per engine step (chunked prefill).")
    max_queue: int | None = Field(
        None, ge=0, le=1 << 20, description="Bound on waiting requests per replica; beyond it requests are rejected (503). None: unbounded.")
    gpu_memory_utilization: float = Field(
        0.9, gt=0.0, le=1.0, description="Memory fraction under the profile's KV rule: of the whole GPU "
                                         "(vllm gpu_memory_utilization), of the memory free after weights (trtllm).")
    profile: str = Field(
        "vllm", description="Engine profile (servelab.perf.engines): efficiencies, per-step overhead, KV memory rule.")

    @field_validator("profile")
    @classmethod
    def _profile(cls, v: str) -> str:
        from ..perf.engines import get_engine

        try:
            return get_engine(v).name
        except ServelabError as exc:
            raise ValueError(str(exc)) from None


class BurstSpec(_Model):
    factor: float = Field(
        ..., ge=1.0, le=100.0, description="Arrival rate multiplier during the burst window.")
    start_s: float = Field(
        ..., ge=0.0, description="Start of the burst window, seconds from run start.")
    duration_s: float = Field(..., gt=0.0, description="Length of the burst window in seconds.")


class PrefixOverride(_Model):
    num_groups: int = Field(..., ge=1, le=100000, description="Distinct shared prefixes.")
    prefix_tokens: int = Field(
        ..., ge=1, description="Tokens in each shared prefix (part of the input).")
    fraction: float = Field(
        1.0, gt=0.0, le=1.0, description="Fraction of requests carrying a prefix.")


class ImportSpec(_Model):
    format: Literal["vllm", "guidellm"] = Field(
        ..., description="Result file format: `vllm bench serve` JSON or guidellm JSON.")
    path: str = Field(
        ..., min_length=1, description="Path to the result file (relative to the decision file).")
    benchmark: int = Field(
        0, ge=0, description="Which benchmark of a multi-benchmark file (guidellm sweeps), from 0.")


class SimulateExperiment(_Model):
    kind: Literal["simulate"] = "simulate"
    exact: bool = Field(False, description="Step-by-step engine mode instead of event skipping.")


class BenchExperiment(_Model):
    kind: Literal["bench"] = "bench"
    url: str | None = Field(
        None, description="Base URL of an OpenAI-compatible endpoint to measure.")
    import_: ImportSpec | None = Field(
        None, alias="import", description="A result file to import instead of measuring.")
    served_model: str | None = Field(
        None, description="Model name the endpoint serves (default: the scenario's model).")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (the key is never stored).")
    num_prompts: int | None = Field(
        None, ge=1, le=1_000_000, description="Requests to send (default: rate × duration).")

    @model_validator(mode="after")
    def _one_source(self) -> "BenchExperiment":
        if (self.url is None) == (self.import_ is None):
            raise ValueError("a bench experiment needs exactly one of 'url' or 'import'")
        return self


class KernelsExperiment(_Model):
    kind: Literal["kernels"] = "kernels"
    path: str = Field(..., min_length=1, description="Kernel-lab results file (JSONL rows).")


Experiment = Annotated[
    Union[SimulateExperiment, BenchExperiment, KernelsExperiment], Field(discriminator="kind")
]


def _accepted_by(check, value: str) -> str:
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


class Scenario(_Model):
    model: str = Field(..., description="Catalog model id or a path to a Hugging Face config.json.")
    gpu: str = Field(..., description="Catalog GPU id.")
    tp: int = Field(1, ge=1, le=64, description="Tensor-parallel degree.")
    pp: int = Field(1, ge=1, le=64, description="Pipeline-parallel degree.")
    ep: int = Field(1, ge=1, le=256, description="Expert-parallel degree (MoE).")
    weight_dtype: Literal["bf16", "fp16", "fp8", "int8", "int4"] = "bf16"
    kv_dtype: Literal["bf16", "fp16", "fp8"] = "bf16"
    workload: str = Field("chat", description="Catalog workload preset.")
    input_tokens: int | None = Field(
        None, ge=1, le=1 << 21, description="Override: fixed input length.")
    output_tokens: int | None = Field(
        None, ge=1, le=1 << 20, description="Override: fixed output length.")
    prefix: PrefixOverride | None = Field(None, description="Override: shared-prefix groups.")
    arrival: Literal["constant", "poisson", "gamma"] | None = Field(
        None, description="Override: arrival process.")
    burstiness: float | None = Field(
        None, gt=0.0, le=1000.0, description="Override: gamma shape (vLLM --burstiness).")
    rate_rps: float = Field(..., gt=0.0, le=1e6, description="Mean arrival rate, requests/s.")
    burst: BurstSpec | None = Field(None, description="A window where the rate is multiplied.")
    duration_s: float = Field(60.0, gt=0.0, le=86400.0, description="Arrival window in seconds.")
    seed: int = Field(0, ge=0, description="Seed of arrivals, lengths and the simulator.")
    replicas: int = Field(1, ge=1, le=4096, description="Identical replicas behind the router.")
    router: Literal["round-robin", "least-outstanding", "least-kv", "prefix-aware"] = "round-robin"
    rate_limit_rps: float | None = Field(
        None, gt=0.0, description="Token-bucket admission limit (429 beyond it).")
    rate_limit_burst: int | None = Field(None, ge=1, description="Token-bucket size.")
    timeout_s: float | None = Field(None, gt=0.0, description="Client timeout per request.")
    slo: str | None = Field(
        None, description="SLO like 'ttft_p95=2s,e2e_p95=2s' (default: the workload's).")
    engine: EngineSettings = Field(
        default_factory=EngineSettings,
        description="Engine profile and limits; a bare name (`engine: trtllm`) sets the profile only.")
    experiments: list[Experiment] = Field(
        default_factory=lambda: [SimulateExperiment()], min_length=1,
        description="Experiments that produce evidence for this scenario.")

    _model = field_validator("model")(lambda cls, v: v if v.endswith(".json") else _check_catalog("model", v))
    _gpu = field_validator("gpu")(lambda cls, v: _check_catalog("gpu", v))
    _workload = field_validator("workload")(lambda cls, v: _check_catalog("workload", v))

    @field_validator("engine", mode="before")
    @classmethod
    def _engine_name(cls, v: Any) -> Any:
        return {"profile": v} if isinstance(v, str) else v

    @field_validator("slo")
    @classmethod
    def _slo(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from ..catalog import parse_slo

        return _accepted_by(parse_slo, v)


class RelativeThreshold(_Model):
    scenario: str = Field(..., description="Baseline scenario whose value scales the threshold.")
    factor: float = Field(1.0, gt=0.0, le=1e6, description="Threshold = factor × baseline value.")


class EvidenceRequirement(_Model):
    kinds: tuple[Literal["simulate", "bench", "kernels"], ...] = Field(
        ("simulate", "bench"), min_length=1, description="Experiment kinds whose runs count.")
    min_requests: int = Field(
        100, ge=1, description="Fewest offered requests a run needs to count.")


class KernelFilter(_Model):
    kernel: str = Field(..., description="Kernel name in the results file (e.g. rmsnorm).")
    provider: str | None = Field(None, description="Provider (triton, torch, cublas, …).")
    dtype: str | None = None
    shape: str | dict[str, int] | None = Field(
        None, description="Shape as in the results file: a mapping like {rows: 4096, hidden: 8192}.")


class Claim(_Model):
    id: str = Field(..., description="Stable id (letters, digits, . _ -).")
    text: str = Field("", description="The claim in words.")
    scenario: str = Field(..., description="Scenario the claim is about.")
    kernel: KernelFilter | None = Field(
        None, description="Rows of the kernel-lab results this claim is about.")
    metric: str = Field(
        ..., description="Metric name: metrics.metric_names(), cost_per_million_tokens, or a kernel metric with 'kernel'.")
    comparison: Literal["<", "<=", ">", ">="]
    threshold: float | RelativeThreshold = Field(
        ..., description="Absolute number, or {scenario, factor}.")
    evidence: EvidenceRequirement = Field(default_factory=EvidenceRequirement)
    confidence: float = Field(0.95, ge=0.5, le=0.999, description="Bootstrap interval level.")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise ValueError(f"claim id {v!r} must be 1–80 letters, digits, '.', '_' or '-'")
        return v

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("kernel") is not None or v in COST_METRICS:
            return v
        from ..metrics import metric_value

        try:
            metric_value([], v)
        except ConfigError as exc:
            raise ValueError(f"{exc}; also: {', '.join(COST_METRICS)}, or a kernel-lab "
                             f"metric such as pct_of_peak together with 'kernel'") from None
        return v

    @model_validator(mode="after")
    def _kernel_kinds(self) -> "Claim":
        if self.kernel is not None and "kernels" not in self.evidence.kinds:
            raise ValueError("a claim with 'kernel' rows needs 'kernels' in evidence.kinds")
        return self


class Decision(_Model):
    name: str = Field(..., min_length=1, description="Name of the decision.")
    description: str = ""
    scenarios: dict[str, Scenario] = Field(..., min_length=1)
    claims: list[Claim] = Field(..., min_length=1)
    bootstrap_resamples: int = Field(
        1000, ge=100, le=100_000, description="Bootstrap resamples per interval.")
    seed: int = Field(0, ge=0, description="Seed of the bootstrap.")

    @model_validator(mode="after")
    def _cross(self) -> "Decision":
        known = ", ".join(self.scenarios)
        seen: set[str] = set()
        for i, c in enumerate(self.claims):
            if c.id in seen:
                raise ValueError(f"claims[{i}].id: duplicate claim id {c.id!r}")
            seen.add(c.id)
            if c.scenario not in self.scenarios:
                raise ValueError(f"claims[{i}].scenario: unknown scenario {c.scenario!r}; known: {known}")
            if isinstance(c.threshold, RelativeThreshold):
                if c.threshold.scenario not in self.scenarios:
                    raise ValueError(f"claims[{i}].threshold.scenario: unknown scenario "
                                     f"{c.threshold.scenario!r}; known: {known}")
                if c.threshold.scenario == c.scenario:
                    raise ValueError(f"claims[{i}].threshold.scenario: a relative threshold "
                                     f"needs another scenario than the claim's own")
                if c.kernel is not None:
                    raise ValueError(f"claims[{i}].threshold: kernel claims take an absolute threshold")
        for name in self.scenarios:
            if not _ID_RE.match(name):
                raise ValueError(f"scenarios.{name}: name must be letters, digits, '.', '_' or '-'")
        return self


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("simulate", "bench", "kernels", "float", "RelativeThreshold") or (
                isinstance(part, str) and part.startswith(("function-", "union["))):
            continue   # pydantic's union-branch tags, not field names
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _fields_of(loc: tuple[Any, ...]) -> str:
    """Valid field names at the location of an 'extra field' error."""
    model: Any = Decision
    for part in loc[:-1]:
        fields = getattr(model, "model_fields", None)
        if fields and part in fields:
            ann = fields[part].annotation
            args = getattr(ann, "__args__", ())
            cand = [a for a in (ann, *args) if hasattr(a, "model_fields")]
            if not cand:
                for a in args:
                    cand += [b for b in getattr(a, "__args__", ()) if hasattr(b, "model_fields")]
            model = cand[-1] if cand else model
        elif part in EXPERIMENT_KINDS:
            model = {"simulate": SimulateExperiment, "bench": BenchExperiment,
                     "kernels": KernelsExperiment}[part]
    names = [f.alias or n for n, f in model.model_fields.items()]
    return ", ".join(names)


def _format(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{_loc(loc)}: unknown field; valid fields: {_fields_of(loc)}")
            continue
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        if e["type"] in ("float_type", "float_parsing") and isinstance(got, dict):
            continue   # the number branch of 'number or mapping' unions
        if e["type"] not in ("missing",) and not isinstance(got, (dict, list)):
            msg += f" (got {got!r})"
        lines.append(f"{_loc(loc)}: {msg}")
    return f"invalid decision file {source}:\n  " + "\n  ".join(dict.fromkeys(lines))


def parse_decision(data: Any, *, source: str = "<data>") -> Decision:
    """Validate already-parsed YAML/JSON data; ConfigError names every bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid decision file {source}: expected a mapping at the top "
                          f"level with keys name, scenarios, claims")
    try:
        return Decision.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc, source)) from None


def load_decision(path: str | Path) -> Decision:
    """Read and validate a decision YAML file."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read decision file {p}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"decision file {p} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                          "expected a YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"decision file {p} is not valid YAML: {exc}") from None
    return parse_decision(data, source=str(p))
