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

Each shard is one simulation in a worker (:class:`.executor.TaskRunner`: local
process pool by default, ``ray`` with the ``dist`` extra). Tasks carry the scenario as
JSON-able data and their seed, so results never depend on the executor or the number of
workers. Record ids become ``pool/id``; replica names ``pool/gK/replica`` (group K).

**Streaming to a folder** (``simulate_day(..., out=DIR)``, what ``servelab simulate-day``
uses): a day of tens of millions of requests does not fit in memory as records (~2 GB per
million as Python objects). Each shard then drains its finished requests — in arrival
order, up to the oldest unfinished one — about once a second of wall time, writes them as
one Parquet row group of its part file (``recordio.ParquetRecordWriter``) and keeps only the
nine numeric fields the metrics need (``metrics.columns_from_arrays``: ~60 bytes a request).
It also rewrites a one-line progress file (simulated seconds, requests done, requests in
the shard) that the parent polls for its progress bar. The parent summarizes from the
arrays — exactly what ``summarize`` of the records gives (simulated records carry no token
times) — and concatenates the part files into the run folder's ``records.parquet``. The
records are those of the in-memory path; they are grouped by shard (each shard's in arrival
order) instead of sorted over the whole fleet, which no metric depends on.
"""

from __future__ import annotations

import os
import platform
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import ConfigError

__all__ = ["ShardTask", "ShardResult", "ShardProgress", "DayRun", "shard_tasks", "run_shard", "simulate_day",
           "split_count", "day_summary", "pool_groups"]

_ARRAY_FIELDS = ("status", "arrival_s", "dispatch_s", "start_s", "first_token_s", "finish_s",
                 "input_tokens", "output_tokens", "cached_tokens")
_DRAIN_EVERY_S = 1.0            # wall seconds between two drains of finished requests (streaming)


@dataclass(frozen=True, kw_only=True)
class ShardTask:
    pool: str
    scenario: dict[str, Any]        # Scenario.model_dump(mode="json")
    group: int
    groups: int
    exact: bool = False
    out_dir: str | None = None      # stream records to a part file here (module docstring)

    @property
    def label(self) -> str:
        return f"{self.pool}-g{self.group}"


@dataclass(kw_only=True)
class ShardResult:
    pool: str
    group: int
    records: list[Any]              # empty when streamed (``part``)
    duration_s: float
    replica_stats: dict[str, Any]
    events: list[tuple[float, str, str]]
    requests: int
    cpu_s: float
    part: str | None = None         # Parquet part file of the streamed records
    arrays: str | None = None       # .npz of the metric fields (``_ARRAY_FIELDS``)
    peak_rss_bytes: int | None = None


@dataclass(frozen=True, kw_only=True)
class ShardProgress:
    """Where one shard stands: simulated seconds of its horizon, requests done of its total."""
    label: str
    sim_s: float
    horizon_s: float
    done: int
    total: int


@dataclass(kw_only=True)
class DayRun:
    records: list[Any]              # empty when streamed to a folder
    shards: list[ShardResult]
    duration_s: float
    wall_s: float
    meta: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None   # streamed runs: the merged summary (``day_summary``)
    path: Path | None = None                # streamed runs: the run folder written
    records_written: int = 0


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
    reqs = build.requests(sc, select=(task.group, task.groups) if task.groups > 1 else None)
    gsc = _group_scenario(sc, task.group, task.groups)
    tag = f"{task.pool}/g{task.group}/" if task.groups > 1 else f"{task.pool}/"
    cfg = build.sim_config(gsc, exact=task.exact)
    if task.out_dir is not None and getattr(cfg, "disagg", None) is None:
        return _stream_shard(task, cfg, reqs, tag, c0)
    res = simulate(cfg, reqs)
    records = res.records                  # fresh objects of this run: renamed in place
    for r in records:
        r.id = f"{task.pool}/{r.id}"
        if r.replica is not None:
            r.replica = tag + r.replica
        r.extra["pool"] = task.pool
    if task.out_dir is not None:                 # a P/D pool: simulated whole, then written
        sink = _Sink(task)
        sink.progress(res.duration_s, res.duration_s, len(records), len(records))
        sink.add(records)
        part, arrays = sink.close()
        records = []
    else:
        part = arrays = None
    return ShardResult(pool=task.pool, group=task.group, records=records, duration_s=res.duration_s,
                       replica_stats={tag + k: v for k, v in res.replica_stats.items()},
                       events=[(t, kind, f"{tag}{d}") for t, kind, d in res.events],
                       requests=len(reqs), cpu_s=time.process_time() - c0, part=part, arrays=arrays,
                       peak_rss_bytes=_peak_rss())


class _Sink:
    """A shard's streamed output: Parquet part file, metric arrays, progress file."""

    def __init__(self, task: ShardTask) -> None:
        from .. import recordio

        d = Path(task.out_dir or ".")
        self.part = d / f"{task.label}.parquet"
        self.arrays = d / f"{task.label}.npz"
        self.progress_path = d / f"{task.label}.progress"
        self.writer = recordio.ParquetRecordWriter(self.part)
        self.cols: dict[str, list[Any]] = {k: [] for k in _ARRAY_FIELDS}

    def add(self, records: list[Any]) -> None:
        import pyarrow.compute as pc

        from ..records import STATUSES

        if not records:
            return
        table = self.writer.write(records)
        c = self.cols
        codes = pc.index_in(table.column("status"), value_set=_pa_strings(STATUSES))
        if codes.null_count:
            raise ValueError(f"unknown record status in {set(table.column('status').to_pylist()) - set(STATUSES)}")
        c["status"].append(codes.to_numpy().astype("int8"))
        for k in _ARRAY_FIELDS[1:]:             # float columns: null -> NaN
            c[k].append(table.column(k).to_numpy())

    def progress(self, sim_s: float, horizon_s: float, done: int, total: int) -> None:
        tmp = self.progress_path.with_name(self.progress_path.name + ".tmp")
        tmp.write_text(f"{sim_s!r} {horizon_s!r} {done} {total}\n", encoding="utf-8")
        os.replace(tmp, self.progress_path)

    def close(self) -> tuple[str, str]:
        import numpy as np

        self.writer.close()
        empty = {"status": np.int8}
        np.savez(self.arrays, **{k: (np.concatenate(v) if v else np.empty(0, dtype=empty.get(k, np.float64)))
                                 for k, v in self.cols.items()})
        return str(self.part), str(self.arrays)


def _pa_strings(values: Sequence[str]) -> Any:
    import pyarrow as pa

    return pa.array(list(values), type=pa.string())


def _stream_shard(task: ShardTask, cfg: Any, reqs: list[Any], tag: str, c0: float) -> ShardResult:
    """Simulate one shard, writing finished requests out as they go (module docstring)."""
    import numpy as np

    from ..sim.cluster import _Sim, record_of

    total = len(reqs)
    sim = _Sim(cfg, reqs)
    del reqs
    horizon = sim.reqs[-1].arrival_s if sim.reqs else 0.0
    sink = _Sink(task)
    extra = {"pool": task.pool}             # one dict shared by the shard's records
    prefix = f"{task.pool}/"
    state = {"w": 0, "t": time.monotonic()}

    def drain(final: bool) -> None:
        everyone = sim.all
        w, n = state["w"], len(everyone)
        batch = []
        while w < n:
            r = everyone[w]
            if not (final or r.status):
                break
            rec = record_of(r)
            rec.id = prefix + rec.id
            if rec.replica is not None:
                rec.replica = tag + rec.replica
            rec.extra = extra
            batch.append(rec)
            everyone[w] = None              # the record is out; let the request go
            w += 1
        state["w"] = w
        sink.add(batch)

    def progress(frac: float) -> None:
        t = time.monotonic()
        if t - state["t"] < _DRAIN_EVERY_S:
            return
        state["t"] = t
        drain(False)
        sink.progress(frac * horizon, horizon, state["w"], total)

    sink.progress(0.0, horizon, 0, total)
    last_event_s = sim.run(progress)
    for r in sim.all:
        if r is None:
            continue
        if not r.status:
            sim._end(r, "cancelled", "simulation ended", last_event_s, counted=False)
    drain(True)
    part, arrays = sink.close()
    fin = np.load(arrays)["finish_s"]
    fin = fin[np.isfinite(fin)]
    end_s = float(fin.max()) if fin.size else 0.0
    sink.progress(horizon, horizon, total, total)
    return ShardResult(pool=task.pool, group=task.group, records=[], duration_s=end_s,
                       replica_stats={tag + rep.name: rep.engine.stats() for rep in sim.replicas},
                       events=[(t, kind, f"{tag}{d}") for t, kind, d in sim.events],
                       requests=total, cpu_s=time.process_time() - c0, part=part, arrays=arrays,
                       peak_rss_bytes=_peak_rss())


def _peak_rss() -> int | None:
    """Peak resident set of this process, bytes (Linux reports KiB)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - non-Unix
        return None
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def parse_groups(text: str) -> int | dict[str, int]:
    """``--groups``: ``K`` or ``POOL=K[,POOL=K]``."""
    t = text.strip()
    try:
        if "=" not in t:
            return int(t)
        out = {}
        for part in t.split(","):
            name, _, k = part.partition("=")
            out[name.strip()] = int(k)
        return out
    except ValueError:
        raise ConfigError(f"--groups {text!r}: give a count (2) or POOL=K pairs (chat-8b=2,rag-70b=1)") from None


def pool_groups(pools: Sequence[tuple[str, Any]], groups: int | Mapping[str, int]) -> dict[str, int]:
    """Replica groups of each pool: one count for all, or per pool (``{name: K}``, others 1)."""
    names = [name for name, _sc in pools]
    if isinstance(groups, Mapping):
        unknown = sorted(set(groups) - set(names))
        if unknown:
            raise ConfigError(f"groups for unknown pools {unknown}; pools: {', '.join(names)}")
        out = {name: int(groups.get(name, 1)) for name in names}
    else:
        out = {name: int(groups) for name in names}
    bad = {k: v for k, v in out.items() if v < 1}
    if bad:
        raise ConfigError(f"groups per pool must be >= 1, got {bad}")
    return out


def shard_tasks(pools: Sequence[tuple[str, Any]], *, groups: int | Mapping[str, int] = 1, exact: bool = False,
                out_dir: str | None = None) -> list[ShardTask]:
    """One task per (pool, replica group), in pool order."""
    per = pool_groups(pools, groups)
    tasks = [ShardTask(pool=name, scenario=sc.model_dump(mode="json"), group=k, groups=per[name], exact=exact,
                       out_dir=out_dir)
             for name, sc in pools for k in range(per[name])]
    return tasks


def simulate_day(pools: Sequence[tuple[str, Any]], *, groups: int | Mapping[str, int] = 1, executor: str = "local",
                 jobs: int | None = None, exact: bool = False,
                 on_done: Callable[[int, int], None] | None = None,
                 out: str | os.PathLike[str] | None = None,
                 on_progress: Callable[[list[ShardProgress]], None] | None = None,
                 progress_every_s: float = 0.5) -> DayRun:
    """Every shard of every pool, merged.

    Without ``out``: records in memory, ordered by arrival, then id. With ``out``: records
    streamed to part files and written as one run folder there, the summary computed from
    metric arrays (module docstring); ``on_progress`` is then called from a polling thread
    about every ``progress_every_s`` with every shard's :class:`ShardProgress`.
    """
    from .. import __version__
    from .executor import TaskRunner

    parts_dir: Path | None = None
    if out is not None:
        parts_dir = Path(out) / ".shards"
        shutil.rmtree(parts_dir, ignore_errors=True)
        parts_dir.mkdir(parents=True)
    tasks = shard_tasks(pools, groups=groups, exact=exact, out_dir=str(parts_dir) if parts_dir else None)
    t0 = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat()
    stop = threading.Event()
    poller = None
    if parts_dir is not None and on_progress is not None:
        poller = threading.Thread(target=_poll_progress, args=(tasks, parts_dir, on_progress, stop,
                                                               progress_every_s), daemon=True)
        poller.start()
    try:
        with TaskRunner(executor, jobs) as runner:
            results = runner.map(run_shard, tasks,
                                 on_done=(lambda i, _r: on_done(i, len(tasks))) if on_done else None)
    finally:
        stop.set()
        if poller is not None:
            poller.join()
    if on_progress is not None and parts_dir is not None:
        on_progress(_read_progress(tasks, parts_dir))
    records = sorted((r for s in results for r in s.records), key=lambda r: (r.arrival_s, r.id))
    duration = max((s.duration_s for s in results), default=0.0)
    meta = {"run_id": uuid.uuid4().hex[:12], "kind": "simulate", "started_at": started,
            "finished_at": datetime.now(timezone.utc).isoformat(), "duration_s": duration, "complete": True,
            "config": {"pools": {name: sc.model_dump(mode="json") for name, sc in pools},
                       "groups_per_pool": pool_groups(pools, groups), "executor": executor, "jobs": runner.jobs,
                       "shards": [{"pool": s.pool, "group": s.group, "requests": s.requests,
                                   "cpu_s": s.cpu_s, "makespan_s": s.duration_s,
                                   "peak_rss_bytes": s.peak_rss_bytes} for s in results]},
            "versions": {"servelab": __version__, "python": platform.python_version()},
            "host": platform.node(), "notes": "sharded day simulation (servelab.plan.dayrun)"}
    run = DayRun(records=records, shards=list(results), duration_s=duration, wall_s=0.0, meta=meta)
    if parts_dir is not None:
        from .. import recordio

        run.summary = day_summary(pools, results, duration_s=duration)
        run.summary["shards"] = meta["config"]["shards"]
        meta["config"]["records_format"] = "records.parquet (streamed by shard, each shard in arrival order)"
        run.path = recordio.write_run_parts(out, meta, [s.part for s in results if s.part], run.summary)
        run.records_written = sum(s.requests for s in results)
        shutil.rmtree(parts_dir, ignore_errors=True)
    run.wall_s = time.perf_counter() - t0
    return run


def _arrays(results: Sequence[ShardResult]) -> dict[str, Any]:
    import numpy as np

    loaded = [np.load(s.arrays) for s in results if s.arrays]
    return {k: np.concatenate([a[k] for a in loaded]) if loaded else np.empty(0) for k in _ARRAY_FIELDS}


def day_summary(pools: Sequence[tuple[str, Any]], results: Sequence[ShardResult], *,
                duration_s: float) -> dict[str, Any]:
    """The fleet's summary (``metrics.summarize`` over every request, throughput over
    ``duration_s``) and each pool's under its SLO (``pools``), from the shards' streamed
    metric arrays — the numbers ``summarize`` gives on the records themselves."""
    from ..metrics import columns_from_arrays, summarize
    from ..scenario import build

    per_pool = {}
    for name, sc in pools:
        cols = columns_from_arrays(**_arrays([s for s in results if s.pool == name]))
        per_pool[name] = summarize(cols, slo=build.slo(sc))
        del cols
    summary = summarize(columns_from_arrays(**_arrays(results)), duration_s=duration_s)
    summary["pools"] = per_pool
    return summary


def _read_progress(tasks: Sequence[ShardTask], d: Path) -> list[ShardProgress]:
    out = []
    for t in tasks:
        try:
            a, b, c, e = (d / f"{t.label}.progress").read_text(encoding="utf-8").split()
            out.append(ShardProgress(label=t.label, sim_s=float(a), horizon_s=float(b), done=int(c), total=int(e)))
        except (OSError, ValueError):
            out.append(ShardProgress(label=t.label, sim_s=0.0, horizon_s=0.0, done=0, total=0))
    return out


def _poll_progress(tasks: Sequence[ShardTask], d: Path, cb: Callable[[list[ShardProgress]], None],
                   stop: threading.Event, every_s: float) -> None:
    while not stop.wait(every_s):
        cb(_read_progress(tasks, d))
