"""What the emulator does to stay up under bad clients: limits and timeouts.

``ServerLimits`` (defaults follow uvicorn, which serves vLLM's OpenAI API: a 5 s
keep-alive timeout; headers limited like aiohttp's parser, 8190-byte lines):

- ``max_connections`` (4096, or fewer when the open-file limit is lower): open TCP
  connections beyond this get ``503`` with an
  OpenAI-style error body and are closed at once (before any byte is read);
- ``header_timeout_s``: a connection must deliver a complete request head (up to
  the blank line) within this time of connecting, or of its previous request
  finishing; otherwise ``408`` and close (defeats slow-header "slowloris" clients);
- ``body_timeout_s``: the whole request body must arrive within this time of the
  head (``408`` otherwise; checked by the request handler);
- ``max_body_bytes``: larger bodies get ``413`` (aiohttp's ``client_max_size``);
- ``keepalive_timeout_s``: an idle kept-alive connection is closed after this.

The guard is a thin ``asyncio.Protocol`` wrapped around aiohttp's request handler:
it counts connections, watches for the end of each request head and forwards every
event unchanged. A middleware tells it when a request is being served (no head
timeout then) and when it finished (the next head's clock starts).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["ServerLimits", "ConnectionGuard", "GuardedFactory", "raw_error"]


def _fd_bound_connections() -> int:
    """Connections the process can hold open: the soft open-file limit less 64
    descriptors for everything else (listening socket, files, the event loop)."""
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 4096
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(16, min(4096, soft - 64))


@dataclass(frozen=True, kw_only=True)
class ServerLimits:
    # At most 4096, and never past the open-file limit: beyond it accept() fails with
    # EMFILE and the server cannot even answer 503.
    max_connections: int = field(default_factory=_fd_bound_connections)
    # nginx's client_header_timeout / client_body_timeout default to 60 s; the emulator's
    # clients are local load generators, so a head gets 10 s and a body 30 s.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    # A 128k-token prompt of the emulator's word tokenizer is ~1 MiB of JSON; 16 MiB
    # leaves room for chat histories (nginx's client_max_body_size default is 1 MiB).
    max_body_bytes: int = 16 * 2**20
    keepalive_timeout_s: float = 5.0          # uvicorn's default --timeout-keep-alive


def raw_error(status: int, reason: str, message: str, etype: str) -> bytes:
    """A complete HTTP/1.1 error response with an OpenAI-style body that closes the connection."""
    body = json.dumps({"error": {"message": message, "type": etype, "param": None, "code": status}}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class ConnectionGuard(asyncio.Protocol):
    """Wraps one aiohttp request handler: head timeout and connection accounting."""

    def __init__(self, inner: asyncio.Protocol, factory: "GuardedFactory") -> None:
        self.inner = inner
        self.f = factory
        self.transport: asyncio.Transport | None = None
        self.active = 0                 # requests being served on this connection
        self.head_done = False
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None

    # -- timer
    def _arm(self) -> None:
        if self._timer is None and self.f.limits.header_timeout_s > 0:
            self._timer = asyncio.get_running_loop().call_later(self.f.limits.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self.transport is not None and not self.transport.is_closing() and self.active == 0:
            self.f.head_timeouts += 1
            self.transport.write(raw_error(408, "Request Timeout", "request headers not received within "
                                           f"{self.f.limits.header_timeout_s:g} s", "timeout"))
            self.transport.close()

    # -- request accounting (from the middleware)
    def request_started(self) -> None:
        self.active += 1
        self._disarm()

    def request_finished(self) -> None:
        self.active = max(0, self.active - 1)
        if self.active == 0:
            self.head_done = False
            self._tail = b""
            self._arm()

    # -- protocol events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.f.open += 1
        self.f.by_transport[transport] = self
        self._arm()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.head_done:
            buf = self._tail + data
            if b"\r\n\r\n" in buf:
                self.head_done = True
                self._disarm()
            else:
                self._tail = buf[-3:]
                self._arm()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.f.open -= 1
        self.f.by_transport.pop(self.transport, None)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _Refuse(asyncio.Protocol):
    """Answers 503 and closes: the connection limit is reached."""

    def __init__(self, factory: "GuardedFactory") -> None:
        self.f = factory

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.f.refused += 1
        transport.write(raw_error(503, "Service Unavailable",  # type: ignore[attr-defined]
                                  f"too many connections (limit {self.f.limits.max_connections}); retry later",
                                  "service_unavailable"))
        transport.close()


class GuardedFactory:
    """Protocol factory for ``loop.create_server``: aiohttp's handler inside a guard."""

    def __init__(self, make_handler: Callable[[], Any], limits: ServerLimits) -> None:
        self.make_handler = make_handler
        self.limits = limits
        self.open = 0
        self.refused = 0
        self.head_timeouts = 0
        self.by_transport: dict[Any, ConnectionGuard] = {}

    def __call__(self) -> asyncio.Protocol:
        if self.open >= self.limits.max_connections:
            return _Refuse(self)
        return ConnectionGuard(self.make_handler(), self)
