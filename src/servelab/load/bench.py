"""One benchmark run, end to end: prompts → load → records → summary → files.

``BenchSpec`` holds what ``servelab bench`` parses (flag names follow
``vllm bench serve``); :func:`make_prompts` builds the offered requests for a rate;
:func:`run_bench` runs them (in one process, or spread over ``workers`` processes),
streams records to ``records.jsonl``, summarizes with ``servelab.metrics.summarize``
and writes the run directory. The summary adds to ``summarize``'s keys:
``request_rate``, ``token_count_source`` (how many records counted tokens from
``usage`` vs. chunks), ``not_offered``, ``interrupted`` and ``server_metrics`` (peaks
of the scraped gauges, and the change of the server's counters over the run —
:func:`server_metrics_summary`).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from .._files import atomic_write_text, check_output_dir
from .._limits import check_number, check_request_count
from .._scrub import scrub
from ..errors import ConfigError
from ..records import RequestRecord, RunMeta
from .arrivals import ARRIVAL_KINDS, arrival_times, load_trace
from .client import EndpointConfig, Prompt
from .datasets import (load_jsonl_prompts, load_sharegpt_prompts, prompts_from_specs, synthetic_prompts,
                       synthetic_text)
from ._loop import loop_name
from ._loop import run as run_loop
from .results import DISPATCH_JOURNAL, DispatchJournal, RecordSink, host_versions, now_iso, write_run_files
from .runner import LoadResult, RunOptions, run_load
from .scrape import key_series, server_series

__all__ = ["BenchSpec", "BenchOutcome", "make_prompts", "run_bench", "summarize_load", "run_timeseries_doc",
           "failure_summary", "orphan_records"]

DATASET_FORMATS = ("random", "jsonl", "sharegpt")
DATASET_ALIASES = {"custom": "jsonl"}      # vLLM's --dataset-name for a JSONL prompts file
_CHUNKS_RE = re.compile(r"\b\d+ chunks\b")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
FAILED_STATUSES = ("failed", "timed_out", "rejected")   # not "cancelled": the run was stopped


@dataclass(frozen=True, kw_only=True)
class BenchSpec:
    endpoint: EndpointConfig
    request_rate: float = math.inf
    burstiness: float = 1.0
    arrival: str = "poisson"           # constant | poisson | gamma (gamma implied by burstiness != 1)
    max_concurrency: int | None = None
    num_prompts: int | None = 1000     # vLLM's default
    duration_s: float | None = None
    random_input_len: int = 1024       # vLLM's defaults for --dataset-name random
    random_output_len: int = 128
    random_range_ratio: float = 0.0
    random_prefix_len: int = 0
    num_prefix_groups: int = 1
    workload: str | None = None
    dataset: str | None = None
    dataset_format: str = "random"
    trace: str | None = None
    seed: int = 0
    percentiles: tuple[float, ...] = (50, 90, 95, 99)
    goodput: str | None = None
    scrape_interval_s: float = 1.0     # 0 disables scraping
    metrics_url: str | None = None     # default: base_url + /metrics
    workers: int = 1
    drain_timeout_s: float = 5.0
    think_time_s: float = 0.0

    def __post_init__(self) -> None:
        _check_spec(self)

    def config_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "endpoint"}
        d["request_rate"] = "inf" if math.isinf(self.request_rate) else self.request_rate
        d["endpoint"] = self.endpoint.redacted()
        return scrub(d)


_MAX_TOKENS_PER_REQUEST = 10_000_000    # beyond any model's context window
_MAX_SECONDS = 30 * 86400                # a month: longer is a typo


def _check_spec(spec: BenchSpec) -> None:
    """Every bound of a BenchSpec, checked before any prompt is built (ConfigError)."""
    c = check_number
    c("--request-rate", spec.request_rate, lo=0, lo_open=True, allow_inf=True)
    c("--burstiness", spec.burstiness, lo=0, lo_open=True, hi=1e6)
    if spec.arrival not in ARRIVAL_KINDS:
        raise ConfigError(f"unknown --arrival {spec.arrival!r}; known: {', '.join(ARRIVAL_KINDS)}")
    if spec.max_concurrency is not None:
        c("--max-concurrency", spec.max_concurrency, lo=1, hi=1_000_000, integer=True)
    if spec.num_prompts is not None:
        c("--num-prompts", spec.num_prompts, lo=1, integer=True)
        check_request_count(spec.num_prompts, f"--num-prompts {spec.num_prompts}")
    if spec.duration_s is not None:
        c("--duration", spec.duration_s, lo=0, lo_open=True, hi=_MAX_SECONDS)
        if spec.num_prompts is None and math.isfinite(spec.request_rate):
            check_request_count(spec.request_rate * spec.duration_s,
                                f"--request-rate {spec.request_rate:g} for --duration {spec.duration_s:g}")
    c("--random-input-len", spec.random_input_len, lo=1, hi=_MAX_TOKENS_PER_REQUEST, integer=True)
    c("--random-output-len", spec.random_output_len, lo=1, hi=_MAX_TOKENS_PER_REQUEST, integer=True)
    c("--random-range-ratio", spec.random_range_ratio, lo=0, hi=0.999999)
    c("--random-prefix-len", spec.random_prefix_len, lo=0, hi=_MAX_TOKENS_PER_REQUEST, integer=True)
    c("--num-prefix-groups", spec.num_prefix_groups, lo=1, hi=1_000_000, integer=True)
    c("--seed", spec.seed, lo=0, hi=2**63 - 1, integer=True)
    for q in spec.percentiles:
        c("--metric-percentiles", q, lo=0, hi=100)
    c("--scrape-interval", spec.scrape_interval_s, lo=0, hi=3600)
    if 0 < spec.scrape_interval_s < 0.01:
        raise ConfigError(f"--scrape-interval must be 0 (off) or >= 0.01 s, got {spec.scrape_interval_s!r}")
    c("--workers", spec.workers, lo=1, hi=max(1, 4 * (os.cpu_count() or 1)), integer=True)
    c("--drain-timeout", spec.drain_timeout_s, lo=0, hi=_MAX_SECONDS)
    c("think time", spec.think_time_s, lo=0, hi=_MAX_SECONDS)
    if DATASET_ALIASES.get(spec.dataset_format, spec.dataset_format) not in DATASET_FORMATS:
        raise ConfigError(f"unknown --dataset-format {spec.dataset_format!r}; known: "
                          f"{', '.join(DATASET_FORMATS + tuple(DATASET_ALIASES))}")


@dataclass(kw_only=True)
class BenchOutcome:
    meta: RunMeta
    records: list[RequestRecord]
    summary: dict[str, Any]
    timeseries: dict[str, Any] | None
    out_dir: Path | None = None
    write_error: str | None = None     # what could not be written (the run folder is marked incomplete)


def make_prompts(spec: BenchSpec, rate: float) -> list[Prompt]:
    """The requests to offer at ``rate`` (req/s, inf allowed) for this spec."""
    kind = spec.arrival if spec.burstiness == 1.0 else "gamma"
    if spec.trace:
        entries = load_trace(spec.trace)
        if spec.num_prompts:
            entries = entries[:spec.num_prompts]
        import numpy as np
        rng = np.random.default_rng(spec.seed)
        return [Prompt(id=f"r{i}", arrival_s=e.arrival_s,
                       input_tokens=e.input_tokens or spec.random_input_len,
                       output_tokens=e.output_tokens or spec.random_output_len,
                       prompt=e.prompt or synthetic_text(rng, e.input_tokens or spec.random_input_len))
                for i, e in enumerate(entries)]
    if spec.workload:
        from ..catalog.workloads import generate_requests, get_workload
        wl = get_workload(spec.workload)
        specs = generate_requests(
            wl, rate_rps=None if math.isinf(rate) else rate, duration_s=spec.duration_s,
            num_requests=spec.num_prompts, seed=spec.seed)
        if math.isinf(rate):
            specs = [replace(s, arrival_s=0.0) if s.turn == 0 else s for s in specs]
        return prompts_from_specs(specs, seed=spec.seed)
    times = arrival_times(kind=kind, rate_rps=rate, num_requests=spec.num_prompts,
                          duration_s=spec.duration_s, burstiness=spec.burstiness, seed=spec.seed)
    fmt = DATASET_ALIASES.get(spec.dataset_format, spec.dataset_format)
    if fmt not in DATASET_FORMATS:
        raise ConfigError(f"unknown dataset format {fmt!r}; known: {', '.join(DATASET_FORMATS)} "
                          f"(vLLM's 'custom' = jsonl)")
    if spec.dataset and fmt == "random":
        fmt = "sharegpt" if spec.dataset.endswith(".json") else "jsonl"
    if fmt == "jsonl":
        if not spec.dataset:
            raise ConfigError("--dataset-format jsonl needs --dataset PATH")
        return load_jsonl_prompts(spec.dataset, times, default_output=spec.random_output_len)
    if fmt == "sharegpt":
        if not spec.dataset:
            raise ConfigError("--dataset-format sharegpt needs --dataset PATH")
        return load_sharegpt_prompts(spec.dataset, times, seed=spec.seed)
    return synthetic_prompts(times, input_len=spec.random_input_len, output_len=spec.random_output_len,
                             range_ratio=spec.random_range_ratio, prefix_len=spec.random_prefix_len,
                             num_prefix_groups=spec.num_prefix_groups, seed=spec.seed)


def _reason_kind(reason: str) -> str:
    """A failure reason with its per-request numbers (chunk counts) folded, for grouping."""
    return _CHUNKS_RE.sub("N chunks", reason or "")[:300]


def failure_summary(records: list[RequestRecord]) -> dict[str, Any]:
    """Failed, timed-out and rejected requests grouped by (status, reason), most common
    first: ``{"count", "share" (of records), "by_reason": [{"status", "reason", "count"}]}``."""
    groups: dict[tuple[str, str], int] = {}
    for r in records:
        if r.status in FAILED_STATUSES:
            k = (r.status, _reason_kind(r.reason))
            groups[k] = groups.get(k, 0) + 1
    n = sum(groups.values())
    return {"count": n, "share": n / len(records) if records else 0.0,
            "by_reason": [{"status": st, "reason": why, "count": c}
                          for (st, why), c in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))]}


def summarize_load(records: list[RequestRecord], result: LoadResult | None, *, rate: float,
                   spec: BenchSpec, duration_s: float) -> dict[str, Any]:
    from ..metrics import summarize

    s = summarize(records, duration_s=duration_s, percentiles=spec.percentiles, goodput=spec.goodput)
    s["request_rate"] = "inf" if math.isinf(rate) else rate
    src: dict[str, int] = {}
    for r in records:
        k = r.extra.get("token_count_source")
        if k:
            src[k] = src.get(k, 0) + 1
    s["token_count_source"] = src
    s["failures"] = failure_summary(records)
    if result is not None:
        s["not_offered"] = result.not_offered
        s["interrupted"] = result.interrupted
        ts = result.timeseries
        if ts and ts.get("samples"):
            s["server_metrics"] = server_metrics_summary(ts)
    return s


def server_metrics_summary(scraped: dict[str, Any]) -> dict[str, Any]:
    """The scraped series summed up for the run: ``max`` of the gauges (running,
    waiting, KV usage) and ``change`` of the counters (prompt and generation tokens,
    preemptions) between the first and the last sample — the run's own share, not the
    server's totals since it started. A counter that went down (server restart) has
    no change (None). ``mean_s``: the mean of the observations the server's latency
    histograms received during the run (Δsum / Δcount), per latency base — the
    server's own view of TTFT, ITL, E2E and queueing, to set beside the client's."""
    samples = scraped.get("samples") or []
    keyed = [key_series(x["values"]) for x in samples]
    peaks: dict[str, float] = {}
    change: dict[str, float | None] = {}
    for k in keyed:
        for name, v in k.items():
            if not name.endswith("_total"):
                peaks[name] = max(peaks.get(name, -math.inf), v)
    for name in sorted({n for k in keyed for n in k if n.endswith("_total")}):
        vals = [k[name] for k in keyed if name in k]
        ok = all(b >= a for a, b in zip(vals, vals[1:]))
        change[name] = vals[-1] - vals[0] if ok and len(vals) > 1 else None
    means: dict[str, float] = {}
    for key, bases in SERVER_HISTOGRAMS.items():
        for base in bases:
            pts = [(x["values"].get(f"{base}_sum"), x["values"].get(f"{base}_count")) for x in samples]
            pts = [(a, b) for a, b in pts if a is not None and b is not None]
            if len(pts) >= 2 and pts[-1][1] > pts[0][1] and pts[-1][0] >= pts[0][0]:
                means[key] = (pts[-1][0] - pts[0][0]) / (pts[-1][1] - pts[0][1])
                break
    return {"samples": len(samples), "max": peaks, "change": change, "mean_s": means,
            "scrape_errors": scraped.get("errors", 0)}


# The server's own latency histograms (vLLM names), by the summary's latency base.
SERVER_HISTOGRAMS: dict[str, tuple[str, ...]] = {
    "ttft": ("vllm:time_to_first_token_seconds",),
    "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
    "tpot": ("vllm:request_time_per_output_token_seconds", "vllm:time_per_output_token_seconds"),
    "e2e": ("vllm:e2e_request_latency_seconds",),
    "queue": ("vllm:request_queue_time_seconds",),
}


def _scrape_url(spec: BenchSpec) -> str | None:
    if spec.scrape_interval_s <= 0:
        return None
    if spec.metrics_url:
        return spec.metrics_url
    # the endpoint URL without userinfo (the Authorization header carries it)
    return spec.endpoint.root_url + "/metrics"


def _options(spec: BenchSpec, rate: float, *, scrape: bool = True) -> RunOptions:
    return RunOptions(
        max_concurrency=spec.max_concurrency,
        closed_loop=math.isinf(rate) and spec.max_concurrency is not None,
        think_time_s=spec.think_time_s, drain_timeout_s=spec.drain_timeout_s,
        scrape_url=_scrape_url(spec) if scrape else None, scrape_interval_s=spec.scrape_interval_s or 1.0,
    )


async def _run_async(prompts: list[Prompt], spec: BenchSpec, rate: float,
                     on_record: Callable[[RequestRecord], None], stop: asyncio.Event | None,
                     on_dispatch: Callable[[Prompt, float], None] | None = None) -> LoadResult:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = False
    try:
        for sig in _STOP_SIGNALS:              # SIGTERM ends a run the way Ctrl-C does
            loop.add_signal_handler(sig, stop.set)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):
        pass                                   # not the main thread: caller stops via ``stop``
    try:
        if spec.workers > 1:
            from .workers import run_in_workers
            return await run_in_workers(prompts, spec.endpoint, _options(spec, rate), spec.workers,
                                        on_record=on_record, stop=stop, on_dispatch=on_dispatch)
        return await run_load(prompts, spec.endpoint, _options(spec, rate), on_record=on_record, stop=stop,
                              on_dispatch=on_dispatch)
    finally:
        if installed:
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)


def orphan_records(dispatched: dict[str, tuple[Prompt, float]],
                   records: list[RequestRecord]) -> list[RequestRecord]:
    """A ``cancelled`` record for each sent request that has none (its process died
    before it could write one); empty when every request was accounted for."""
    have = {r.id for r in records}
    out = []
    for rid, (p, t) in dispatched.items():
        if rid not in have:
            out.append(RequestRecord(
                id=rid, arrival_s=p.arrival_s, input_tokens=p.input_tokens, status="cancelled",
                reason="sent, but no response was recorded (the process serving it ended)",
                dispatch_s=t, priority=p.priority, adapter=p.adapter,
                extra={"requested_input_tokens": p.input_tokens, "requested_output_tokens": p.output_tokens}))
    return out


def run_bench(
    spec: BenchSpec,
    *,
    rate: float | None = None,
    out_dir: str | Path | None = None,
    on_record: Callable[[RequestRecord], None] | None = None,
    stop: asyncio.Event | None = None,
    prompts: list[Prompt] | None = None,
) -> BenchOutcome:
    """Run one rate of ``spec``; always returns (and writes) whatever was measured.

    With ``out_dir``, ``meta.json`` is written first with ``complete: false``, records
    stream to ``records.jsonl`` as they finish, and the folder is rewritten at the end
    (each file atomically) with ``complete: true`` only when the run ended normally and
    every file was written. When a write fails (a full disk), the records are still
    returned and ``BenchOutcome.write_error`` says what was not written.
    """
    rate = spec.request_rate if rate is None else rate
    prompts = prompts if prompts is not None else make_prompts(spec, rate)
    host, versions = host_versions()
    meta = RunMeta(run_id=uuid.uuid4().hex[:12], kind="bench", started_at=now_iso(),
                   config={**spec.config_dict(), "request_rate": "inf" if math.isinf(rate) else rate},
                   versions={**versions, "event_loop": loop_name()}, host=host)
    sink = None
    journal: DispatchJournal | None = None
    if out_dir:
        check_output_dir(out_dir, what="--out folder")
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        meta.notes = "running, or stopped before it could finish (a crash or SIGKILL)"
        atomic_write_text(Path(out_dir) / "meta.json", json.dumps(meta.to_dict(), indent=2, default=str) + "\n")
        sink = RecordSink(Path(out_dir) / "records.jsonl")
        journal = DispatchJournal(Path(out_dir) / DISPATCH_JOURNAL)

    def _on(rec: RequestRecord) -> None:
        try:
            if on_record is not None:
                on_record(rec)
        finally:
            if sink is not None:
                sink.write(rec)

    dispatched: dict[str, tuple[Prompt, float]] = {}

    def _dispatched(p: Prompt, t: float) -> None:
        dispatched[p.id] = (p, t)
        if journal is not None:
            journal.write(p, t)

    try:
        result = run_loop(_run_async(prompts, spec, rate, _on, stop, _dispatched))
    finally:
        for f in (sink, journal):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass                       # reported through the final write below
    for rec in orphan_records(dispatched, result.records):   # e.g. a worker process that died
        result.records.append(rec)
        try:
            _on(rec)
        except Exception as e:  # noqa: BLE001 - as for every record
            result.extra.setdefault("sink_errors", []).append(f"{type(e).__name__}: {e}")
    records = result.records
    meta.finished_at = now_iso()
    meta.duration_s = result.duration_s
    meta.complete = not result.interrupted
    meta.config["not_offered"] = result.not_offered
    notes = []
    if result.interrupted:
        notes.append("interrupted: dispatch stopped; in-flight requests past the drain timeout are 'cancelled'")
    if result.extra.get("worker_errors"):
        notes.append("worker errors: " + "; ".join(result.extra["worker_errors"]))
    if result.extra.get("sink_errors"):
        notes.append("records.jsonl could not be written as records finished: "
                     + "; ".join(result.extra["sink_errors"]))
    meta.notes = " · ".join(notes)
    summary = summarize_load(records, result, rate=rate, spec=spec, duration_s=result.duration_s)
    timeseries = run_timeseries_doc(records, result.timeseries)
    out = None
    write_error = None
    if out_dir:
        try:
            out = write_run_files(out_dir, meta, records, summary, timeseries)
            (Path(out_dir) / DISPATCH_JOURNAL).unlink(missing_ok=True)   # every request has its record
        except (OSError, ValueError) as e:
            write_error = f"{type(e).__name__}: {e}"
            meta.complete = False
            meta.notes = " · ".join(filter(None, [meta.notes, f"run folder not fully written: {write_error}"]))
            try:                               # mark the folder incomplete if anything can still be written
                atomic_write_text(Path(out_dir) / "meta.json",
                                  json.dumps(scrub(meta.to_dict()), indent=2, default=str) + "\n")
            except OSError:
                pass                           # the meta.json written at the start says complete: false
    return BenchOutcome(meta=meta, records=records, summary=summary, timeseries=timeseries,
                        out_dir=out, write_error=write_error)


def run_timeseries_doc(records: list[RequestRecord], scraped: dict[str, Any] | None) -> dict[str, Any]:
    """The run's ``timeseries.json``: ``metrics.run_timeseries`` with the scraped
    ``/metrics`` series as its ``server`` section, the raw samples kept beside it."""
    from ..metrics import run_timeseries
    return {**(scraped or {}), **run_timeseries(records, server=server_series(scraped))}
