"""Metrics from request records — the one place any metric is defined (see docs/metrics.md).

Definitions (matching ``vllm bench serve`` where it defines the metric):
TTFT = first_token − arrival; E2E = finish − arrival; TPOT = (E2E − TTFT)/(out − 1)
for out > 1; ITL = gaps between consecutive token times; queue = start − arrival.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from .records import RequestRecord

__all__ = ["summarize", "DEFAULT_PERCENTILES"]

DEFAULT_PERCENTILES: tuple[float, ...] = (50, 90, 95, 99)


def summarize(
    records: Iterable[RequestRecord],
    *,
    duration_s: float | None = None,
    slo: Any = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
) -> dict[str, Any]:
    """Summary dict with keys ``offered``, ``completed``, ``rejected``, ``failed``, ...,
    ``ttft_s``/``tpot_s``/``itl_s``/``e2e_s``/``queue_s`` (each {"mean", "p50", ...}),
    ``request_throughput_rps``, ``throughput_tokens_per_s`` (output),
    ``total_input_tokens``, ``total_output_tokens``, ``goodput_rps``, ``slo_attainment``,
    ``delivery``."""
    raise NotImplementedError
