"""Fleet cost (the one cost model of plans, decisions and reports) — instance packing, $/hour, $/1M output tokens, monthly TCO.

Instance granularity: GPUs are rented in nodes of ``node_sizes`` GPUs (default 1, 2, 4
and 8, capped by the GPU's ``gpus_per_node``). A replica of ``g = tp × pp`` GPUs
never straddles nodes when ``g ≤`` the largest node: a node of ``s`` GPUs holds
``s // g`` replicas (a TP2 replica packs 4 per 8-GPU node). Packing fills the largest
nodes first; then, while replicas remain, it rents the largest node size they fill
completely (a whole number of replicas, no GPU left idle), else the smallest size that
holds one replica. A
replica larger than the largest node (pipeline parallel across nodes) takes
``ceil(g / s_max)`` whole nodes.

Prices (per GPU-hour, USD): on-demand from the GPU catalog (its ``price_source`` and
``price_date``); the other tiers are on-demand × a published ratio:

* reserved 1 year: × (1 − 0.37), reserved 3 years: × (1 − 0.55) — Google Cloud
  resource-based committed-use discounts for GPUs (37 % / 55 %), as tabulated in
  "Committed Use Discounts" (https://lillytechsystems.com/ai-school/gcp-ai-cost/cuds.html;
  Google's CUD overview: https://cloud.google.com/compute/docs/instances/committed-use-discounts-overview).
* spot: × (1 − 0.52) — RunPod H100 SXM spot vs on-demand (52 % off) in deploybase.ai
  "Spot vs On-Demand GPU Pricing: How to Save 50-80%" (2025-06-03,
  https://deploybase.ai/articles/spot-vs-on-demand-gpu-pricing-how-to-save-50-80);
  Google quotes 60–91 % for Spot VMs. Spot capacity can be reclaimed: it suits the
  spare replica, not the whole serving fleet.

Equations:

    cost_per_hour         = billed_gpus × price_per_gpu_hour
    cost_per_million_out  = cost_per_hour / (output_tokens_per_s × 3600) × 1e6
    monthly_tco           = cost_per_hour × MONTH_HOURS (730.5 h)

``output_tokens_per_s`` is the fleet's served output rate at the workload's MEAN rate
(requests/s × mean output tokens): the tokens the fleet is paid to produce.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from ..units import MONTH_HOURS

__all__ = ["PRICE_TIERS", "PriceTier", "Packing", "FleetCost", "pack_replicas", "fleet_cost",
           "DEFAULT_NODE_SIZES"]

DEFAULT_NODE_SIZES: tuple[int, ...] = (1, 2, 4, 8)


@dataclass(frozen=True, kw_only=True)
class PriceTier:
    name: str
    multiplier: float   # × on-demand price
    source: str


PRICE_TIERS: tuple[PriceTier, ...] = (
    PriceTier(name="on_demand", multiplier=1.0, source="GPU catalog price_source (per GPU)"),
    PriceTier(name="reserved_1y", multiplier=1 - 0.37,
              source="Google Cloud resource-based GPU CUD, 1 year: 37% off "
                     "(lillytechsystems.com/ai-school/gcp-ai-cost/cuds.html)"),
    PriceTier(name="reserved_3y", multiplier=1 - 0.55,
              source="Google Cloud resource-based GPU CUD, 3 years: 55% off (same source)"),
    PriceTier(name="spot", multiplier=1 - 0.52,
              source="RunPod H100 SXM spot 52% below on-demand (deploybase.ai, 2025-06-03); "
                     "GCP Spot VMs 60-91% off"),
)


@dataclass(frozen=True, kw_only=True)
class Packing:
    gpus_per_replica: int
    replicas: int
    nodes: tuple[tuple[int, int], ...]   # (node size in GPUs, count), largest first
    billed_gpus: int
    used_gpus: int

    @property
    def idle_gpus(self) -> int:
        return self.billed_gpus - self.used_gpus

    def to_dict(self) -> dict[str, Any]:
        return {"gpus_per_replica": self.gpus_per_replica, "replicas": self.replicas,
                "nodes": [{"gpus_per_node": s, "count": c} for s, c in self.nodes],
                "billed_gpus": self.billed_gpus, "used_gpus": self.used_gpus,
                "idle_gpus": self.idle_gpus}


def pack_replicas(*, replicas: int, gpus_per_replica: int,
                  node_sizes: Sequence[int] = DEFAULT_NODE_SIZES, max_node_gpus: int = 8) -> Packing:
    """Nodes to rent for ``replicas`` replicas of ``gpus_per_replica`` GPUs (see module doc)."""
    if replicas < 0 or gpus_per_replica < 1:
        raise ValueError(f"bad packing request: replicas={replicas}, gpus_per_replica={gpus_per_replica}")
    sizes = sorted({s for s in node_sizes if 1 <= s <= max_node_gpus})
    if not sizes:
        raise ValueError(f"no node size in {list(node_sizes)} is <= {max_node_gpus} GPUs")
    used = replicas * gpus_per_replica
    s_max = sizes[-1]
    counts: dict[int, int] = {}
    if gpus_per_replica > s_max:
        per = math.ceil(gpus_per_replica / s_max)
        counts[s_max] = per * replicas
    else:
        per_node = s_max // gpus_per_replica
        full, rest = divmod(replicas, per_node)
        if full:
            counts[s_max] = full
        fitting = [s for s in sizes if s >= gpus_per_replica]
        while rest:
            # the largest node the remainder fills completely, else the smallest that holds one
            s = max((s for s in fitting if s // gpus_per_replica <= rest and s % gpus_per_replica == 0),
                    default=fitting[0])
            counts[s] = counts.get(s, 0) + 1
            rest -= min(rest, s // gpus_per_replica)
    nodes = tuple(sorted(((s, c) for s, c in counts.items() if c), reverse=True))
    return Packing(gpus_per_replica=gpus_per_replica, replicas=replicas, nodes=nodes,
                   billed_gpus=sum(s * c for s, c in nodes), used_gpus=used)


@dataclass(frozen=True, kw_only=True)
class FleetCost:
    price_per_gpu_hour_usd: float
    packing: Packing
    cost_per_hour_usd: float
    output_tokens_per_s: float
    cost_per_million_output_tokens_usd: float
    monthly_usd: dict[str, float] = field(default_factory=dict)   # tier -> monthly TCO
    price_source: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["packing"] = self.packing.to_dict()
        return d


def fleet_cost(*, packing: Packing, price_per_gpu_hour_usd: float, output_tokens_per_s: float,
               price_source: str = "", tiers: Sequence[PriceTier] = PRICE_TIERS) -> FleetCost:
    """Cost of a packed fleet (see module docstring for the equations)."""
    per_hour = packing.billed_gpus * price_per_gpu_hour_usd
    per_m = (per_hour / (output_tokens_per_s * 3600.0) * 1e6) if output_tokens_per_s > 0 else math.inf
    monthly = {t.name: per_hour * t.multiplier * MONTH_HOURS for t in tiers}
    return FleetCost(price_per_gpu_hour_usd=price_per_gpu_hour_usd, packing=packing,
                     cost_per_hour_usd=per_hour, output_tokens_per_s=output_tokens_per_s,
                     cost_per_million_output_tokens_usd=per_m, monthly_usd=monthly,
                     price_source=price_source)
