"""Metrics from request records — the one place any metric is defined (docs/metrics.md).

Definitions match ``vllm bench serve`` (vllm/benchmarks/serve.py,
``calculate_metrics``) where vLLM defines the metric:

- TTFT = first_token − arrival; E2E (vLLM's E2EL) = finish − arrival.
- TPOT = (E2E − TTFT)/(out − 1), only for requests with out > 1 (excludes the
  first token); for goodput a request with out ≤ 1 has TPOT 0, as in vLLM.
- ITL = gaps between consecutive token times, pooled over all ok requests (a
  request without token times contributes out − 1 gaps equal to its TPOT).
- Percentiles: numpy linear interpolation (``np.percentile``); std: population.
- Goodput = good requests / duration; a request is good if it finished ok and each
  given per-request threshold (ttft, tpot, e2e, …) is met (vLLM ``--goodput``).
- Latency metrics use only status "ok" requests; every offered request counts in
  ``delivery`` = completed / offered and ``slo_attainment`` = good / offered.
- Throughputs divide by ``duration_s`` (given, else first arrival → last finish).

Also here: queueing delay (start − arrival), dispatch lateness (dispatch −
arrival, the load client falling behind its schedule), prefix-cache hit rate
(Σ cached / Σ input tokens over requests that reached a replica), bootstrap
confidence intervals over requests, and time series for plots.
Units: seconds, tokens, requests; rates per second.
"""

from __future__ import annotations

from ._columns import LATENCY_BASES, STATUS_CODES, Columns, columns, columns_from_arrays
from .bootstrap import bootstrap_ci, bootstrap_distribution
from .proportion import newcombe_diff_interval, wilson_interval
from .summary import DEFAULT_PERCENTILES, metric_names, metric_value, summarize
from .timeseries import TIMESERIES_FORMAT, default_bucket_s, run_timeseries, server_section, timeseries_from_records

__all__ = [
    "summarize", "metric_value", "metric_names", "bootstrap_ci", "bootstrap_distribution",
    "timeseries_from_records", "run_timeseries", "server_section", "default_bucket_s", "TIMESERIES_FORMAT",
    "columns", "columns_from_arrays", "STATUS_CODES", "Columns", "DEFAULT_PERCENTILES", "LATENCY_BASES",
    "wilson_interval", "newcombe_diff_interval",
]
