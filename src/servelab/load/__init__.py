"""Load client for OpenAI-compatible endpoints (see docs/load.md).

Modules: ``client`` (one streamed request → one record), ``sse`` (event-stream
parser), ``arrivals`` (schedules, traces), ``datasets`` (prompts), ``runner`` (the
open-loop dispatcher), ``workers`` (dispatch over processes), ``scrape``
(Prometheus ``/metrics`` time series), ``bench`` (a run end to end), ``bench_args``
(the ``servelab bench`` options as a ``BenchSpec``), ``sweep`` (the rate sweep),
``results`` (run files), ``importers`` (vLLM / guidellm results), ``vllm_result`` (vLLM's
result file), ``fakeserver`` (a scripted server for tests and benchmarks).
"""

from __future__ import annotations

from .arrivals import arrival_times, load_trace, parse_rates
from .bench import BenchOutcome, BenchSpec, make_prompts, run_bench
from .client import EndpointConfig, Prompt, send_request
from .importers import import_result
from .runner import LoadResult, RunOptions, run_load
from .scrape import Scraper, parse_metrics
from .sse import SSEParser

__all__ = [
    "EndpointConfig", "Prompt", "send_request", "SSEParser", "arrival_times", "load_trace",
    "parse_rates", "RunOptions", "LoadResult", "run_load", "BenchSpec", "BenchOutcome",
    "make_prompts", "run_bench", "Scraper", "parse_metrics", "import_result",
]
