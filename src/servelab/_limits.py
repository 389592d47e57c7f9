"""Bounds on user-given sizes, checked before anything is allocated.

A request list, a schedule or a record list grows with rate × duration. Each
request costs memory in every part that holds it — its spec, its record, the
simulator's or load client's bookkeeping — so the largest count a run may ask for
is bounded by this machine's physical memory: ``memory / BYTES_PER_REQUEST``,
capped at ``MAX_REQUESTS_ABSOLUTE``. ``BYTES_PER_REQUEST`` (4 KiB) is a
deliberately generous budget: a ``RequestRecord`` with a few dozen token times and
its ``RequestSpec`` measure about 1–2 KiB in CPython (``sys.getsizeof`` over their
fields), and a run holds both plus queue entries.

:func:`check_count` and :func:`check_number` raise :class:`~servelab.errors.ConfigError`
naming the value and the valid range.
"""

from __future__ import annotations

import math
import numbers
import os

from .errors import ConfigError

__all__ = ["BYTES_PER_REQUEST", "MAX_REQUESTS_ABSOLUTE", "max_requests", "check_request_count",
           "check_number", "check_port"]

BYTES_PER_REQUEST = 4096           # see the module docstring
MAX_REQUESTS_ABSOLUTE = 50_000_000


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30           # unknown: assume a small machine


def max_requests() -> int:
    """The most requests one run may hold on this machine."""
    return max(1000, min(MAX_REQUESTS_ABSOLUTE, _memory_bytes() // BYTES_PER_REQUEST))


def check_request_count(n: float, how: str) -> None:
    """ConfigError when ``n`` requests (``how`` says where the number came from) exceed
    :func:`max_requests`."""
    cap = max_requests()
    if not math.isfinite(n) or n > cap:
        shown = f"{n:.3g}" if isinstance(n, float) else f"{n:,}"
        raise ConfigError(f"{how} asks for {shown} requests; this machine can hold at most {cap:,} "
                          f"(about {BYTES_PER_REQUEST // 1024} KiB each in "
                          f"{_memory_bytes() / 2**30:.0f} GiB of memory): lower the rate, the duration "
                          "or the number of requests")


def _fmt(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}" if abs(x) >= 1e6 else str(int(x))
    return f"{x:g}"


def check_number(name: str, value: object, *, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False, integer: bool = False, allow_inf: bool = False) -> None:
    """ConfigError unless ``value`` is a number (an int when ``integer``) in the range."""
    ok_type = isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)
    if isinstance(value, bool) or not ok_type:
        raise ConfigError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    v = float(value)  # type: ignore[arg-type]
    rng = (f"{'>' if lo_open else '>='} {_fmt(lo)}" if lo is not None else "") + \
          (f"{' and ' if lo is not None else ''}<= {_fmt(hi)}" if hi is not None else "")
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ConfigError(f"{name} must be a finite number{' ' + rng if rng else ''}, got {value!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ConfigError(f"{name} must be {rng}, got {value!r}")
    if hi is not None and v > hi and not (allow_inf and math.isinf(v)):
        raise ConfigError(f"{name} must be {rng}, got {value!r}")


def check_port(name: str, port: object, *, allow_zero: bool = False) -> None:
    """ConfigError unless ``port`` is a TCP port (1–65535; 0 = any free one when allowed)."""
    check_number(name, port, lo=0 if allow_zero else 1, hi=65535, integer=True)
