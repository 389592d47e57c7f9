"""Workload value objects: length distributions, arrivals, prefix sharing, SLOs.

Re-exported by :mod:`servelab.catalog.workloads`, which documents the semantics.

Length sampling (tokens, integers, clipped to ``[low, high]``):

* ``fixed``: ``round(mean)``.
* ``uniform``: integers uniform on ``[low, high]`` inclusive.
* ``normal``: ``round(N(mean, std))``.
* ``lognormal``: parameterized by the mean and std of the *tokens*:
  ``sigma^2 = ln(1 + std^2/mean^2)``, ``mu = ln(mean) - sigma^2/2`` (moment matching),
  so the sample mean is ``mean`` before clipping.
* ``empirical``: resampled with replacement from ``values`` (e.g. read from a file by
  :func:`servelab.catalog.lengths.empirical_from_file`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["LengthDist", "ArrivalSpec", "PrefixSpec", "SLOTarget", "SLO", "Workload", "RequestSpec"]


@dataclass(frozen=True, kw_only=True)
class LengthDist:
    kind: Literal["fixed", "uniform", "normal", "lognormal", "empirical"] = "fixed"
    mean: float = 0.0          # fixed value, or mean of normal/lognormal (of the tokens, not the log)
    std: float = 0.0           # normal/lognormal std (tokens)
    low: int = 1               # clip bounds (uniform: the range)
    high: int = 1 << 20
    values: tuple[int, ...] = ()   # empirical samples (from a file)
    source: str = ""           # where the shape comes from (file path, dataset, paper)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` integer lengths, clipped to [low, high]."""
        if self.kind == "fixed":
            raw = np.full(n, round(self.mean), dtype=np.float64)
        elif self.kind == "uniform":
            raw = rng.integers(self.low, self.high, size=n, endpoint=True).astype(np.float64)
        elif self.kind == "normal":
            raw = np.rint(rng.normal(self.mean, self.std, size=n))
        elif self.kind == "lognormal":
            if self.mean <= 0:
                raise ValueError(f"lognormal length needs mean > 0, got {self.mean}")
            sigma2 = math.log1p((self.std / self.mean) ** 2)
            mu = math.log(self.mean) - sigma2 / 2
            raw = np.rint(rng.lognormal(mu, math.sqrt(sigma2), size=n))
        elif self.kind == "empirical":
            if not self.values:
                raise ValueError("empirical length distribution has no values")
            raw = rng.choice(np.asarray(self.values, dtype=np.float64), size=n, replace=True)
        else:
            raise ValueError(f"unknown length distribution {self.kind!r}; "
                             "known: fixed, uniform, normal, lognormal, empirical")
        return np.clip(raw, self.low, self.high).astype(np.int64)

    @property
    def expected(self) -> float:
        """Mean before clipping (tokens): what capacity estimates should use."""
        if self.kind == "uniform":
            return (self.low + self.high) / 2
        if self.kind == "empirical":
            return float(np.mean(self.values)) if self.values else 0.0
        return float(self.mean)

    def describe(self) -> str:
        """Short human form: ``lognormal(mean=161, std=200)``."""
        if self.kind == "fixed":
            return f"{self.mean:g}"
        if self.kind == "uniform":
            return f"uniform[{self.low}, {self.high}]"
        if self.kind == "empirical":
            return f"empirical(n={len(self.values)}, mean={self.expected:.0f})"
        return f"{self.kind}(mean={self.mean:g}, std={self.std:g})"


@dataclass(frozen=True, kw_only=True)
class ArrivalSpec:
    kind: Literal["constant", "poisson", "gamma"] = "poisson"
    rate_rps: float = 1.0
    burstiness: float = 1.0    # gamma shape (vLLM --burstiness)


@dataclass(frozen=True, kw_only=True)
class PrefixSpec:
    num_groups: int = 0        # distinct shared prefixes (0 = no sharing)
    prefix_tokens: int = 0     # length of each shared prefix (part of the input length:
                               # prepended to the tokens drawn from input_len)
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

    def as_text(self) -> str:
        """The ``parse_slo`` form: ``ttft_p95=2s,tpot_p95=50ms``."""
        return ",".join(f"{t.key}={_fmt_threshold(t.threshold_s)}" for t in self.targets)


def _fmt_threshold(t_s: float) -> str:
    if t_s >= 1:
        return f"{t_s:g}s"
    if t_s >= 1e-3:
        return f"{t_s * 1e3:g}ms"
    return f"{t_s * 1e6:g}us"


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
    num_requests: int = 0      # default request count when neither duration nor count is given (offline)

    @property
    def expected_input_tokens(self) -> float:
        """Mean prompt length per request: shared prefix + history + new tokens.

        Turn ``j`` (0-based) of ``T`` carries ``j`` earlier turns, so over a conversation
        the history averages ``(E[in] + E[out]) * (T - 1) / 2``.
        """
        prefix = self.prefix.prefix_tokens * self.prefix.fraction if self.prefix.num_groups > 0 else 0.0
        history = (self.input_len.expected + self.output_len.expected) * (self.turns - 1) / 2
        return prefix + history + self.input_len.expected

    @property
    def expected_output_tokens(self) -> float:
        """Mean output length per request (before clipping)."""
        return self.output_len.expected

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (infinite rates become the string "inf"; empirical values summarized)."""
        def dist(d: LengthDist) -> dict[str, Any]:
            out: dict[str, Any] = {"kind": d.kind, "mean": d.mean, "std": d.std, "low": d.low,
                                   "high": d.high, "expected": d.expected}
            if d.kind == "empirical":
                out["num_values"] = len(d.values)
            if d.source:
                out["source"] = d.source
            return out
        rate = self.arrival.rate_rps
        return {
            "name": self.name, "description": self.description,
            "input_len": dist(self.input_len), "output_len": dist(self.output_len),
            "arrival": {"kind": self.arrival.kind, "rate_rps": rate if math.isfinite(rate) else "inf",
                        "burstiness": self.arrival.burstiness},
            "prefix": {"num_groups": self.prefix.num_groups, "prefix_tokens": self.prefix.prefix_tokens,
                       "fraction": self.prefix.fraction},
            "slo": self.slo.as_text(), "turns": self.turns, "think_time_s": self.think_time_s,
            "priorities": [list(p) for p in self.priorities],
            "adapters": [list(a) for a in self.adapters],
            "num_requests": self.num_requests, "source": self.source,
        }


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
    history_tokens: int = 0    # input tokens from earlier turns of the conversation (after the group prefix)
