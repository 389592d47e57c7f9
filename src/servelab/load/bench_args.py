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
from typing import Any, Sequence

from .._limits import check_request_count
from .._scrub import scrub_text
from ..errors import ConfigError

__all__ = ["expand_multi_value_flags", "parse_headers", "parse_extra_body", "parse_percentiles", "shown_metrics",
           "check_endpoint_path", "check_rates", "rate_tag", "failure_over"]

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
