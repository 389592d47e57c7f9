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
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["parse_metrics", "Scraper", "KEY_SERIES", "key_series"]

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
