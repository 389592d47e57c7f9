"""Arrival schedules: when each request is offered (seconds from the run's start).

Processes (semantics of ``vllm bench serve``, ``benchmarks/serve.py`` /
``vllm/benchmarks/serve.py`` ``get_request``):

- ``constant``: inter-arrival gap = 1/rate exactly;
- ``poisson``: gaps ~ Exponential(mean 1/rate);
- ``gamma``: gaps ~ Gamma(shape = burstiness, scale = 1/(rate·burstiness)), so the mean
  gap is 1/rate whatever the burstiness; burstiness = 1 is Poisson, < 1 burstier,
  > 1 more regular; coefficient of variation = 1/sqrt(burstiness).
- ``rate = inf``: every request is offered at t = 0 (with ``max_concurrency`` this is a
  closed loop: the next request goes as soon as a slot frees).

vLLM draws the first gap before the first request too; here the first request is
offered at t = 0 and the next after one gap (the schedule's mean rate is the same;
the run's offered window begins with a request). A trace file replays recorded
times: JSONL with one object per line carrying ``timestamp`` (seconds, or
milliseconds when the key is ``timestamp_ms``), shifted so the first is 0, plus
optional ``input_tokens``/``output_tokens``/``prompt`` fields.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._limits import check_number, check_request_count
from ..errors import ConfigError

__all__ = ["ARRIVAL_KINDS", "arrival_times", "parse_rates", "TraceEntry", "load_trace"]

ARRIVAL_KINDS = ("constant", "poisson", "gamma")


def arrival_times(
    *,
    kind: str = "poisson",
    rate_rps: float,
    num_requests: int | None = None,
    duration_s: float | None = None,
    burstiness: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Offered times (seconds, ascending, first = 0) until ``num_requests`` or ``duration_s``."""
    if kind not in ARRIVAL_KINDS:
        raise ConfigError(f"unknown arrival process {kind!r}; known: {', '.join(ARRIVAL_KINDS)}")
    if num_requests is None and duration_s is None:
        raise ConfigError("arrival schedule needs num_requests or duration_s")
    if not rate_rps > 0:
        raise ConfigError(f"request rate must be > 0 (or inf); got {rate_rps!r}")
    if burstiness <= 0:
        raise ConfigError(f"burstiness must be > 0; got {burstiness!r}")
    if num_requests is not None:
        check_number("number of requests", num_requests, lo=0, integer=True)
        check_request_count(num_requests, f"--num-prompts {num_requests}")
    if duration_s is not None:
        check_number("duration (s)", duration_s, lo=0, lo_open=True)
    if math.isinf(rate_rps):
        if num_requests is None:
            raise ConfigError("rate inf needs --num-prompts (a duration alone offers infinitely many)")
        return np.zeros(num_requests)
    if duration_s is not None and num_requests is None:
        check_request_count(rate_rps * duration_s, f"rate {rate_rps:g} req/s for {duration_s:g} s")
    cap = num_requests if num_requests is not None else int(rate_rps * duration_s * 1.5 + 50)
    rng = np.random.default_rng(seed)
    mean_gap = 1.0 / rate_rps
    while True:
        if kind == "constant":
            gaps = np.full(cap, mean_gap)
        elif kind == "poisson" or burstiness == 1.0 and kind == "gamma":
            gaps = rng.exponential(mean_gap, cap)
        else:
            gaps = rng.gamma(burstiness, mean_gap / burstiness, cap)
        times = np.concatenate(([0.0], np.cumsum(gaps[:-1])))
        if duration_s is None:
            return times
        inside = times[times < duration_s]
        if len(inside) < len(times) or num_requests is not None:
            return inside if num_requests is None else inside[:num_requests]
        cap *= 2                      # the window was not covered: draw a longer schedule
        rng = np.random.default_rng(seed)


def parse_rates(text: str) -> list[float]:
    """``"1,2,4,inf"`` → [1.0, 2.0, 4.0, inf]; ConfigError names a bad term."""
    rates: list[float] = []
    for term in str(text).split(","):
        term = term.strip().lower()
        if not term:
            continue
        try:
            r = float(term)
        except ValueError:
            raise ConfigError(f"bad request rate {term!r}; expected a number or 'inf', e.g. 1,2,4,inf") from None
        if not r > 0:
            raise ConfigError(f"request rate must be > 0; got {term!r}")
        if math.isnan(r):
            raise ConfigError(f"bad request rate {term!r}; expected a number or 'inf'")
        rates.append(r)
    if not rates:
        raise ConfigError(f"no request rate in {text!r}")
    return rates


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceEntry:
    arrival_s: float
    input_tokens: int | None = None
    output_tokens: int | None = None
    prompt: str | None = None


def iter_jsonl(path: str | Path):
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL file;
    ConfigError names ``path:line`` of the first line that is not JSON."""
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except ValueError as e:
            raise ConfigError(f"{path}:{n}: not JSON ({e})") from None


def load_trace(path: str | Path) -> list[TraceEntry]:
    """Read a JSONL trace; times shifted so the earliest is 0, sorted ascending."""
    rows: list[tuple[float, dict[str, Any]]] = []
    for n, obj in iter_jsonl(path):
        if "timestamp" in obj:
            t = float(obj["timestamp"])
        elif "timestamp_ms" in obj:
            t = float(obj["timestamp_ms"]) / 1000.0
        elif "arrival_s" in obj:
            t = float(obj["arrival_s"])
        else:
            raise ConfigError(f"{path}:{n}: no 'timestamp', 'timestamp_ms' or 'arrival_s' field")
        rows.append((t, obj))
    if not rows:
        raise ConfigError(f"trace {path} has no entries")
    rows.sort(key=lambda r: r[0])
    t0 = rows[0][0]

    def _int(obj: dict[str, Any], *keys: str) -> int | None:
        for k in keys:
            if obj.get(k) is not None:
                return int(obj[k])
        return None

    return [
        TraceEntry(
            arrival_s=t - t0,
            input_tokens=_int(o, "input_tokens", "input_length", "prompt_tokens"),
            output_tokens=_int(o, "output_tokens", "output_length", "max_tokens"),
            prompt=o.get("prompt"),
        )
        for t, o in rows
    ]
