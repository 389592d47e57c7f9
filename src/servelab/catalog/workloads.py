"""Workload catalog: length distributions, arrival processes, prefix sharing, SLOs.

Data: ``catalog/data/workloads.yaml`` (presets with the source of their shapes).
Arrival semantics follow ``vllm bench serve``: Poisson at rate r, or gamma
inter-arrival times with shape = burstiness and mean 1/r (burstiness < 1 is
burstier than Poisson, 1 is Poisson; coefficient of variation = 1/sqrt(burstiness)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "LengthDist", "ArrivalSpec", "PrefixSpec", "SLOTarget", "SLO", "Workload",
    "RequestSpec", "generate_requests", "get_workload", "list_workloads", "parse_slo",
]


@dataclass(frozen=True, kw_only=True)
class LengthDist:
    kind: Literal["fixed", "uniform", "normal", "lognormal", "empirical"] = "fixed"
    mean: float = 0.0          # fixed value, or mean of normal/lognormal (of the tokens, not the log)
    std: float = 0.0           # normal/lognormal std (tokens)
    low: int = 1               # clip bounds (uniform: the range)
    high: int = 1 << 20
    values: tuple[int, ...] = ()   # empirical samples (from a file)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` integer lengths, clipped to [low, high]."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class ArrivalSpec:
    kind: Literal["constant", "poisson", "gamma"] = "poisson"
    rate_rps: float = 1.0
    burstiness: float = 1.0    # gamma shape (vLLM --burstiness)


@dataclass(frozen=True, kw_only=True)
class PrefixSpec:
    num_groups: int = 0        # distinct shared prefixes (0 = no sharing)
    prefix_tokens: int = 0     # length of each shared prefix (part of the input length)
    fraction: float = 1.0      # fraction of requests that carry a group's prefix


@dataclass(frozen=True, kw_only=True)
class SLOTarget:
    metric: Literal["ttft", "tpot", "itl", "e2e"]
    percentile: float          # e.g. 95
    threshold_s: float

    @property
    def key(self) -> str:       # "ttft_p95"
        return f"{self.metric}_p{self.percentile:g}"


@dataclass(frozen=True, kw_only=True)
class SLO:
    targets: tuple[SLOTarget, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Workload:
    name: str
    description: str = ""
    input_len: LengthDist = field(default_factory=LengthDist)
    output_len: LengthDist = field(default_factory=LengthDist)
    arrival: ArrivalSpec = field(default_factory=ArrivalSpec)
    prefix: PrefixSpec = field(default_factory=PrefixSpec)
    slo: SLO = field(default_factory=SLO)
    turns: int = 1             # >1: multi-turn conversations (each turn's prompt includes the history)
    think_time_s: float = 0.0  # mean user think time between turns
    priorities: tuple[tuple[int, float], ...] = ()   # (priority class, share); lower = more important
    adapters: tuple[tuple[str, float], ...] = ()     # (LoRA adapter name, share)
    source: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestSpec:
    """One request to offer: what both the simulator and the load client send."""
    id: str
    arrival_s: float           # offset from run start
    input_tokens: int
    output_tokens: int
    prefix_group: int = -1     # shared-prefix group (-1: none)
    prefix_tokens: int = 0     # leading input tokens shared with the group
    conversation: int = -1     # multi-turn conversation id (-1: none)
    turn: int = 0
    priority: int = 0
    adapter: str | None = None


def generate_requests(
    workload: Workload,
    *,
    rate_rps: float | None = None,
    duration_s: float | None = None,
    num_requests: int | None = None,
    seed: int = 0,
) -> list[RequestSpec]:
    """Deterministic request list for a seed: arrivals until ``duration_s`` or ``num_requests``."""
    raise NotImplementedError


def get_workload(name: str) -> Workload:
    raise NotImplementedError


def list_workloads() -> list[Workload]:
    raise NotImplementedError


def parse_slo(text: str) -> SLO:
    """Parse ``"ttft_p95=2s,tpot_p95=50ms"``; ConfigError names the bad term."""
    raise NotImplementedError
