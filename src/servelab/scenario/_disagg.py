"""Scenario settings and builders for KV tier policies and disaggregated prefill/decode.

``kv_policy`` (per replica, :mod:`servelab.sim.tiering`): ``policy`` lru | priority |
cost; ``pin_priority`` and ``pin_fraction`` (the share of the replica's KV blocks that
high-priority prefixes may pin, priority policy); ``prefetch`` of queued requests'
prefixes from the tiers below the first, stopped ``prefetch_deadline_s`` after arrival;
``prefetch_wait`` holds a request until then.

``disagg`` (:mod:`servelab.sim.disagg`): a prefill pool and a decode pool, each with
its replica count and optional GPU, TP and dtype overriding the scenario's; the KV link
(``nvlink``, ``ib-ndr``, ``ib-hdr``, ``roce-400``, ``roce-200``, ``pcie``; rate and
latency overridable) and the concurrent transfers per prefill replica. The scenario's
own ``replicas`` is then unused; the fleet costs the GPUs of both pools.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError

__all__ = ["KVPolicySettings", "PoolSettings", "DisaggSettings", "kv_policy", "disagg_sim_config",
           "pool_scenarios", "disagg_usd_per_hour"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class KVPolicySettings(_Model):
    policy: Literal["lru", "priority", "cost"] = Field(
        "lru", description="lru: LRU cascade; priority: pin high-priority prefixes, demote low-priority first; "
                           "cost: use a tier only when restoring beats recomputing.")
    pin_priority: int = Field(0, ge=-1000, le=1000, description="Requests with priority <= this are high-priority (lower = more important).")
    pin_fraction: float = Field(0.0, ge=0.0, le=1.0, description="Share of the replica's KV blocks high-priority prefixes may pin (priority policy).")
    prefetch: bool = Field(False, description="Copy queued requests' prefixes from lower tiers into the first tier while they wait.")
    prefetch_deadline_s: float | None = Field(
        None, gt=0.0, le=86400.0, description="A prefetch stops this long after arrival (SLO-aware, like HiCache's timeout); None: at admission.")
    prefetch_wait: bool = Field(
        False, description="Hold a request until its prefetch ends or its deadline passes (HiCache timeout / wait_complete); "
                           "otherwise it is admitted when its turn comes (best_effort).")


class PoolSettings(_Model):
    replicas: int = Field(..., ge=1, le=4096, description="Replicas in the pool.")
    gpu: str | None = Field(None, description="Catalog GPU id (default: the scenario's).")
    tp: int | None = Field(None, ge=1, le=64, description="Tensor-parallel degree (default: the scenario's).")
    weight_dtype: str | None = Field(None, description="Weight precision (default: the scenario's).")
    kv_dtype: str | None = Field(None, description="KV precision (default: the scenario's).")


class DisaggSettings(_Model):
    prefill: PoolSettings = Field(..., description="The prefill pool.")
    decode: PoolSettings = Field(..., description="The decode pool.")
    link: Literal["nvlink", "ib-ndr", "ib-hdr", "roce-400", "roce-200", "pcie"] = Field(
        "ib-ndr", description="KV path from a prefill GPU to a decode GPU (sim.disagg.LINKS).")
    link_gb_s: float | None = Field(None, gt=0.0, le=1e5, description="Override: link rate per GPU, GB/s.")
    link_latency_ms: float | None = Field(None, ge=0.0, le=1e5, description="Override: fixed cost per transfer, ms.")
    max_transfers: int = Field(1, ge=1, le=1024, description="Concurrent KV transfers per prefill replica.")


def kv_policy(sc: Any, dep: Any) -> Any:
    """The scenario's ``sim.KVPolicy`` (None for plain LRU without prefetch)."""
    p = sc.kv_policy
    if p is None or (p.policy == "lru" and not p.prefetch):
        return None
    from ..perf import memory_budget
    from ..sim import KVPolicy

    if p.prefetch and len(sc.kv_tiers) < 2:
        raise ConfigError(f"kv_policy.prefetch needs at least two kv_tiers (it copies blocks up into the "
                          f"first), got {[t.name for t in sc.kv_tiers]}")
    pin_blocks = int(p.pin_fraction * memory_budget(dep).kv_blocks) if p.pin_fraction else 0
    return KVPolicy(policy=p.policy, pin_priority=p.pin_priority, pin_blocks=pin_blocks,
                    prefetch=p.prefetch, prefetch_deadline_s=p.prefetch_deadline_s,
                    prefetch_wait=p.prefetch_wait)


def pool_scenarios(sc: Any) -> tuple[Any, Any]:
    """(prefill, decode) scenarios: ``sc`` with each pool's GPU, TP, dtypes and count."""
    from .build import derive

    out = []
    for pool in (sc.disagg.prefill, sc.disagg.decode):
        ch: dict[str, Any] = {"replicas": pool.replicas, "disagg": None}
        for f in ("gpu", "tp", "weight_dtype", "kv_dtype"):
            v = getattr(pool, f)
            if v is not None:
                ch[f] = v
        out.append(derive(sc, **ch))
    return out[0], out[1]


def disagg_sim_config(sc: Any, base: Any) -> Any:
    """The P/D fleet: ``base`` (the aggregated SimConfig of ``sc``: admission, router,
    faults) with a prefill spec and a decode spec built from the pool scenarios."""
    import dataclasses

    from ..sim import DisaggConfig, ReplicaSpec, link_for
    from .build import deployment, replica_settings

    specs = []
    for name, psc in zip(("prefill", "decode"), pool_scenarios(sc)):
        dep = deployment(psc)
        specs.append(ReplicaSpec(deployment=dep, scheduler=replica_settings(psc, dep),
                                 count=psc.replicas, name=name))
    d = sc.disagg
    link = link_for(d.link, specs[0].deployment.gpu, gb_per_s=d.link_gb_s,
                    latency_s=None if d.link_latency_ms is None else d.link_latency_ms * 1e-3)
    return dataclasses.replace(base, replicas=tuple(specs),
                               disagg=DisaggConfig(link=link, max_transfers=d.max_transfers))


def disagg_usd_per_hour(sc: Any) -> float:
    """$/hour of both pools, each packed into the scenario's node sizes."""
    from .build import fleet_usd_per_hour

    return sum(fleet_usd_per_hour(p) for p in pool_scenarios(sc))
