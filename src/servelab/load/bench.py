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
import math
import signal
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..records import RequestRecord, RunMeta
from .arrivals import arrival_times, load_trace
from .client import EndpointConfig, Prompt
from .datasets import (load_jsonl_prompts, load_sharegpt_prompts, prompts_from_specs, synthetic_prompts,
                       synthetic_text)
from ._loop import loop_name
from ._loop import run as run_loop
from .results import RecordSink, host_versions, now_iso, write_run_files
from .runner import LoadResult, RunOptions, run_load
from .scrape import key_series, server_series

__all__ = ["BenchSpec", "BenchOutcome", "make_prompts", "run_bench", "summarize_load", "run_timeseries_doc"]

DATASET_FORMATS = ("random", "jsonl", "sharegpt")
DATASET_ALIASES = {"custom": "jsonl"}      # vLLM's --dataset-name for a JSONL prompts file


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

    def config_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "endpoint"}
        d["request_rate"] = "inf" if math.isinf(self.request_rate) else self.request_rate
        d["endpoint"] = self.endpoint.redacted()
        return d


@dataclass(kw_only=True)
class BenchOutcome:
    meta: RunMeta
    records: list[RequestRecord]
    summary: dict[str, Any]
    timeseries: dict[str, Any] | None
    out_dir: Path | None = None


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
    return spec.metrics_url or spec.endpoint.base_url.rstrip("/") + "/metrics"


def _options(spec: BenchSpec, rate: float, *, scrape: bool = True) -> RunOptions:
    return RunOptions(
        max_concurrency=spec.max_concurrency,
        closed_loop=math.isinf(rate) and spec.max_concurrency is not None,
        think_time_s=spec.think_time_s, drain_timeout_s=spec.drain_timeout_s,
        scrape_url=_scrape_url(spec) if scrape else None, scrape_interval_s=spec.scrape_interval_s or 1.0,
    )


async def _run_async(prompts: list[Prompt], spec: BenchSpec, rate: float,
                     on_record: Callable[[RequestRecord], None], stop: asyncio.Event | None) -> LoadResult:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = False
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):
        pass                                   # not the main thread: caller stops via ``stop``
    try:
        if spec.workers > 1:
            from .workers import run_in_workers
            return await run_in_workers(prompts, spec.endpoint, _options(spec, rate), spec.workers,
                                        on_record=on_record, stop=stop)
        return await run_load(prompts, spec.endpoint, _options(spec, rate), on_record=on_record, stop=stop)
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)


def run_bench(
    spec: BenchSpec,
    *,
    rate: float | None = None,
    out_dir: str | Path | None = None,
    on_record: Callable[[RequestRecord], None] | None = None,
    stop: asyncio.Event | None = None,
    prompts: list[Prompt] | None = None,
) -> BenchOutcome:
    """Run one rate of ``spec``; always returns (and writes) whatever was measured."""
    rate = spec.request_rate if rate is None else rate
    prompts = prompts if prompts is not None else make_prompts(spec, rate)
    host, versions = host_versions()
    meta = RunMeta(run_id=uuid.uuid4().hex[:12], kind="bench", started_at=now_iso(),
                   config={**spec.config_dict(), "request_rate": "inf" if math.isinf(rate) else rate},
                   versions={**versions, "event_loop": loop_name()}, host=host)
    sink = RecordSink(Path(out_dir) / "records.jsonl") if out_dir else None

    def _on(rec: RequestRecord) -> None:
        if sink is not None:
            sink.write(rec)
        if on_record is not None:
            on_record(rec)

    try:
        result = run_loop(_run_async(prompts, spec, rate, _on, stop))
    finally:
        if sink is not None:
            sink.close()
    records = result.records
    meta.finished_at = now_iso()
    meta.duration_s = result.duration_s
    meta.complete = not result.interrupted
    meta.config["not_offered"] = result.not_offered
    if result.interrupted:
        meta.notes = "interrupted: dispatch stopped; in-flight requests past the drain timeout are 'cancelled'"
    summary = summarize_load(records, result, rate=rate, spec=spec, duration_s=result.duration_s)
    timeseries = run_timeseries_doc(records, result.timeseries)
    out = None
    if out_dir:
        out = write_run_files(out_dir, meta, records, summary, timeseries)
    return BenchOutcome(meta=meta, records=records, summary=summary, timeseries=timeseries, out_dir=out)


def run_timeseries_doc(records: list[RequestRecord], scraped: dict[str, Any] | None) -> dict[str, Any]:
    """The run's ``timeseries.json``: ``metrics.run_timeseries`` with the scraped
    ``/metrics`` series as its ``server`` section, the raw samples kept beside it."""
    from ..metrics import run_timeseries
    return {**(scraped or {}), **run_timeseries(records, server=server_series(scraped))}
