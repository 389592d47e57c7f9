"""The values of ``servelab bench``'s options that ``BenchSpec`` does not check itself.

vLLM's ``--goodput`` is argparse ``nargs='+'``: ``--goodput ttft:200 tpot:20``.
:func:`expand_multi_value_flags` rewrites such an argument list so that each
``metric:value`` term gets its own flag (``--goodput ttft:200 --goodput tpot:20``), which
a repeatable option reads. The parsers read header flags (``Name: value``), the extra
request body (a JSON object), percentile lists and the metrics shown; the checks name the
bad value and what is valid (``ConfigError``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from .._limits import check_number, check_request_count
from .._scrub import scrub_text
from ..errors import ConfigError

__all__ = ["expand_multi_value_flags", "parse_headers", "parse_extra_body", "parse_percentiles", "shown_metrics",
           "check_endpoint_path", "check_rates", "rate_tag", "failure_over", "bench_spec"]

_GOODPUT_TERM = ("ttft:", "tpot:", "itl:", "e2el:", "e2e:")


def expand_multi_value_flags(args: list[str]) -> list[str]:
    """``--goodput ttft:200 tpot:20`` (argparse ``nargs='+'``, as vLLM spells it) →
    ``--goodput ttft:200 --goodput tpot:20``: the terms after ``--goodput`` that look
    like ``metric:value`` are each given their own flag."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        out.append(a)
        if a == "--goodput" and i + 1 < len(args):
            out.append(args[i + 1])
            i += 2
            while i < len(args) and args[i].lower().startswith(_GOODPUT_TERM):
                out += ["--goodput", args[i]]
                i += 1
            continue
        i += 1
    return out


def parse_headers(items: list[str]) -> tuple[tuple[str, str], ...]:
    """``["Name: value", …]`` → ``(("Name", "value"), …)``; ``ConfigError`` for an item
    without a name and a colon (naming only the part before it: a value may be a secret)."""
    out = []
    for h in items:
        k, sep, v = h.partition(":")
        if not sep or not k.strip():
            raise ConfigError(f"bad --header {h.split(':')[0]!r}…; expected 'Name: value'")
        out.append((k.strip(), v.strip()))
    return tuple(out)


def parse_extra_body(text: str) -> dict[str, Any]:
    """``--extra-body``: a JSON object merged into every request body ("" → ``{}``)."""
    try:
        body = json.loads(text) if text else {}
    except ValueError as e:
        raise ConfigError(f"--extra-body is not valid JSON ({e}); expected a JSON object such as "
                          "'{\"temperature\": 0}'") from None
    if not isinstance(body, dict):
        raise ConfigError("--extra-body must be a JSON object such as '{\"temperature\": 0}'")
    return body


def parse_percentiles(text: str, flag: str = "--metric-percentiles") -> tuple[float, ...]:
    """``"50,90,99"`` → ``(50.0, 90.0, 99.0)``."""
    out = []
    for x in text.split(","):
        if x.strip():
            try:
                out.append(float(x))
            except ValueError:
                raise ConfigError(f"{flag}: {x.strip()!r} is not a number") from None
    return tuple(out)


_METRIC_ALIASES = {"e2el": "e2e"}


def shown_metrics(text: str) -> list[str]:
    """``--percentile-metrics``: ``"ttft,tpot,e2el"`` → ``["ttft", "tpot", "e2e"]`` (vLLM's ``e2el`` is ``e2e``)."""
    return [_METRIC_ALIASES.get(m.strip(), m.strip()) for m in text.split(",") if m.strip()]


def check_endpoint_path(endpoint: str) -> None:
    """``--endpoint`` must be a path such as ``/v1/completions`` (no spaces, no query)."""
    if not endpoint.startswith("/") or any(c.isspace() for c in endpoint) or "?" in endpoint:
        raise ConfigError(f"--endpoint {scrub_text(endpoint)!r} must be a path such as /v1/completions "
                          "or /v1/chat/completions")


def check_rates(spec: Any, rates: Sequence[float]) -> None:
    """The request count of every rate after the first (which ``BenchSpec`` checked) for
    a ``--duration`` run is within this machine's bounds (``_limits``)."""
    for r in rates[1:]:
        if spec.num_prompts is None and spec.duration_s and math.isfinite(r):
            check_request_count(r * spec.duration_s, f"--request-rate {r:g} for --duration {spec.duration_s:g}")


def rate_tag(rate: float) -> str:
    """``inf`` or the rate as ``%g``: names a rate's run folder and table."""
    return "inf" if math.isinf(rate) else f"{rate:g}"


def failure_over(summary: dict[str, Any], label: str, max_failure_rate: float) -> str | None:
    """Why a run's share of not-ok requests exceeds ``--max-failure-rate`` (with the most
    common status and reason), or None when it does not."""
    fails = summary.get("failures") or {}
    if not fails.get("share", 0.0) > max_failure_rate:
        return None
    top = (fails.get("by_reason") or [{}])[0]
    return (f"{label}: {fails['count']} of {summary.get('offered', 0)} requests not ok "
            f"({fails['share']:.1%} > --max-failure-rate {max_failure_rate:g}); most common: "
            f"{top.get('count')}× {top.get('status')} — {top.get('reason')}")


def bench_spec(*, base_url: str, endpoint: str = "/v1/completions", model: str = "", api_key: str | None = None,
               header: Sequence[str] = (), extra_body: str = "", ignore_eos: bool = False,
               min_tokens: int | None = None, request_rate: str = "inf", timeout: float = 600.0,
               http_client: str = "raw", ready_timeout: float = 10.0, max_failure_rate: float = 0.0,
               metrics_url: str | None = None, metric_percentiles: str = "50,90,95,99",
               num_prompts: int | None = None, duration: float | None = None, dataset: str | Path | None = None,
               trace: str | Path | None = None, goodput: Sequence[str] = (), scrape_interval: float = 1.0,
               drain_timeout: float = 5.0, on_note: Callable[[str], None] | None = None,
               **fields: Any) -> tuple[Any, list[float]]:
    """The ``load.bench.BenchSpec`` (at the first rate) and the rates of ``servelab bench``'s
    options, in the command's spellings; ``fields`` are ``BenchSpec`` fields of the same
    name (burstiness, arrival, random lengths, workload, seed, workers …). Checks in the
    order the options are read, each ``ConfigError`` naming the bad value; a note about
    the base URL (a ``/v1`` suffix dropped) goes to ``on_note``. The API key defaults to
    ``$OPENAI_API_KEY``; without ``num_prompts`` and ``duration``, 1000 requests (vLLM's default)."""
    from .arrivals import parse_rates
    from .bench import BenchSpec
    from .endpoint import EndpointConfig
    from .urls import parse_base_url, parse_metrics_url

    rates = parse_rates(request_rate)
    check_number("--timeout", timeout, lo=0, lo_open=True, hi=30 * 86400)
    check_number("--ready-timeout", ready_timeout, lo=0, hi=86400)
    check_number("--max-failure-rate", max_failure_rate, lo=0, hi=1)
    if http_client not in ("raw", "aiohttp"):
        raise ConfigError(f"unknown --http-client {http_client!r}; known: raw, aiohttp")
    check_endpoint_path(endpoint)
    base = parse_base_url(base_url, endpoint=endpoint)
    if base.note and on_note is not None:
        on_note(base.note)
    if metrics_url is not None:
        parse_metrics_url(metrics_url)
    body = parse_extra_body(extra_body)
    key = api_key or os.environ.get("OPENAI_API_KEY") or None
    pcts = parse_percentiles(metric_percentiles)
    ep = EndpointConfig(base_url=base.url, endpoint=endpoint, model=model,
                        api_key=key, headers=parse_headers(list(header)), extra_body=body,
                        ignore_eos=ignore_eos, min_tokens=min_tokens, request_timeout_s=timeout,
                        http_client=http_client)
    spec = BenchSpec(
        endpoint=ep, request_rate=rates[0],
        num_prompts=num_prompts if num_prompts is not None else (None if duration else 1000),
        duration_s=duration, dataset=str(dataset) if dataset else None, trace=str(trace) if trace else None,
        percentiles=pcts, goodput=" ".join(goodput) or None, scrape_interval_s=scrape_interval,
        metrics_url=metrics_url, drain_timeout_s=drain_timeout, **fields)
    check_rates(spec, rates)
    return spec, rates
