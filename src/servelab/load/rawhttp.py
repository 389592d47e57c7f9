"""A lean HTTP/1.1 client transport for streamed completions (``--http-client raw``).

Why: with one SSE chunk per token, the client's CPU per request is dominated by
per-read overhead in the HTTP stack (aiohttp: protocol → StreamReader → ``readany``
→ async iterator, ~20 µs per read on the benchmark machine). This transport is an
``asyncio.Protocol`` that decodes the response (status line, headers, chunked or
Content-Length body) inside ``data_received`` and hands decoded body bytes straight
to a callback with the read's timestamp — no intermediate buffers or awaits per
token. Measured in ``benchmarks/bench_load.py`` against the aiohttp path.

Deferred decoding (``on_batch``): for a chunked 200 body, ``data_received`` only
stamps the read (``time.perf_counter()``) and keeps it; batches are decoded when a
read does not end like a whole SSE event in a whole HTTP chunk (``\n\n\r\n``),
after ``_BATCH`` reads, or when the connection closes or the request is aborted.
Every read keeps its own arrival time, so token times are unchanged; the per-read
Python work drops to two list appends.

Scope: ``http://`` and ``https://`` (TLS through asyncio), HTTP/1.1 keep-alive with a
per-host pool, ``Transfer-Encoding: chunked``, ``Content-Length`` or read-to-close
bodies. No proxies, redirects, compression (requests send
``Accept-Encoding: identity``) or HTTP/2. Errors raise ``RawHTTPError`` subclasses
that the client turns into records.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_mod
import time
from typing import Callable
from urllib.parse import urlsplit

__all__ = ["RawHTTPError", "ConnectError", "Disconnected", "RawPool", "RawResponse"]


class RawHTTPError(Exception):
    """A transport failure (no HTTP status to report)."""


class ConnectError(RawHTTPError):
    pass


class Disconnected(RawHTTPError):
    """The server closed the connection before the response was complete."""

    def __init__(self, msg: str, *, got_bytes: bool) -> None:
        super().__init__(msg)
        self.got_bytes = got_bytes


_BATCH = 64     # deferred reads decoded at least this often (bounds memory and delay)

_HEAD, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _LENGTH, _UNTIL_CLOSE, _DONE = range(8)


class RawResponse:
    __slots__ = ("status", "headers", "body")

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()            # kept only for non-200 answers


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._reset(None, None)

    def _reset(self, on_body: Callable[[bytes, float], None] | None, fut: asyncio.Future | None,
               on_batch: Callable[[list, list, int], int] | None = None) -> None:
        self.state = _HEAD
        self.ptimes: list[float] = []      # deferred reads: arrival times ...
        self.pdata: list[bytes] = []       # ... and their bytes
        self.on_batch = on_batch
        self.buf = bytearray()
        self.remaining = 0
        self.resp = RawResponse()
        self.on_body = on_body
        self.fut = fut
        self.got_bytes = False
        self.keep_alive = True

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.pdata:
            self.flush()
        fut = self.fut
        if fut is not None and not fut.done():
            if self.state == _UNTIL_CLOSE:
                fut.set_result(self.resp)
            else:
                fut.set_exception(Disconnected(
                    f"server closed the connection{' mid-response' if self.got_bytes else ''}"
                    + (f": {exc}" if exc else ""), got_bytes=self.got_bytes))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self.state == _CHUNK_SIZE and self.on_batch is not None:
            # Deferred decoding: keep the read and its arrival time; decode a batch when
            # a read does not end like a whole SSE event in a whole HTTP chunk (the end
            # of the body, anything unusual), or every _BATCH reads.
            pt = self.ptimes
            pt.append(now)
            self.pdata.append(data)
            if not data.endswith(b"\n\n\r\n") or len(pt) >= _BATCH:
                self.flush()
            return
        self.got_bytes = True
        if self.state == _HEAD:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            data = bytes(self.buf[end + 4:])
            self.buf = bytearray()
            parts = head[0].split(" ", 2)
            try:
                self.resp.status = int(parts[1])
            except (IndexError, ValueError):
                self._fail(Disconnected(f"bad status line {head[0][:80]!r}", got_bytes=True))
                return
            h = self.resp.headers
            for line in head[1:]:
                k, _, v = line.partition(":")
                h[k.strip().lower()] = v.strip()
            if h.get("connection", "").lower() == "close":
                self.keep_alive = False
            if "chunked" in h.get("transfer-encoding", "").lower():
                self.state = _CHUNK_SIZE
            elif "content-length" in h:
                self.remaining = int(h["content-length"])
                self.state = _LENGTH
                if self.remaining == 0:
                    self._complete()
                    return
            else:
                self.state = _UNTIL_CLOSE
                self.keep_alive = False
            if not data:
                return
        self._body(data, now)

    # -- body decoding
    def flush(self) -> None:
        """Decode the deferred reads, each with its own arrival time."""
        times, datas = self.ptimes, self.pdata
        if not datas:
            return
        self.ptimes, self.pdata = [], []
        self.got_bytes = True
        i, n = 0, len(datas)
        while i < n and self.state != _DONE:
            if self.on_batch is not None and self.state == _CHUNK_SIZE and not self.buf \
                    and self.resp.status == 200:
                j = self.on_batch(times, datas, i)
                if j > i:
                    i = j
                    continue
            self._body(datas[i], times[i])
            i += 1

    def _emit(self, payload: bytes, now: float) -> None:
        if self.resp.status == 200 and self.on_body is not None:
            if self.on_body(payload, now):
                # the consumer has seen enough (e.g. a broken stream): stop here and
                # drop the connection instead of waiting for the server to finish
                self.keep_alive = False
                self._complete()
                if self.transport is not None:
                    self.transport.close()
        else:
            self.resp.body += payload

    def _body(self, data: bytes, now: float) -> None:
        st = self.state
        if st == _DONE:
            return
        if st == _LENGTH:
            take = data[:self.remaining]
            self.remaining -= len(take)
            self._emit(take, now)
            if self.remaining == 0 and self.state != _DONE:
                self._complete()
            return
        if st == _UNTIL_CLOSE:
            self._emit(data, now)
            return
        if self.buf:
            data = bytes(self.buf) + data
            self.buf = bytearray()
        elif st == _CHUNK_SIZE:
            # Fast path: exactly one whole chunk ("<hex>\r\n<payload>\r\n"), the usual
            # shape of a streamed token.
            j = data.find(b"\r\n")
            if 0 < j <= 8 and data.endswith(b"\r\n"):
                try:
                    size = int(data[:j], 16)
                except ValueError:
                    size = -1
                if size > 0 and len(data) == j + size + 4:
                    self._emit(data[j + 2:j + 2 + size], now)
                    return
        if self.state == _DONE:
            return
        i, n = 0, len(data)
        while i < n:
            if self.state == _CHUNK_SIZE:
                j = data.find(b"\r\n", i)
                if j < 0:
                    self.buf += data[i:]
                    return
                try:
                    size = int(data[i:j].split(b";", 1)[0], 16)
                except ValueError:
                    self._fail(Disconnected("bad chunk size", got_bytes=True))
                    return
                i = j + 2
                if size == 0:
                    self.state = _TRAILER
                else:
                    self.remaining = size
                    self.state = _CHUNK_DATA
            elif self.state == _CHUNK_DATA:
                take = min(self.remaining, n - i)
                self._emit(data[i:i + take], now)
                if self.state == _DONE:
                    return
                i += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = _CHUNK_CRLF
            elif self.state == _CHUNK_CRLF:
                if n - i < 2:
                    self.buf += data[i:]
                    return
                i += 2
                self.state = _CHUNK_SIZE
            elif self.state == _TRAILER:
                j = data.find(b"\r\n", i)
                if j < 0:
                    self.buf += data[i:]
                    return
                if j == i:                     # empty line: end of trailers
                    self._complete()
                    return
                i = j + 2
            else:
                return

    def _complete(self) -> None:
        self.state = _DONE
        if self.fut is not None and not self.fut.done():
            self.fut.set_result(self.resp)

    def _fail(self, exc: Exception) -> None:
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


class RawPool:
    """Keep-alive connections per (host, port, tls)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int, bool], list[_Conn]] = {}
        self._all: set[_Conn] = set()
        self._ssl: ssl_mod.SSLContext | None = None
        self._prep: dict[tuple, tuple[tuple[str, int, bool], bytes]] = {}

    async def _connect(self, host: str, port: int, tls: bool, timeout_s: float) -> _Conn:
        loop = asyncio.get_running_loop()
        if tls and self._ssl is None:
            self._ssl = ssl_mod.create_default_context()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Conn, host, port, ssl=self._ssl if tls else None), timeout_s)
        except asyncio.TimeoutError:
            raise ConnectError(f"connect to {host}:{port} timed out after {timeout_s:g} s") from None
        except OSError as e:
            raise ConnectError(f"{e.strerror or e} ({host}:{port})") from None
        self._all.add(conn)
        return conn

    async def request(self, url: str, *, method: str = "POST", headers: dict[str, str], body: bytes,
                      on_body: Callable[[bytes, float], None] | None, connect_timeout_s: float,
                      on_sent: Callable[[], None] | None = None,
                      on_batch: Callable[[list, list, int], int] | None = None) -> RawResponse:
        """Send and wait for the whole response; body bytes of a 200 go to ``on_body``
        (which may return True to end the response early and drop the connection).

        ``on_batch(times, reads, i)``, when given, turns on deferred decoding of a
        chunked body: reads are kept with their arrival times (``time.perf_counter``
        in ``data_received``) and decoded in batches; ``on_batch`` may consume the
        reads ``i, i+1, …`` that are each exactly one whole HTTP chunk it understands
        and returns the index of the first read it did not consume (``i`` for none);
        the rest go through the decoder and ``on_body`` one read at a time, with
        their own arrival times. A batch is decoded at the latest when the body
        ends, the connection closes, the request is aborted, or after 64 reads.
        Cancel the awaiting task (e.g. with ``asyncio.wait_for``) to abort: the
        connection is then closed, never reused."""
        prep_key = (method, url, tuple(headers.items()))
        prep = self._prep.get(prep_key)
        if prep is None:
            u = urlsplit(url)
            tls = u.scheme == "https"
            host = u.hostname or "127.0.0.1"
            port = u.port or (443 if tls else 80)
            path = (u.path or "/") + (f"?{u.query}" if u.query else "")
            head = [f"{method} {path} HTTP/1.1", f"Host: {u.netloc}", "Accept-Encoding: identity"]
            head += [f"{k}: {v}" for k, v in headers.items()]
            prep = ((host, port, tls), ("\r\n".join(head) + "\r\n").encode("latin-1"))
            if len(self._prep) < 64:
                self._prep[prep_key] = prep       # parsed URL and request head, built once
        key, head_bytes = prep
        host, port, tls = key
        idle = self._idle.setdefault(key, [])
        conn = None
        while idle:
            c = idle.pop()
            if not c.closed and c.transport is not None and not c.transport.is_closing():
                conn = c
                break
        if conn is None:
            conn = await self._connect(host, port, tls, connect_timeout_s)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        conn._reset(on_body, fut, on_batch)
        assert conn.transport is not None
        conn.transport.write(b"%sContent-Length: %d\r\n\r\n%s" % (head_bytes, len(body), body))
        if on_sent is not None:
            on_sent()
        ok = False
        try:
            resp = await fut
            ok = True
            return resp
        finally:
            if conn.pdata:
                conn.flush()                   # an aborted request keeps what arrived
            conn.fut = None
            conn.on_body = None
            conn.on_batch = None
            if ok and conn.keep_alive and conn.state == _DONE and not conn.closed:
                idle.append(conn)
            elif conn.transport is not None:
                conn.transport.close()
                self._all.discard(conn)

    def close(self) -> None:
        for c in list(self._all):
            if c.transport is not None:
                c.transport.close()
        self._all.clear()
        self._idle.clear()
