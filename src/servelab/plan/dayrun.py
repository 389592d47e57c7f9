"""Simulating a day of a multi-model fleet in shards: local processes or Ray.

A day is cut into independent simulations (shards) and their records merged:

* **by model pool** — exact: pools share no replica, router or queue, so a pool
  simulated alone behaves as in a run of the whole fleet;
* **by replica groups inside a pool** (``shards_per_pool = K``) — an approximation. The
  pool's request list is drawn once (seeded, identical in every shard) and request ``i``
  (a whole conversation for multi-turn workloads, so its turns meet their prefix cache)
  goes to group ``i mod K``; each group has ``⌊n/K⌋`` or ``⌈n/K⌉`` of the pool's replicas,
  its own router and its own share of the autoscaler's bounds. What this approximates:
  the router chooses only among its group's replicas (a least-outstanding router over
  all replicas balances better), prefix-cache affinity across groups is lost (a
  prefix-aware router would have sent a shared prefix to one replica of the pool), the
  fleet-wide admission queue bound is split evenly, and each group's autoscaler sees only
  its group. ``benchmarks/bench_day_shards.py`` measures the error against an unsharded
  run (p95 TTFT/TPOT, delivery) and the speed-up.

Each shard is one ``sim.simulate`` call in a worker (:class:`.executor.TaskRunner`: local
process pool by default, ``ray`` with the ``dist`` extra). Tasks carry the scenario as
JSON-able data and their seed, so results never depend on the executor or the number of
workers. Record ids become ``pool/id``; replica names ``pool/gK/replica`` (group K).
"""

from __future__ import annotations

import platform
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from ..errors import ConfigError

__all__ = ["ShardTask", "ShardResult", "DayRun", "shard_tasks", "run_shard", "simulate_day", "split_count"]


@dataclass(frozen=True, kw_only=True)
class ShardTask:
    pool: str
    scenario: dict[str, Any]        # Scenario.model_dump(mode="json")
    group: int
    groups: int
    exact: bool = False


@dataclass(kw_only=True)
class ShardResult:
    pool: str
    group: int
    records: list[Any]
    duration_s: float
    replica_stats: dict[str, Any]
    events: list[tuple[float, str, str]]
    requests: int
    cpu_s: float


@dataclass(kw_only=True)
class DayRun:
    records: list[Any]
    shards: list[ShardResult]
    duration_s: float
    wall_s: float
    meta: dict[str, Any] = field(default_factory=dict)


def split_count(n: int, groups: int, k: int) -> int:
    """Group ``k``'s share of ``n`` items over ``groups`` groups (the first ``n mod groups`` get one more)."""
    return n // groups + (1 if k < n % groups else 0)


def _group_scenario(sc: Any, k: int, groups: int) -> Any:
    from ..scenario import build

    if groups == 1:
        return sc
    if sc.faults:
        raise ConfigError("faults name replicas by index; simulate a scenario with faults unsharded (shards 1)")
    if sc.replicas < groups:
        raise ConfigError(f"{sc.replicas} replicas cannot be split into {groups} groups; use at most "
                          f"{max(1, sc.replicas)} groups")
    changes: dict[str, Any] = {"replicas": split_count(sc.replicas, groups, k)}
    if sc.autoscaler is not None:
        a = sc.autoscaler
        lo = split_count(a.min_replicas, groups, k)
        if a.min_replicas > 0:
            lo = max(1, lo)
        hi = max(1, lo, split_count(a.max_replicas, groups, k))
        changes["autoscaler"] = a.model_copy(update={"min_replicas": lo, "max_replicas": hi})
    if sc.admission.max_queue is not None:
        changes["admission"] = sc.admission.model_copy(
            update={"max_queue": split_count(sc.admission.max_queue, groups, k)})
    if sc.admission.rate_limit_rps is not None:
        raise ConfigError("a fleet-wide rate limit cannot be split exactly; simulate it unsharded (shards 1)")
    return build.derive(sc, **changes)


def run_shard(task: ShardTask) -> ShardResult:
    """One group of one pool: its requests through its replicas (module docstring)."""
    from ..scenario import Scenario, build
    from ..sim import simulate

    c0 = time.process_time()
    sc = Scenario.model_validate(task.scenario)
    reqs = build.requests(sc)
    if task.groups > 1:
        reqs = [r for i, r in enumerate(reqs)
                if (r.conversation if r.conversation >= 0 else i) % task.groups == task.group]
    gsc = _group_scenario(sc, task.group, task.groups)
    res = simulate(build.sim_config(gsc, exact=task.exact), reqs)
    tag = f"{task.pool}/g{task.group}/" if task.groups > 1 else f"{task.pool}/"
    records = res.records                  # fresh objects of this run: renamed in place
    for r in records:
        r.id = f"{task.pool}/{r.id}"
        if r.replica is not None:
            r.replica = tag + r.replica
        r.extra["pool"] = task.pool
    return ShardResult(pool=task.pool, group=task.group, records=records, duration_s=res.duration_s,
                       replica_stats={tag + k: v for k, v in res.replica_stats.items()},
                       events=[(t, kind, f"{tag}{d}") for t, kind, d in res.events],
                       requests=len(reqs), cpu_s=time.process_time() - c0)


def shard_tasks(pools: Sequence[tuple[str, Any]], *, groups: int = 1, exact: bool = False) -> list[ShardTask]:
    """One task per (pool, replica group), largest pools first (better packing on few workers)."""
    if groups < 1:
        raise ConfigError(f"groups per pool must be >= 1, got {groups}")
    tasks = [ShardTask(pool=name, scenario=sc.model_dump(mode="json"), group=k, groups=groups, exact=exact)
             for name, sc in pools for k in range(groups)]
    return tasks


def simulate_day(pools: Sequence[tuple[str, Any]], *, groups: int = 1, executor: str = "local",
                 jobs: int | None = None, exact: bool = False,
                 on_done: Callable[[int, int], None] | None = None) -> DayRun:
    """Every shard of every pool, merged (records ordered by arrival, then id)."""
    from .. import __version__
    from .executor import TaskRunner

    tasks = shard_tasks(pools, groups=groups, exact=exact)
    t0 = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat()
    with TaskRunner(executor, jobs) as runner:
        results = runner.map(run_shard, tasks,
                             on_done=(lambda i, _r: on_done(i, len(tasks))) if on_done else None)
    records = sorted((r for s in results for r in s.records), key=lambda r: (r.arrival_s, r.id))
    duration = max((s.duration_s for s in results), default=0.0)
    meta = {"run_id": uuid.uuid4().hex[:12], "kind": "simulate", "started_at": started,
            "finished_at": datetime.now(timezone.utc).isoformat(), "duration_s": duration, "complete": True,
            "config": {"pools": {name: sc.model_dump(mode="json") for name, sc in pools},
                       "groups_per_pool": groups, "executor": executor, "jobs": runner.jobs,
                       "shards": [{"pool": s.pool, "group": s.group, "requests": s.requests,
                                   "cpu_s": s.cpu_s, "makespan_s": s.duration_s} for s in results]},
            "versions": {"servelab": __version__, "python": platform.python_version()},
            "host": platform.node(), "notes": "sharded day simulation (servelab.plan.dayrun)"}
    return DayRun(records=records, shards=list(results), duration_s=duration,
                  wall_s=time.perf_counter() - t0, meta=meta)
