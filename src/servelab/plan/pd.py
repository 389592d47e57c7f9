"""Disaggregated vs aggregated serving: per-GPU goodput under a TTFT and a TPOT SLO.

Definition (DistServe, Zhong et al., OSDI 2024, §2.2 and §6): the *goodput* of a
deployment is the highest request rate at which at least ``attainment`` (90 %) of the
requests meet both the TTFT and the TPOT target; *per-GPU goodput* divides it by the
GPUs the deployment uses. Here the rate is found with the planner's deterministic
gallop-and-bisect search (:mod:`.capacity`) on seeded simulations, and a request meets
the SLO as in ``metrics`` (``goodput``: TTFT ≤ target and TPOT ≤ target; a request
with one output token has TPOT 0; a request not completed fails).

Why disaggregation can win (DistServe §3, Splitwise §3): on an aggregated replica a
decode step that carries a prefill chunk takes as long as the chunk's prefill, so every
prompt that arrives stalls every running decode; with long prompts and a tight TPOT
the replica must run at a low rate to keep those stalls rare. A decode pool never
prefills, so its steps stay short at high batch, and the prefill pool is sized to the
prompt work alone. It loses when prompts are short: the stalls are small, the KV
transfer and the extra decode-side step add to TTFT, and a prefill GPU that is idle
most of the time still counts in the per-GPU figure.

Units: requests/s, seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from .. import metrics
from ..catalog.workloads import RequestSpec
from ..sim import SimConfig, simulate
from .capacity import search_capacity

__all__ = ["Goodput", "fleet_gpus", "slo_attainment", "per_gpu_goodput"]


@dataclass(frozen=True, kw_only=True)
class Goodput:
    rate_rps: float                          # highest passing rate found (0: none)
    gpus: int
    evaluations: tuple[tuple[float, bool], ...] = ()

    @property
    def per_gpu_rps(self) -> float:
        return self.rate_rps / self.gpus if self.gpus else 0.0


def fleet_gpus(config: SimConfig) -> int:
    """GPUs of a fleet at start: Σ count · TP · PP over its replica specs (1 GPU per
    replica without a deployment)."""
    n = 0
    for spec in config.replicas:
        dep = spec.deployment
        n += spec.count * (int(getattr(dep, "tp", 1) or 1) * int(getattr(dep, "pp", 1) or 1)
                           if dep is not None else 1)
    return n


def slo_attainment(config: SimConfig, requests: Sequence[RequestSpec], *, ttft_s: float,
                   tpot_s: float) -> float:
    """Fraction of offered requests completed within both targets."""
    res = simulate(config, requests)
    s = metrics.summarize(res.records, goodput={"ttft": ttft_s, "tpot": tpot_s})
    return float(s["slo_attainment"] or 0.0)


def per_gpu_goodput(config: SimConfig, requests_at: Callable[[float], Sequence[RequestSpec]], *,
                    ttft_s: float, tpot_s: float, attainment: float = 0.9, start_rps: float,
                    min_rps: float = 0.05, max_rps: float | None = None,
                    rel_tol: float = 0.03) -> Goodput:
    """DistServe goodput of ``config`` (``requests_at(rate)``: the seeded request list
    offered at ``rate``), and its per-GPU value."""
    def passes(rate: float) -> bool:
        return slo_attainment(config, requests_at(rate), ttft_s=ttft_s, tpot_s=tpot_s) >= attainment

    found = search_capacity(passes, start_rps=start_rps, min_rps=min_rps, max_rps=max_rps,
                            rel_tol=rel_tol)
    return Goodput(rate_rps=found.capacity_rps, gpus=fleet_gpus(config),
                   evaluations=found.evaluations)
