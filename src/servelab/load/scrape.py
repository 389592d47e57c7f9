"""Scrape a server's Prometheus ``/metrics`` during a run into a time series.

The text exposition format is parsed with ``prometheus_client.parser.
text_string_to_metric_families`` (the reference parser), not with regular
expressions. Each scrape becomes one sample ``{"t_s": seconds from run start,
"values": {series: value}}`` where ``series`` is the sample name, with its labels
in Prometheus notation when it has any other than ``model_name``/``engine``
(``vllm:e2e_request_latency_seconds_bucket{le="0.5"}``). Histogram buckets are kept
only when ``keep_buckets`` is set; ``_sum`` and ``_count`` always are.

Names servelab knows (used by :func:`key_series`, the docs and the report):
- vLLM V1 (``vllm/v1/metrics/loggers.py``): ``vllm:num_requests_running``,
  ``vllm:num_requests_waiting``, ``vllm:kv_cache_usage_perc`` (older releases:
  ``vllm:gpu_cache_usage_perc``), ``vllm:prompt_tokens_total``,
  ``vllm:generation_tokens_total``, ``vllm:num_preemptions_total``, histograms
  ``vllm:time_to_first_token_seconds``, ``vllm:inter_token_latency_seconds`` (older:
  ``vllm:time_per_output_token_seconds``), ``vllm:e2e_request_latency_seconds``,
  ``vllm:request_queue_time_seconds``.
- llama.cpp server (``tools/server``, ``--metrics``): ``llamacpp:prompt_tokens_total``,
  ``llamacpp:tokens_predicted_total``, ``llamacpp:prompt_seconds_total``,
  ``llamacpp:tokens_predicted_seconds_total``, ``llamacpp:n_decode_total``,
  ``llamacpp:requests_processing``, ``llamacpp:requests_deferred``,
  ``llamacpp:prompt_tokens_seconds``, ``llamacpp:predicted_tokens_seconds``,
  ``llamacpp:kv_cache_usage_ratio`` (older builds).
- SGLang: ``sglang:num_running_reqs``, ``sglang:num_queue_reqs``, ``sglang:token_usage``.

:func:`server_series` turns the samples into the ``server`` section of a run's time
series (``servelab.metrics.run_timeseries``): the gauges as sampled, each counter as
its rate over the interval ending at a sample (Δvalue / Δt; None at the first sample
and where the counter went down, i.e. the server restarted), and each latency
histogram as the mean of the observations that fell in the interval
(Δ``_sum`` / Δ``_count``; None when none did).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["parse_metrics", "Scraper", "KEY_SERIES", "key_series", "server_series"]

_IGNORED_LABELS = frozenset({"model_name", "engine"})

# Concept → names in the servers we know, first match wins.
KEY_SERIES: dict[str, tuple[str, ...]] = {
    "running": ("vllm:num_requests_running", "llamacpp:requests_processing", "sglang:num_running_reqs"),
    "waiting": ("vllm:num_requests_waiting", "llamacpp:requests_deferred", "sglang:num_queue_reqs"),
    "kv_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc",
                 "llamacpp:kv_cache_usage_ratio", "sglang:token_usage"),
    "prompt_tokens_total": ("vllm:prompt_tokens_total", "llamacpp:prompt_tokens_total",
                            "sglang:prompt_tokens_total"),
    "generation_tokens_total": ("vllm:generation_tokens_total", "llamacpp:tokens_predicted_total",
                                "sglang:generation_tokens_total"),
    "preemptions_total": ("vllm:num_preemptions_total",),
}
_GAUGES = ("running", "waiting", "kv_usage")
_COUNTERS = {"prompt_tokens_total": "prompt_tokens_per_s", "generation_tokens_total": "generation_tokens_per_s",
             "preemptions_total": "preemptions_per_s"}
# Latency histograms (vLLM names) → series of the interval's mean observation.
_HISTOGRAMS: dict[str, tuple[str, ...]] = {
    "server_ttft_mean_s": ("vllm:time_to_first_token_seconds",),
    "server_itl_mean_s": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
    "server_e2e_mean_s": ("vllm:e2e_request_latency_seconds",),
    "server_queue_mean_s": ("vllm:request_queue_time_seconds",),
}


def _series_name(name: str, labels: dict[str, str]) -> str:
    kept = {k: v for k, v in labels.items() if k not in _IGNORED_LABELS}
    if not kept:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(kept.items()))
    return f"{name}{{{inner}}}"


def parse_metrics(text: str, *, keep_buckets: bool = False) -> dict[str, float]:
    """Every sample of a Prometheus text exposition as ``{series: value}``.

    Samples of the same series that differ only in ignored labels are summed
    (e.g. several ``model_name`` values)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not keep_buckets and s.name.endswith("_bucket"):
                continue
            if s.name.endswith("_created"):
                continue
            key = _series_name(s.name, s.labels)
            out[key] = out.get(key, 0.0) + float(s.value)
    return out


def key_series(values: dict[str, float]) -> dict[str, float]:
    """The concepts of :data:`KEY_SERIES` found in one sample."""
    found: dict[str, float] = {}
    for concept, names in KEY_SERIES.items():
        for n in names:
            if n in values:
                found[concept] = values[n]
                break
    return found


class Scraper:
    """Polls ``url`` every ``interval_s`` until stopped; errors are counted, not raised."""

    def __init__(self, url: str, *, interval_s: float, t0: float, keep_buckets: bool = False,
                 headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.interval_s = interval_s
        self.t0 = t0
        self.keep_buckets = keep_buckets
        self.headers = headers or {}
        self.samples: list[dict[str, Any]] = []
        self.errors = 0
        self.last_error = ""
        self._stop = asyncio.Event()

    async def scrape_once(self, session: aiohttp.ClientSession) -> None:
        t = time.perf_counter() - self.t0
        try:
            timeout = aiohttp.ClientTimeout(total=max(1.0, self.interval_s * 2))
            async with session.get(self.url, headers=self.headers, timeout=timeout) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
                text = await resp.text()
            values = parse_metrics(text, keep_buckets=self.keep_buckets)
            self.samples.append({"t_s": round(t, 6), "values": values})
        except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError, ValueError) as e:
            self.errors += 1
            self.last_error = f"{type(e).__name__}: {e}"

    async def run(self, session: aiohttp.ClientSession) -> None:
        while not self._stop.is_set():
            await self.scrape_once(session)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)
            except asyncio.TimeoutError:
                pass
        await self.scrape_once(session)      # one final sample after the run

    def stop(self) -> None:
        self._stop.set()

    def timeseries(self) -> dict[str, Any]:
        return {
            "source": self.url, "interval_s": self.interval_s, "errors": self.errors,
            "last_error": self.last_error, "samples": self.samples,
        }


def server_series(scraped: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``server`` section (module docstring) from :meth:`Scraper.timeseries`'s
    output; None when nothing was scraped or no known series was found."""
    samples = (scraped or {}).get("samples") or []
    if not samples:
        return None
    t = [float(s["t_s"]) for s in samples]
    keyed = [key_series(s["values"]) for s in samples]
    series: dict[str, list[float | None]] = {}
    for g in _GAUGES:
        if any(g in k for k in keyed):
            series[g] = [k.get(g) for k in keyed]

    def rate(vals: list[float | None]) -> list[float | None]:
        out: list[float | None] = [None]
        for i in range(1, len(vals)):
            a, b, dt = vals[i - 1], vals[i], t[i] - t[i - 1]
            out.append((b - a) / dt if a is not None and b is not None and dt > 0 and b >= a else None)
        return out

    for c, name in _COUNTERS.items():
        if any(c in k for k in keyed):
            series[name] = rate([k.get(c) for k in keyed])
    for name, bases in _HISTOGRAMS.items():
        base = next((b for b in bases if any(f"{b}_count" in s["values"] for s in samples)), None)
        if base is None:
            continue
        sums = [s["values"].get(f"{base}_sum") for s in samples]
        counts = [s["values"].get(f"{base}_count") for s in samples]
        means: list[float | None] = [None]
        for i in range(1, len(samples)):
            ds = None if sums[i] is None or sums[i - 1] is None else sums[i] - sums[i - 1]
            dc = None if counts[i] is None or counts[i - 1] is None else counts[i] - counts[i - 1]
            means.append(ds / dc if ds is not None and dc and dc > 0 and ds >= 0 else None)
        series[name] = means
    if not series:
        return None
    from ..metrics import server_section
    return server_section(str(scraped.get("source", "")), t, series)
