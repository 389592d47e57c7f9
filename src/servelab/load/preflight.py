"""The readiness check before a load: does a server answer at the base URL?

Like ``vllm bench serve``'s readiness check (which waits up to
``--ready-check-timeout-sec`` for a test request to succeed), ``servelab bench``
asks before it offers any load — but with ``GET /v1/models``, which generates no
tokens and so leaves the server's counters and prefix cache as they were. A
refused or timed-out connection is retried every ``retry_s`` until ``timeout_s``
has passed; then the run stops before it starts, with the reason. An answer of
401/403 means the credentials were refused: stop too (every request would fail
the same way). Any other HTTP answer means a server is there; a 200 with an
OpenAI model list also gives the default model name.

The clock, the sleep and the HTTP GET are parameters, so the retry logic is tested
without a network or wall-clock time.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable

from .._scrub import scrub_text, scrub_url
from ..errors import ServerError

__all__ = ["Readiness", "preflight", "http_get", "ServerError", "discover_model"]

Getter = Callable[[str, dict[str, str], float], tuple[int, bytes]]


@dataclass(frozen=True)
class Readiness:
    status: int                # HTTP status of GET /v1/models
    models: tuple[str, ...]    # model ids listed (empty when none or not a model list)
    attempts: int
    waited_s: float


def http_get(url: str, headers: dict[str, str], timeout_s: float) -> tuple[int, bytes]:
    """GET ``url``; (status, body) for any HTTP answer; OSError when none came."""
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return r.status, r.read(1 << 20)
    except urllib.error.HTTPError as e:
        return e.code, e.read(4096) if e.fp is not None else b""
    except urllib.error.URLError as e:
        reason = e.reason
        raise OSError(str(getattr(reason, "strerror", None) or reason)) from None
    except (socket.timeout, TimeoutError):
        raise OSError(f"no answer within {timeout_s:g} s") from None


def _models(body: bytes) -> tuple[str, ...]:
    try:
        data = json.loads(body)
        return tuple(str(m["id"]) for m in data["data"] if isinstance(m, dict) and "id" in m)
    except (ValueError, KeyError, TypeError):
        return ()


def preflight(base_url: str, headers: dict[str, str], *, timeout_s: float, retry_s: float = 0.5,
              get: Getter = http_get, clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep, known: frozenset[str] = frozenset()) -> Readiness:
    """Wait up to ``timeout_s`` for an HTTP answer at ``base_url/v1/models``; ``known``:
    secret values to keep out of the error message."""
    url = base_url.rstrip("/") + "/v1/models"
    shown = scrub_url(url)
    start = clock()
    attempts = 0
    while True:
        attempts += 1
        left = timeout_s - (clock() - start)
        try:
            status, body = get(url, headers, max(0.1, min(left, 10.0)))
        except OSError as e:
            waited = clock() - start
            if waited + retry_s >= timeout_s:       # the next attempt would start at or past the limit
                raise ServerError(
                    f"no server answered at {shown} within {timeout_s:g} s ({attempts} attempt"
                    f"{'s' if attempts > 1 else ''}; last: {scrub_text(str(e))}); start the server or fix "
                    "--base-url, or raise --ready-timeout") from None
            sleep(retry_s)
            continue
        if status in (401, 403):
            msg = scrub_text(body[:300].decode(errors="replace").strip(), known)
            raise ServerError(f"the server at {shown} refused the credentials (HTTP {status}: {msg}); "
                              "check --api-key / $OPENAI_API_KEY / --header")
        return Readiness(status=status, models=_models(body) if status == 200 else (), attempts=attempts,
                         waited_s=clock() - start)


def discover_model(base_url: str, headers: dict[str, str]) -> str:
    """First model id of GET /v1/models, or "" when the server does not answer (the
    requests will say more)."""
    try:
        models = preflight(base_url, headers, timeout_s=5.0, retry_s=10.0).models
    except ServerError:
        return ""
    return models[0] if models else ""
