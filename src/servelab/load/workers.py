"""Spread dispatch over worker processes when one event loop cannot keep up.

The schedule is split round-robin (request i → worker i mod N; all turns of a
conversation go to one worker), every worker runs :func:`runner.run_load` on its
share against one common start time ``t0`` on ``time.perf_counter`` (CLOCK_MONOTONIC
on Linux: one clock for all processes of a host, so records from different workers
share a time axis). The start is set ``start_delay_s`` ahead so that process start-up
(imports) is not counted as lateness of the first requests — if it is not enough, the
lateness shows in the records. ``max_concurrency`` is divided among workers (rounded
up), so the cap is approximate by at most N−1. Records come back over a
``multiprocessing`` queue as they finish; worker 0 also scrapes ``/metrics``.
Stopping: the parent sets a shared event, each worker stops dispatching and drains.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import queue as queue_mod
import signal
import threading
import time
from dataclasses import replace
from typing import Any, Callable, Sequence

from ..records import RequestRecord
from ._loop import run as run_loop
from .client import EndpointConfig, Prompt
from .runner import LoadResult, RunOptions, run_load

__all__ = ["run_in_workers", "split_prompts"]


def split_prompts(prompts: Sequence[Prompt], n: int) -> list[list[Prompt]]:
    parts: list[list[Prompt]] = [[] for _ in range(n)]
    for i, p in enumerate(prompts):
        w = (p.conversation % n) if p.conversation >= 0 else (i % n)
        parts[w].append(p)
    return parts


def _worker(idx: int, prompts: list[Prompt], ep: EndpointConfig, opts: RunOptions, t0: float,
            out_q: Any, stop_ev: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the parent decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    async def main() -> LoadResult:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def watch() -> None:
            while not stop_ev.wait(0.1):
                if stop.is_set():
                    return
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch, daemon=True).start()
        try:
            return await run_load(prompts, ep, opts, stop=stop, t0=t0,
                                  on_record=lambda r: out_q.put(("rec", r.to_dict())),
                                  on_dispatch=lambda p, t: out_q.put(("disp", p.id, t)))
        finally:
            stop.set()

    try:
        res = run_loop(main())
        out_q.put(("done", idx, res.timeseries, res.not_offered, res.interrupted, res.duration_s))
    except BaseException as e:   # a crashed worker is reported, never silently lost
        out_q.put(("error", idx, f"{type(e).__name__}: {e}"))


async def run_in_workers(
    prompts: Sequence[Prompt],
    ep: EndpointConfig,
    opts: RunOptions,
    workers: int,
    *,
    on_record: Callable[[RequestRecord], None] | None = None,
    stop: asyncio.Event | None = None,
    start_delay_s: float = 2.0,
    on_dispatch: Callable[[Prompt, float], None] | None = None,
) -> LoadResult:
    ctx = mp.get_context("spawn")
    out_q = ctx.Queue()
    stop_ev = ctx.Event()
    parts = split_prompts(sorted(prompts, key=lambda p: p.arrival_s), workers)
    by_id = {p.id: p for p in prompts}
    per_mc = math.ceil(opts.max_concurrency / workers) if opts.max_concurrency else None
    t0 = time.perf_counter() + start_delay_s
    procs = []
    for i, part in enumerate(parts):
        o = replace(opts, max_concurrency=per_mc, scrape_url=opts.scrape_url if i == 0 else None)
        pr = ctx.Process(target=_worker, args=(i, part, ep, o, t0, out_q, stop_ev), daemon=True)
        pr.start()
        procs.append(pr)
    records: list[RequestRecord] = []
    done = 0
    timeseries = None
    not_offered = 0
    interrupted = False
    errors: list[str] = []
    sink_errors: list[str] = []
    loop = asyncio.get_running_loop()

    def get() -> Any:
        try:
            return out_q.get(timeout=0.2)
        except queue_mod.Empty:
            return None

    while done < workers:
        if stop is not None and stop.is_set():
            stop_ev.set()
        msg = await loop.run_in_executor(None, get)
        if msg is None:
            if not any(p.is_alive() for p in procs) and out_q.empty():
                errors.append("a worker exited without reporting")
                break
            continue
        if msg[0] == "disp":
            if on_dispatch is not None:
                try:
                    on_dispatch(by_id[msg[1]], msg[2])
                except Exception as e:  # noqa: BLE001 - as for records
                    if len(sink_errors) < 5:
                        sink_errors.append(f"{type(e).__name__}: {e}")
            continue
        if msg[0] == "rec":
            rec = RequestRecord.from_dict(msg[1])
            records.append(rec)
            if on_record is not None:
                try:
                    on_record(rec)
                except Exception as e:  # noqa: BLE001 - a full disk must not lose the record
                    if len(sink_errors) < 5:
                        sink_errors.append(f"{type(e).__name__}: {e}")
        elif msg[0] == "done":
            done += 1
            _, idx, ts, no, intr, _dur = msg
            if ts is not None:
                timeseries = ts
            not_offered += no
            interrupted = interrupted or intr
        else:
            done += 1
            errors.append(msg[2])
    for p in procs:
        p.join(timeout=5)
    finishes = [r.finish_s for r in records if r.finish_s is not None]
    res = LoadResult(records=records, timeseries=timeseries,
                     duration_s=max(finishes) if finishes else 0.0,
                     interrupted=interrupted or bool(errors), not_offered=not_offered)
    if errors:
        res.extra["worker_errors"] = errors
    if sink_errors:
        res.extra["sink_errors"] = sink_errors
    return res
