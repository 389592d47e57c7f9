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

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from .. import metrics
from ..catalog.workloads import RequestSpec
from ..sim import SimConfig, simulate
from .capacity import search_capacity

__all__ = ["Goodput", "fleet_gpus", "slo_attainment", "per_gpu_goodput", "PDCandidate", "PDComparison",
           "slo_targets", "compare_pd"]


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


@dataclass(frozen=True, kw_only=True)
class PDCandidate:
    name: str                                # "aggregated x2", "1P+2D"
    prefill: int                             # prefill replicas (0: aggregated)
    decode: int                              # decode replicas (0: aggregated)
    replicas: int                            # aggregated replicas (0: disaggregated)
    gpus: int
    goodput_rps: float
    usd_per_hour: float
    target_rps: float = 0.0                  # the scenario's rate, for the sizing below
    tp: int = 1                              # TP of aggregated and prefill replicas
    decode_tp: int = 1                       # TP of decode replicas

    @property
    def copies(self) -> int | None:
        """Copies of this fleet needed for ``target_rps`` of goodput (None: no goodput)."""
        if self.goodput_rps <= 0:
            return None
        return max(1, math.ceil(self.target_rps / self.goodput_rps - 1e-9))

    @property
    def per_gpu_rps(self) -> float:
        return self.goodput_rps / self.gpus if self.gpus else 0.0

    @property
    def usd_per_hour_per_rps(self) -> float | None:
        """What one req/s of goodput costs per hour (None: no goodput)."""
        return self.usd_per_hour / self.goodput_rps if self.goodput_rps > 0 else None

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "prefill": self.prefill, "decode": self.decode, "replicas": self.replicas,
                "tp": self.tp, "decode_tp": self.decode_tp,
                "gpus": self.gpus, "goodput_rps": self.goodput_rps, "per_gpu_rps": self.per_gpu_rps,
                "usd_per_hour": self.usd_per_hour, "usd_per_hour_per_rps": self.usd_per_hour_per_rps,
                "target_rps": self.target_rps, "copies": self.copies,
                "gpus_for_target": None if self.copies is None else self.copies * self.gpus,
                "usd_per_hour_for_target": None if self.copies is None else self.copies * self.usd_per_hour}


@dataclass(frozen=True, kw_only=True)
class PDComparison:
    ttft_s: float
    tpot_s: float
    attainment: float
    candidates: tuple[PDCandidate, ...]
    best: PDCandidate | None
    reason: str
    prompt_tokens: int                       # mean prompt of the workload (for the reason)
    prefill_step_s: float                    # that prompt's prefill alone
    decode_step_s: float                     # a decode step at batch 32
    mixed_step_s: float                      # the same decode step carrying the prefill

    def to_dict(self) -> dict[str, object]:
        return {"ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "attainment": self.attainment,
                "candidates": [c.to_dict() for c in self.candidates],
                "best": self.best.name if self.best else None, "reason": self.reason,
                "prompt_tokens": self.prompt_tokens, "prefill_step_s": self.prefill_step_s,
                "decode_step_s": self.decode_step_s, "mixed_step_s": self.mixed_step_s}


def slo_targets(slo: object) -> tuple[float, float, float]:
    """(TTFT s, TPOT s, attainment) from an SLO with TTFT and TPOT percentile targets:
    a p95 target is met when 95 % of requests meet the threshold; both must hold, so the
    attainment asked is the larger percentile."""
    t = {x.metric: x for x in getattr(slo, "targets", ())}
    if "ttft" not in t or "tpot" not in t:
        from ..errors import ConfigError
        have = ",".join(x.key for x in getattr(slo, "targets", ())) or "none"
        raise ConfigError(f"comparing disaggregated and aggregated fleets needs a TTFT and a TPOT target "
                          f"(e.g. --slo ttft_p90=2s,tpot_p90=20ms); the SLO has {have}")
    return t["ttft"].threshold_s, t["tpot"].threshold_s, max(t["ttft"].percentile, t["tpot"].percentile) / 100.0


def compare_pd(sc: object, *, ratios: Sequence[tuple[int, int]] = ((1, 1), (1, 2), (2, 1), (1, 3)),
               decode_tps: Sequence[int] = (), link: str = "nvlink", max_transfers: int = 4,
               duration_s: float = 60.0, start_rps: float = 10.0) -> PDComparison:
    """Aggregated fleets against xPyD splits of the same scenario (model, GPU, TP, dtypes,
    engine, workload) by DistServe per-GPU goodput at the scenario's SLO.

    ``ratios``: (prefill, decode) replica counts; each is compared with an aggregated
    fleet of as many replicas. ``decode_tps``: further TP degrees for the decode pool
    (the prefill pool keeps the scenario's), each tried with every ratio. A candidate serves the scenario's rate with
    ``ceil(rate / goodput)`` copies (no headroom, no spares); the copies that cost least
    per hour win (ties: fewer GPUs, then more goodput per dollar)."""
    from ..perf import StepBatch, StepModel
    from ..scenario import build
    from ..scenario.build import derive

    ttft_s, tpot_s, att = slo_targets(build.slo(sc))
    target = build.rate_rps(sc)
    base = derive(sc, duration_s=min(float(sc.duration_s), duration_s), disagg=None, autoscaler=None)  # type: ignore[attr-defined]

    def run(s: object) -> float:
        cfg = build.sim_config(s)
        g = per_gpu_goodput(cfg, lambda r: build.requests(derive(s, rate_rps=r)), ttft_s=ttft_s,
                            tpot_s=tpot_s, attainment=att, start_rps=start_rps)
        return g.rate_rps

    cands: list[PDCandidate] = []
    for n in sorted({p + d for p, d in ratios}):
        s = derive(base, replicas=n)
        cands.append(PDCandidate(name=f"aggregated x{n}", prefill=0, decode=0, replicas=n,
                                 gpus=fleet_gpus(build.sim_config(s)), goodput_rps=run(s),
                                 usd_per_hour=build.fleet_usd_per_hour(s), target_rps=target,
                                 tp=int(base.tp), decode_tp=int(base.tp)))  # type: ignore[attr-defined]
    tp0 = int(base.tp)  # type: ignore[attr-defined]
    for dtp in [tp0] + [t for t in decode_tps if t != tp0]:
        for p, d in ratios:
            s = derive(base, disagg={"prefill": {"replicas": p}, "decode": {"replicas": d, "tp": dtp},
                                     "link": link, "max_transfers": max_transfers})
            name = f"{p}P+{d}D" if dtp == tp0 else f"{p}P+{d}D (decode TP{dtp})"
            cands.append(PDCandidate(name=name, prefill=p, decode=d, replicas=0,
                                     gpus=fleet_gpus(build.sim_config(s)), goodput_rps=run(s),
                                     usd_per_hour=build.fleet_usd_per_hour(s), target_rps=target,
                                     tp=tp0, decode_tp=dtp))

    def for_target(c: PDCandidate) -> tuple[float, int, float]:
        k = c.copies or 0
        return (k * c.usd_per_hour, k * c.gpus, c.usd_per_hour_per_rps or math.inf)

    priced = [c for c in cands if c.copies is not None]
    best = min(priced, key=for_target) if priced else None

    m = StepModel(build.deployment(base))
    L = max(1, round(build.workload(base).input_len.mean))
    prefill_s = m.step_time_s(StepBatch(((L, 0),), 0, 0))
    decode_s = m.step_time_s(StepBatch((), 32, 32 * (L + 128)))
    mixed_s = m.step_time_s(StepBatch(((L, 0),), 32, 32 * (L + 128)))
    aggs = [c for c in priced if c.replicas]
    pds = [c for c in priced if not c.replicas]
    agg = min(aggs, key=for_target) if aggs else None
    pd = min(pds, key=for_target) if pds else None

    def sized(c: PDCandidate | None) -> str:
        if c is None:
            return "none meets the SLO"
        return f"{c.copies} x {c.name} = {c.copies * c.gpus} GPUs, ${c.copies * c.usd_per_hour:.2f}/h"  # type: ignore[operator]
    stall = (f"a {L}-token prefill makes a batch-32 decode step take {mixed_s * 1e3:.0f} ms instead of "
             f"{decode_s * 1e3:.1f} ms ({mixed_s / decode_s:.1f}x) on an aggregated replica")
    if best is None:
        reason = "no candidate meets the SLO at any tested rate"
    elif best.replicas:
        reason = (f"aggregated costs least for {target:g} req/s: {sized(agg)} against {sized(pd)} disaggregated "
                  f"({best.per_gpu_rps:.2f} against {pd.per_gpu_rps if pd else 0:.2f} req/s per GPU of goodput); "
                  f"{stall}, which the TPOT target ({tpot_s * 1e3:g} ms) tolerates, while a fixed split leaves "
                  f"prefill or decode GPUs underused")
    else:
        reason = (f"disaggregated costs least for {target:g} req/s: {sized(pd)} against {sized(agg)} aggregated "
                  f"({best.per_gpu_rps:.2f} against {agg.per_gpu_rps if agg else 0:.2f} req/s per GPU of goodput); "
                  f"{stall}, and at a {tpot_s * 1e3:g} ms TPOT those stalls cap the aggregated rate, while decode "
                  f"replicas never prefill")
    return PDComparison(ttft_s=ttft_s, tpot_s=tpot_s, attainment=att, candidates=tuple(cands), best=best,
                        reason=reason, prompt_tokens=L, prefill_step_s=prefill_s, decode_step_s=decode_s,
                        mixed_step_s=mixed_s)
