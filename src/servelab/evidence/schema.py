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

from ..errors import ConfigError
from ..scenario import BurstSpec, EngineSettings, PrefixOverride
from ..scenario import Scenario as ScenarioBase
from ..scenario.io import format_errors
from ..scenario._model import ROUTERS as SCENARIO_ROUTERS

__all__ = [
    "Decision", "Scenario", "EngineSettings", "BurstSpec", "PrefixOverride",
    "SimulateExperiment", "BenchExperiment", "ImportSpec", "KernelsExperiment",
    "Claim", "RelativeThreshold", "EvidenceRequirement", "KernelFilter",
    "load_decision", "parse_decision", "with_price_book", "COST_METRICS", "EXPERIMENT_KINDS", "ROUTERS",
]

COMPARISONS = ("<", "<=", ">", ">=")
EXPERIMENT_KINDS = ("simulate", "bench", "kernels")
COST_METRICS = ("cost_per_million_tokens",)
ROUTERS = tuple(SCENARIO_ROUTERS)
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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


# Top-level spellings of admission fields accepted in decision files for compatibility.
_LEGACY_ADMISSION = {"rate_limit_rps": "rate_limit_rps", "rate_limit_burst": "burst", "timeout_s": "timeout_s"}


class Scenario(ScenarioBase):
    """A decision file's scenario: :class:`servelab.scenario.Scenario` plus the
    experiments that produce its evidence. Arrival windows default to 60 s here."""

    duration_s: float = Field(60.0, gt=0.0, le=86400.0 * 7, description="Arrival window in seconds.")
    experiments: list[Experiment] = Field(
        default_factory=lambda: [SimulateExperiment()], min_length=1,
        description="Experiments that produce evidence for this scenario.")

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(k in data for k in _LEGACY_ADMISSION):
            return data
        data = dict(data)
        adm = dict(data.get("admission") or {})
        for old, new in _LEGACY_ADMISSION.items():
            if old in data:
                adm.setdefault(new, data.pop(old))
        data["admission"] = adm
        return data


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


def parse_decision(data: Any, *, source: str = "<data>") -> Decision:
    """Validate already-parsed YAML/JSON data; ConfigError names every bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid decision file {source}: expected a mapping at the top "
                          f"level with keys name, scenarios, claims")
    try:
        return Decision.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(
            exc, source, Decision, prefix="invalid decision file",
            tags={"simulate": SimulateExperiment, "bench": BenchExperiment, "kernels": KernelsExperiment,
                  "RelativeThreshold": RelativeThreshold})) from None


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


def with_price_book(decision: Decision, prices: str) -> Decision:
    """``decision`` with the price file ``prices`` for every scenario that sets no
    ``prices.book`` or ``prices.gpu_hour_usd`` of its own; a bad file fails here
    (``ConfigError`` naming its row and column)."""
    from ..catalog.prices import read_price_file
    read_price_file(prices)
    return decision.model_copy(update={"scenarios": {
        k: (sc if sc.prices.book is not None or sc.prices.gpu_hour_usd is not None else
            sc.model_copy(update={"prices": sc.prices.model_copy(update={"book": prices})}))
        for k, sc in decision.scenarios.items()}})
