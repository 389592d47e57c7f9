"""Run a load: offer prompts on their schedule, stream every response, keep every record.

Dispatch model (open loop): one dispatcher coroutine walks the schedule, sleeps until
each request's offered time and starts a task for it. The record's ``arrival_s`` is
the *scheduled* time and ``dispatch_s`` the actual send, so lateness
(dispatch − arrival) is measured for every request; a client that falls behind
shows it instead of silently thinning the load (coordinated omission).

- ``max_concurrency`` caps requests in flight (a semaphore) and combines with a
  rate: waiting for a slot counts as lateness. With rate = inf it is a closed loop:
  the offered time of a request is when a slot frees (``arrival_s`` = slot time).
- Multi-turn conversations: turn k is offered at max(scheduled, finish of turn k−1
  + think time) and carries the conversation so far.
- Stopping (``stop`` event, set by Ctrl-C in the CLI): dispatch ends, in-flight
  requests get ``drain_timeout_s`` to finish, the rest become ``cancelled``
  records; requests never offered produce no record (``not_offered`` counts them).
- Every finished record goes to ``on_record`` immediately (the CLI writes it to
  JSONL and flushes); ``on_dispatch(prompt, dispatch_s)`` is called as each request
  is sent (the CLI journals it, so a killed run can still account for requests that
  were in flight — see ``results.recover_run``).

Timing: the dispatcher waits on a ``timerfd`` armed with the absolute deadline
(``_timer.DeadlineSleeper``, Linux): one wakeup, no millisecond rounding. Elsewhere
``asyncio.sleep`` wakes up to ~1 ms after its deadline (epoll's millisecond
timeout), or — uvloop's millisecond timers — before it, so it sleeps again until the
deadline has passed. Either way a request is never sent early and any lateness is
recorded, not hidden.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import aiohttp

from .._scrub import scrub_text
from ..records import RequestRecord
from ._timer import DeadlineSleeper, sleep_until
from .client import EndpointConfig, Prompt, build_body, send_request
from .rawhttp import RawPool
from .scrape import Scraper

__all__ = ["RunOptions", "LoadResult", "run_load"]


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    max_concurrency: int | None = None
    closed_loop: bool = False          # rate = inf with max_concurrency
    think_time_s: float = 0.0
    drain_timeout_s: float = 5.0
    scrape_url: str | None = None
    scrape_interval_s: float = 1.0
    connection_limit: int = 0          # 0: unlimited keep-alive connections


@dataclass(kw_only=True)
class LoadResult:
    records: list[RequestRecord]
    timeseries: dict[str, Any] | None
    duration_s: float
    interrupted: bool
    not_offered: int
    extra: dict[str, Any] = field(default_factory=dict)


def _cancelled(p: Prompt, dispatch_s: float | None, now: float, why: str) -> RequestRecord:
    return RequestRecord(
        id=p.id, arrival_s=p.arrival_s, input_tokens=p.input_tokens, status="cancelled",
        reason=why, dispatch_s=dispatch_s, finish_s=now, priority=p.priority, adapter=p.adapter,
        extra={"requested_input_tokens": p.input_tokens, "requested_output_tokens": p.output_tokens},
    )


def _client_error(p: Prompt, dispatch_s: float | None, now: float, exc: BaseException) -> RequestRecord:
    """The record of a request whose task raised: failed, with the exception as reason."""
    rec = _cancelled(p, dispatch_s, now, f"client error: {type(exc).__name__}: {exc}"[:2000])
    rec.status = "failed"
    return rec


async def run_load(
    prompts: Sequence[Prompt],
    ep: EndpointConfig,
    opts: RunOptions = RunOptions(),
    *,
    on_record: Callable[[RequestRecord], None] | None = None,
    stop: asyncio.Event | None = None,
    t0: float | None = None,
    on_dispatch: Callable[[Prompt, float], None] | None = None,
) -> LoadResult:
    """Offer ``prompts`` (sorted by ``arrival_s``) to ``ep``; returns every record."""
    stop = stop or asyncio.Event()
    records: list[RequestRecord] = []
    perf = time.perf_counter
    headers = ep.http_headers()
    prompts = sorted(prompts, key=lambda p: p.arrival_s)
    # Bodies are serialized before the clock starts; conversation turns need history.
    bodies: dict[str, bytes] = {p.id: build_body(ep, p) for p in prompts if p.conversation < 0}
    sem = asyncio.Semaphore(opts.max_concurrency) if opts.max_concurrency else None
    conv_done: dict[tuple[int, int], asyncio.Future] = {}
    conv_ids = {p.conversation for p in prompts if p.conversation >= 0}
    connector = aiohttp.TCPConnector(limit=opts.connection_limit, ttl_dns_cache=300,
                                     enable_cleanup_closed=True)
    inflight: dict[asyncio.Task, Prompt] = {}
    dispatch_times: dict[str, float] = {}

    sink_errors: list[str] = []
    known = ep.secrets()

    def emit(rec: RequestRecord) -> None:
        if rec.reason:
            rec.reason = scrub_text(rec.reason, known)
        records.append(rec)                     # kept in memory whatever on_record does
        if on_record is not None:
            try:
                on_record(rec)
            except Exception as e:  # noqa: BLE001 - a full disk must not lose the record
                if len(sink_errors) < 5:
                    sink_errors.append(f"{type(e).__name__}: {e}")

    async def one(p: Prompt, session: aiohttp.ClientSession | RawPool) -> None:
        history: Any = None
        key = (p.conversation, p.turn)
        try:
            if p.conversation >= 0 and p.turn > 0 and (p.conversation, p.turn - 1) in conv_done:
                prev_finish, history = await conv_done[(p.conversation, p.turn - 1)]
                offered = max(p.arrival_s, prev_finish + opts.think_time_s)
                await sleep_until(t0 + offered)
                p.arrival_s = offered
            if sem is not None:
                await sem.acquire()
            try:
                if opts.closed_loop:
                    p.arrival_s = perf() - t0
                body = bodies.get(p.id)
                keep_text = p.conversation >= 0
                if body is None:
                    if history is not None:
                        if ep.chat:
                            p.messages = history + [{"role": "user", "content": p.prompt}]
                        else:
                            p.prompt = f"{history}\n{p.prompt}"
                    body = build_body(ep, p)
                dispatch_times[p.id] = perf() - t0
                if on_dispatch is not None:
                    try:
                        on_dispatch(p, dispatch_times[p.id])
                    except Exception as e:  # noqa: BLE001 - a journal that fails must not stop the load
                        if len(sink_errors) < 5:
                            sink_errors.append(f"{type(e).__name__}: {e}")
                rec, text = await send_request(session, ep, p, body=body, t0=t0, headers=headers,
                                               keep_text=keep_text)
            finally:
                if sem is not None:
                    sem.release()
            if keep_text and key in conv_done and not conv_done[key].done():
                if ep.chat:
                    msgs = (p.messages or [{"role": "user", "content": p.prompt}])
                    hist: Any = msgs + [{"role": "assistant", "content": text}]
                else:
                    hist = f"{p.prompt}{text}"
                conv_done[key].set_result((rec.finish_s or perf() - t0, hist))
        except asyncio.CancelledError:
            emit(_cancelled(p, dispatch_times.get(p.id), perf() - t0,
                            "run stopped before the response finished"))
            if key in conv_done and not conv_done[key].done():
                conv_done[key].cancel()
            return
        except Exception as e:  # noqa: BLE001 - whatever happens, the request becomes a record
            emit(_client_error(p, dispatch_times.get(p.id), perf() - t0, e))
            if key in conv_done and not conv_done[key].done():
                conv_done[key].set_exception(RuntimeError(f"turn {p.turn} of the conversation failed"))
            return
        emit(rec)

    interrupted = False
    scraper: Scraper | None = None
    scrape_task: asyncio.Task | None = None
    async with aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                     read_bufsize=1 << 16) as session:
        transport: aiohttp.ClientSession | RawPool = RawPool() if ep.http_client == "raw" else session
        if opts.scrape_url:
            # one sample before the first request, so the run's change of every counter is known;
            # a URL with userinfo authenticates itself (aiohttp refuses both at once)
            has_userinfo = "@" in opts.scrape_url.split("://", 1)[-1].split("/", 1)[0]
            scraper = Scraper(opts.scrape_url, interval_s=opts.scrape_interval_s, t0=t0 or perf(),
                              headers={} if has_userinfo else
                              {k: v for k, v in headers.items() if k == "Authorization"})
            await scraper.scrape_once(session)
        if t0 is None:
            t0 = perf()
        if scraper is not None:
            for sample in scraper.samples:                  # re-based on the run's start (≤ 0)
                sample["t_s"] = round(sample["t_s"] + scraper.t0 - t0, 6)
            scraper.t0 = t0
            scrape_task = asyncio.create_task(scraper.run(session))
        for c in conv_ids:
            for p in prompts:
                if p.conversation == c:
                    conv_done[(c, p.turn)] = asyncio.get_running_loop().create_future()
        offered = 0
        sleeper = DeadlineSleeper()
        try:
            for p in prompts:
                if stop.is_set():
                    break
                if not (p.conversation >= 0 and p.turn > 0):
                    delay = t0 + p.arrival_s - perf()
                    if delay > 0.2:
                        try:
                            await asyncio.wait_for(stop.wait(), delay)
                            break
                        except asyncio.TimeoutError:
                            pass
                    await sleeper.until(t0 + p.arrival_s)
                offered += 1
                task = asyncio.create_task(one(p, transport))
                inflight[task] = p
                task.add_done_callback(inflight.pop)
        finally:
            sleeper.close()          # the timerfd, also when the run is cancelled
        interrupted = stop.is_set()
        pending = set(inflight)
        if pending:
            if interrupted:
                _, pending = await asyncio.wait(pending, timeout=opts.drain_timeout_s)
            else:
                stop_waiter = asyncio.create_task(stop.wait())
                while pending and not stop.is_set():
                    done, pending = await asyncio.wait(pending | {stop_waiter},
                                                       return_when=asyncio.FIRST_COMPLETED)
                    pending.discard(stop_waiter)
                    done.discard(stop_waiter)
                stop_waiter.cancel()
                if pending:
                    interrupted = True
                    _, pending = await asyncio.wait(pending, timeout=opts.drain_timeout_s)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending)
        end = perf() - t0
        if isinstance(transport, RawPool):
            transport.close()
        if scraper is not None and scrape_task is not None:
            scraper.stop()
            try:
                await asyncio.wait_for(scrape_task, timeout=max(2.0, 2 * opts.scrape_interval_s))
            except asyncio.TimeoutError:
                pass
    finishes = [r.finish_s for r in records if r.finish_s is not None]
    duration = max(finishes) if finishes else end
    return LoadResult(
        records=records, timeseries=scraper.timeseries() if scraper else None,
        duration_s=duration, interrupted=interrupted, not_offered=len(prompts) - offered,
        extra={"sink_errors": sink_errors} if sink_errors else {},
    )

