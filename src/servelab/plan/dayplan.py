"""A day of traffic for a multi-model fleet: replicas hour by hour, capacity mix, autoscaler.

Per pool (one model on one GPU type, :mod:`.fleetday`):

1. **Replica capacity** ``c`` (req/s per replica meeting every SLO percentile): the
   planner's simulated capacity search (:func:`.evaluate.evaluate_candidate`, step 9)
   for the pool's fixed configuration.
2. **Lead time** ``L = poll_interval + provisioning_delay + model_load_delay``: a replica
   asked for at ``t`` serves from ``t + L`` at the earliest.
3. **Replicas per hour** ``n_h = ceil(max λ over [h − cooldown, h + 1 h + L) · headroom / c)
   + spares``: enough for the highest rate the hour's replicas must carry, including the
   demand arriving before a replica asked for in the hour is ready and the scale-down
   stabilization window (the curve wraps around the day). ``ceil`` after rounding the
   ratio to 10⁻⁹ as :mod:`.sizing` does.
4. **Capacity mix**, in GPUs billed (replicas packed into the scenario's node sizes) at
   the on-demand price ``p`` (the scenario's, else the GPU catalog's), reserved
   ``f_r·p`` billed all 24 hours, spot ``f_s·p``:

   * reserved-only: ``max_h n_h`` reserved; on-demand-only: ``Σ_h n_h`` at ``p``;
   * mix: ``R* = argmin_R  24·R·f_r·p + Σ_h max(0, n_h − R)·p_flex`` with ``p_flex = f_s·p``
     for pools whose SLO tolerates spot reclaim, else ``p``. The minimum is where the
     number of hours with ``n_h ≥ R`` falls below ``24·f_r·p/p_flex`` (a reserved unit
     pays off when it is busy more than that many hours); it is found by trying every R.
     A spot reclaim costs one replica for ``L``: the pool's spare covers it while the
     expected number of concurrent reclaims ``n_spot · rate · L`` stays below 1 (shown).

5. **Autoscaler**: ``min_replicas = R*`` (the reserved baseline never scales in),
   ``max_replicas = max_h n_h``, metric ``running`` (in-flight requests per replica),
   whose per-replica value at arrival rate λ is ``λ·W`` (Little's law, W the mean
   end-to-end latency). Target ``c_t·W`` with ``c_t = c / (headroom · g)`` where
   ``g = max_t λ(t + L)/λ(t)`` (the largest growth of demand within one lead time, on a
   one-minute grid) so a reactive HPA rule still has capacity when its replica arrives.
   W is measured by one simulation of a replica at ``c_t``.
6. **Report**: cost per day and per 1M output tokens (expected tokens: ``Λ_day · E[out]``),
   GPU-hours provisioned beyond the SLO need (``Σ_h (n_h − λ̄_h/c) · GPUs per replica``),
   the morning ramp (the longest run of hours where ``n_h`` rises) and when its first
   scale-up must be requested (``L`` before it), and hourly SLO attainment from a
   simulation of the day with those autoscaler settings (:mod:`.dayrun`).

**Sharing GPU pools.** Pools on the same GPU type can draw reserved GPUs from one pool:
``R*`` is then chosen on the hourly sum of billed GPUs, reserved GPUs go first to the
pools that would otherwise pay on-demand. The sum of peaks at different hours is lower
than the sum of the peaks, so sharing can only lower the reserved cost; moving a
reserved GPU between models costs a model load (``model_load_delay_s``), counted as
changes of a pool's reserved allocation per day.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

__all__ = ["HourlyDemand", "hourly_demand", "replicas_per_hour", "growth_within", "best_reserved",
           "mix_cost", "lead_time_s", "morning_ramp", "PoolPlan", "shared_reserved"]

HOURS = 24


@dataclass(frozen=True, kw_only=True)
class HourlyDemand:
    mean_rps: tuple[float, ...]          # Λ_h / 3600
    need_rps: tuple[float, ...]          # max λ over the hour widened by cooldown and lead time
    requests: tuple[float, ...]          # Λ_h, expected arrivals


def hourly_demand(curve: Any, *, lead_s: float, cooldown_s: float, hours: int = HOURS) -> HourlyDemand:
    """Per hour of a day curve (periodic: the window wraps around ``hours``)."""
    day = hours * 3600.0
    mean, need, reqs = [], [], []
    for h in range(hours):
        a, b = h * 3600.0, (h + 1) * 3600.0
        lam = curve.integral(a, b)
        reqs.append(lam)
        mean.append(lam / 3600.0)
        lo, hi = a - cooldown_s, b + lead_s
        peaks = []
        # split [lo, hi) into pieces inside [0, day)
        for k in range(math.floor(lo / day), math.floor((hi - 1e-9) / day) + 1):
            s, e = max(lo, k * day) - k * day, min(hi, (k + 1) * day) - k * day
            if e > s:
                peaks.append(curve.peak_rps(s, e))
        need.append(max(peaks))
    return HourlyDemand(mean_rps=tuple(mean), need_rps=tuple(need), requests=tuple(reqs))


def replicas_per_hour(need_rps: Sequence[float], *, capacity_rps: float, headroom: float,
                      spares: int) -> list[int]:
    """``ceil(need · headroom / c) + spares`` per hour, at least one active replica."""
    if not capacity_rps > 0:
        raise ValueError(f"capacity_rps must be > 0, got {capacity_rps}")
    return [max(1, math.ceil(round(r * headroom / capacity_rps, 9))) + spares for r in need_rps]


def growth_within(curve: Any, lead_s: float, *, grid_s: float = 60.0) -> float:
    """``max_t λ(t + L)/λ(t)`` on a grid over the curve (periodic), at least 1."""
    import numpy as np

    end = curve.end_s
    t = np.arange(0.0, end, grid_s)
    now = curve.rate(t)
    ahead = curve.rate((t + lead_s) % end)
    ok = now > 0
    return float(max(1.0, np.max(ahead[ok] / now[ok]))) if ok.any() else 1.0


def mix_cost(units: Sequence[float], reserved: float, *, reserved_price: float, flex_price: float) -> float:
    """``24·R·p_r + Σ_h max(0, u_h − R)·p_flex`` in the units' price (per unit-hour)."""
    return len(units) * reserved * reserved_price + sum(max(0.0, u - reserved) for u in units) * flex_price


def best_reserved(units: Sequence[float], *, reserved_price: float, flex_price: float) -> tuple[int, float]:
    """``(R*, cost)`` minimizing :func:`mix_cost` over integer R in [0, max units]; ties: smaller R."""
    best = (0, mix_cost(units, 0, reserved_price=reserved_price, flex_price=flex_price))
    for r in range(1, int(math.ceil(max(units, default=0))) + 1):
        c = mix_cost(units, r, reserved_price=reserved_price, flex_price=flex_price)
        if c < best[1] - 1e-9:
            best = (r, c)
    return best


def lead_time_s(auto: Any) -> float:
    return auto.poll_interval_s + auto.provisioning_delay_s + auto.model_load_delay_s


def morning_ramp(n: Sequence[int]) -> tuple[int, int] | None:
    """``(first hour, last hour)`` of the longest run of hours where ``n`` rises (periodic), or None."""
    H = len(n)
    best: tuple[int, int] | None = None
    best_gain = 0
    for start in range(H):
        if n[start] <= n[start - 1]:
            continue
        end = start
        while n[(end + 1) % H] >= n[end % H] and end - start < H - 1:
            end += 1
        gain = n[end % H] - n[start - 1]
        if gain > best_gain:
            best, best_gain = (start, end % H), gain
    return best


@dataclass(kw_only=True)
class PoolPlan:
    name: str
    model: str
    gpu: str
    shape: str                           # "TP1", "TP4 fp8", …
    gpus_per_replica: int
    priority: int
    spot: bool
    capacity_rps: float                  # per replica, SLO met (simulated)
    lead_time_s: float
    growth_in_lead: float
    replicas_per_hour: list[int]
    gpus_per_hour: list[int]             # billed
    mean_rps: list[float]
    requests_per_day: float
    output_tokens_per_day: float
    on_demand_gpu_hour_usd: float
    price_source: str
    reserved_replicas: int
    costs_per_day_usd: dict[str, float]  # reserved-only, on-demand-only, mix
    mix_detail: dict[str, Any]
    autoscaler: dict[str, Any]
    gpu_hours_idle: float                # provisioned beyond λ̄_h / c
    ramp: dict[str, Any] | None
    hourly_sim: dict[str, list[dict[str, Any]]] = field(default_factory=dict)   # mode -> hours
    notes: list[str] = field(default_factory=list)

    @property
    def cost_per_million_tokens(self) -> float:
        return self.costs_per_day_usd["mix"] / (self.output_tokens_per_day / 1e6) \
            if self.output_tokens_per_day > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cost_per_million_tokens_usd"] = self.cost_per_million_tokens
        return d


def shared_reserved(pools: Sequence[PoolPlan], *, reserved_fraction: float,
                    spot_fraction: float) -> dict[str, Any]:
    """One reserved pool per GPU type shared by its model pools (module docstring)."""
    out: dict[str, Any] = {}
    by_gpu: dict[str, list[PoolPlan]] = {}
    for p in pools:
        by_gpu.setdefault(p.gpu, []).append(p)
    for gpu, ps in sorted(by_gpu.items()):
        if len(ps) < 2:
            continue
        price = ps[0].on_demand_gpu_hour_usd
        separate = sum(p.costs_per_day_usd["mix"] for p in ps)
        total = [sum(p.gpus_per_hour[h] for p in ps) for h in range(HOURS)]
        order = sorted(ps, key=lambda p: (p.spot, p.priority))      # reserved to on-demand pools first

        def cost(r: int) -> float:
            c = HOURS * r * reserved_fraction * price
            for h in range(HOURS):
                left = r
                for p in order:
                    g = p.gpus_per_hour[h]
                    take = min(left, g)
                    left -= take
                    c += (g - take) * price * (spot_fraction if p.spot else 1.0)
            return c
        best_r, best_c = 0, cost(0)
        for r in range(1, max(total) + 1):
            c = cost(r)
            if c < best_c - 1e-9:
                best_r, best_c = r, c
        out[gpu] = {"pools": [p.name for p in ps], "reserved_gpus": best_r, "cost_per_day_usd": best_c,
                    "separate_cost_per_day_usd": separate,
                    "separate_reserved_gpus": sum(p.mix_detail["reserved_gpus"] for p in ps),
                    "saving_per_day_usd": separate - best_c, "sharing_wins": best_c < separate - 1e-6}
    return out
