"""Rate sweep: the highest request rate an endpoint serves within an SLO.

The profile follows guidellm's ``sweep``, with a stop and a refinement added:

1. **synchronous** — one request at a time (closed loop, concurrency 1): the rate
   the endpoint serves without any batching, r_sync = completed / duration;
2. **throughput** — every request offered at once: the rate it serves saturated,
   r_max = completed / duration;
3. **constant** rates r_k = r_sync + k·(r_max − r_sync)/n for k = 1..n (evenly spaced,
   ascending, the last one r_max), each run with evenly spaced arrivals, stopping at
   the first rate whose run breaks the SLO. When r_max still meets it (the throughput
   run's rate includes its last, partly empty batches, so it understates what evenly
   spaced arrivals can be served at), the grid continues with the same step up to
   ``beyond`` × r_max;
4. **refine** — bisection between the last rate that met the SLO and the first that
   broke it, ``refine`` times (each halves the bracket).

A run *meets* the SLO when every target is met (``metrics.summarize(..., slo=)`` →
``slo_met``) and at least ``min_delivery`` of the offered requests finished ok
(rejections and timeouts break an SLO as surely as slow tokens). With no SLO every
constant rate is run and nothing is refined.

``run_sweep`` is independent of what serves the requests: it calls
``run(kind, rate_rps)`` (kind ``synchronous`` | ``throughput`` | ``constant``; rate
``inf`` for the first two), which returns that run's summary. ``servelab bench
--sweep`` passes a function that measures an endpoint; a simulator can be swept the
same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

__all__ = ["SweepPoint", "SweepResult", "run_sweep", "sweep_rates", "slo_verdict", "point_spec", "point_tag", "point_summary",
           "SWEEP_KINDS", "SWEEP_SYNC_PROMPTS"]

SWEEP_KINDS = ("synchronous", "throughput", "constant", "refine")
SWEEP_SYNC_PROMPTS = 20   # the synchronous point only fixes the grid's lower end


@dataclass(frozen=True, kw_only=True)
class SweepPoint:
    """One run of the sweep: its kind, the offered rate (inf for synchronous and
    throughput), its summary and whether it met the SLO (None without one)."""
    kind: str
    rate_rps: float
    summary: dict[str, Any]
    met: bool | None

    @property
    def achieved_rps(self) -> float:
        return float(self.summary.get("request_throughput_rps") or 0.0)

    def row(self) -> dict[str, Any]:
        """A flat JSON-able row: rates, throughput, latency percentiles, delivery, verdict."""
        s = self.summary

        def pct(base: str, p: str) -> Any:
            return (s.get(f"{base}_s") or {}).get(p)
        return {"kind": self.kind, "rate_rps": "inf" if math.isinf(self.rate_rps) else self.rate_rps,
                "achieved_rps": self.achieved_rps, "throughput_tokens_per_s": s.get("throughput_tokens_per_s"),
                "ttft_p50_s": pct("ttft", "p50"), "ttft_p95_s": pct("ttft", "p95"),
                "tpot_p50_s": pct("tpot", "p50"), "tpot_p95_s": pct("tpot", "p95"),
                "e2e_p95_s": pct("e2e", "p95"), "delivery": s.get("delivery"), "slo_met": self.met}


@dataclass(frozen=True, kw_only=True)
class SweepResult:
    points: list[SweepPoint] = field(default_factory=list)
    sync_rps: float = 0.0
    throughput_rps: float = 0.0
    max_rate_met_rps: float | None = None      # highest offered constant rate that met the SLO
    first_rate_broken_rps: float | None = None  # lowest offered constant rate that broke it
    stopped_early: bool = False                 # a rate broke the SLO before the grid's end

    def to_dict(self) -> dict[str, Any]:
        return {"sync_rps": self.sync_rps, "throughput_rps": self.throughput_rps,
                "max_rate_met_rps": self.max_rate_met_rps, "first_rate_broken_rps": self.first_rate_broken_rps,
                "stopped_early": self.stopped_early, "points": [p.row() for p in self.points]}


def slo_verdict(summary: dict[str, Any], *, min_delivery: float = 0.99) -> bool | None:
    """Whether a run met its SLO (module docstring); None when it had none."""
    met = summary.get("slo_met")
    if not met:
        return None
    if (summary.get("completed") or 0) == 0:
        return False
    ok = all(v is True for v in met.values())
    return ok and float(summary.get("delivery") or 0.0) >= min_delivery


def sweep_rates(sync_rps: float, max_rps: float, n: int) -> list[float]:
    """r_sync + k·(r_max − r_sync)/n for k = 1..n; ``ValueError`` unless 0 < r_sync,
    r_sync < r_max and n ≥ 1."""
    if n < 1:
        raise ValueError(f"the sweep needs at least 1 rate between its endpoints, got {n}")
    if not (sync_rps > 0 and math.isfinite(max_rps)):
        raise ValueError(f"sweep endpoints must be positive and finite, got synchronous {sync_rps!r} req/s, "
                         f"throughput {max_rps!r} req/s")
    if max_rps <= sync_rps:
        raise ValueError(f"the throughput run ({max_rps:.4g} req/s) was not faster than the synchronous run "
                         f"({sync_rps:.4g} req/s): the endpoint does not batch, or too few requests were offered")
    return [sync_rps + k * (max_rps - sync_rps) / n for k in range(1, n + 1)]


def run_sweep(run: Callable[[str, float], dict[str, Any]], *, n_rates: int = 8, refine: int = 2,
              min_delivery: float = 0.99, beyond: float = 2.0,
              on_point: Callable[[SweepPoint], None] | None = None) -> SweepResult:
    """Run the profile of the module docstring; ``on_point`` sees each point as it ends."""
    if refine < 0:
        raise ValueError(f"refine must be ≥ 0, got {refine}")
    points: list[SweepPoint] = []

    def do(kind: str, rate: float) -> SweepPoint:
        s = run("constant" if kind == "refine" else kind, rate)
        p = SweepPoint(kind=kind, rate_rps=rate, summary=s, met=slo_verdict(s, min_delivery=min_delivery))
        points.append(p)
        if on_point is not None:
            on_point(p)
        return p

    sync = do("synchronous", math.inf).achieved_rps
    top = do("throughput", math.inf).achieved_rps
    good: float | None = None
    bad: float | None = None
    grid = sweep_rates(sync, top, n_rates)
    step = (top - sync) / n_rates
    k = 0
    while k < len(grid) or (good is not None and grid[-1] + step <= beyond * top * (1 + 1e-9)):
        if k >= len(grid):
            grid.append(grid[-1] + step)
        r = grid[k]
        k += 1
        p = do("constant", r)
        if p.met is False:
            bad = r
            break
        if p.met:
            good = r
    if bad is not None:
        lo = good if good is not None else sync
        for _ in range(refine):
            mid = (lo + bad) / 2
            p = do("refine", mid)
            if p.met:
                lo = good = mid
            else:
                bad = mid
    return SweepResult(points=points, sync_rps=sync, throughput_rps=top, max_rate_met_rps=good,
                       first_rate_broken_rps=bad, stopped_early=bad is not None)


def point_spec(spec: Any, kind: str, rate: float) -> Any:
    """The bench spec (``load.bench.BenchSpec``) of one sweep point: ``synchronous`` —
    concurrency 1, at most :data:`SWEEP_SYNC_PROMPTS` requests, all at once;
    ``throughput`` — every request at once, no concurrency cap; any other kind — evenly
    spaced arrivals at ``rate``."""
    if kind == "synchronous":
        return replace(spec, request_rate=math.inf, max_concurrency=1,
                       num_prompts=min(spec.num_prompts or SWEEP_SYNC_PROMPTS, SWEEP_SYNC_PROMPTS))
    if kind == "throughput":
        return replace(spec, request_rate=math.inf, max_concurrency=None)
    return replace(spec, request_rate=rate, arrival="constant", burstiness=1.0)


def point_tag(kind: str, rate: float) -> str:
    """``synchronous``, ``throughput`` or ``constant-2.5``: names a point's run folder."""
    return kind if math.isinf(rate) else f"{kind}-{rate:.4g}"


def point_summary(outcome: Any, slo: Any = None, percentiles: tuple[float, ...] = (50, 90, 95, 99)
                  ) -> dict[str, Any]:
    """A sweep point's summary: the run's own (``load.bench.BenchOutcome.summary``) plus
    whether it met ``slo`` (``slo_met``, ``slo_thresholds_s`` of ``metrics.summarize``)."""
    from ..metrics import summarize
    s = dict(outcome.summary)
    s.update({k: v for k, v in summarize(outcome.records, duration_s=outcome.meta.duration_s, slo=slo,
                                         percentiles=percentiles).items()
              if k in ("slo_met", "slo_thresholds_s")})
    return s
