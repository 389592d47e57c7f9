"""A minimal OpenAI-compatible streaming server with scripted timing and faults.

For tests and benchmarks of the load client (the role httpx's MockTransport plays
for httpx): a raw ``asyncio.Protocol`` HTTP/1.1 server — no framework, so it costs
little CPU and its timing is known. Each streamed request gets ``num_tokens``
chunks (``max_tokens`` of the request, or ``fixed_tokens``), the first ``ttft_s``
after the request was read, the next every ``itl_s``; a final chunk carries
``finish_reason`` and ``usage`` (prompt tokens = whitespace words of the prompt),
then ``data: [DONE]``. Chunked transfer encoding, keep-alive.

Fault modes (``mode``, or per request the ``x-fake-mode`` header): ``ok``,
``http500``, ``http429``, ``http503``, ``http400``, ``stall`` (never answers),
``broken_sse`` (an undecodable data line), ``cut`` (closes the connection after
``cut_after`` chunks), ``no_usage`` (no usage object), ``error_event`` (an
``{"error": ...}`` object mid-stream), ``split`` (every chunk written byte-pair by
byte-pair across separate writes), ``long_line`` (one chunk of ``long_line_bytes``),
``bad_usage`` (``usage`` with wrong-typed counts: ``"completion_tokens": "12"``),
``truncated_chunk`` (after ``cut_after`` chunks, a chunk header promising more bytes
than follow, then the connection closes), ``invalid_json`` (a 200 answer with a
truncated JSON body instead of a stream). A request without the key the server
requires (``required_api_key``) gets 401 with the received key (the Authorization
value less its scheme) echoed in the message, as careless servers do.

``served`` logs, per request, ``(t_read, t_first_token_sent, n_tokens)`` on
``time.perf_counter`` — the same clock as the client on one host — so a benchmark
knows the true TTFT. ``/metrics`` serves llama.cpp-style counters; ``/health`` ok.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeServerConfig", "FakeServer", "MODES"]

MODES = ("ok", "http500", "http429", "http503", "http400", "stall", "broken_sse", "cut",
         "no_usage", "error_event", "split", "long_line", "bad_usage", "truncated_chunk", "invalid_json")


@dataclass(kw_only=True)
class FakeServerConfig:
    ttft_s: float = 0.01
    itl_s: float = 0.005
    mode: str = "ok"
    fixed_tokens: int | None = None
    cut_after: int = 3
    long_line_bytes: int = 200_000
    required_api_key: str | None = None


@dataclass
class _Stats:
    served: list[tuple[float, float, int]] = field(default_factory=list)
    requests: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    running: int = 0
    seen_headers: list[dict[str, str]] = field(default_factory=list)
    seen_bodies: list[dict[str, Any]] = field(default_factory=list)


_STATUS_TEXT = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


class _Proto(asyncio.Protocol):
    def __init__(self, server: "FakeServer") -> None:
        self.s = server
        self.buf = bytearray()
        self.tr: asyncio.Transport | None = None
        self.handles: list[asyncio.TimerHandle] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tr = transport  # type: ignore[assignment]
        self.s._conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        for h in self.handles:
            h.cancel()
        self.s._conns.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", "0"))
            if len(self.buf) < end + 4 + n:
                return
            body = bytes(self.buf[end + 4:end + 4 + n])
            del self.buf[:end + 4 + n]
            method, path, _ = (head[0].split(" ") + ["", ""])[:3]
            self.s._handle(self, method, path, headers, body)

    def write(self, data: bytes) -> None:
        if self.tr is not None and not self.tr.is_closing():
            self.tr.write(data)


class FakeServer:
    """Start with ``await server.start()`` (port 0 = any free port); ``url`` then works."""

    def __init__(self, config: FakeServerConfig | None = None, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.config = config or FakeServerConfig()
        self.host, self.port = host, port
        self.stats = _Stats()
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[_Proto] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> "FakeServer":
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Proto(self), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for c in list(self._conns):
                if c.tr is not None:
                    c.tr.close()
            await self._server.wait_closed()

    # ---------------------------------------------------------------- responses
    @staticmethod
    def _simple(p: _Proto, status: int, obj: Any, ctype: str = "application/json") -> None:
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        p.write(f"HTTP/1.1 {status} {_STATUS_TEXT.get(status, 'X')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    def _metrics_text(self) -> bytes:
        st = self.stats
        return (
            "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
            "# TYPE llamacpp:prompt_tokens_total counter\n"
            f"llamacpp:prompt_tokens_total {st.prompt_tokens}\n"
            "# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.\n"
            "# TYPE llamacpp:tokens_predicted_total counter\n"
            f"llamacpp:tokens_predicted_total {st.generated_tokens}\n"
            "# HELP llamacpp:requests_processing Number of requests processing.\n"
            "# TYPE llamacpp:requests_processing gauge\n"
            f"llamacpp:requests_processing {st.running}\n"
        ).encode()

    def _handle(self, p: _Proto, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        cfg = self.config
        if method == "GET":
            if path.startswith("/metrics"):
                return self._simple(p, 200, self._metrics_text(), "text/plain; version=0.0.4")
            if path.startswith("/health"):
                return self._simple(p, 200, {"status": "ok"})
            if path.startswith("/v1/models"):
                return self._simple(p, 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
            return self._simple(p, 404, {"error": {"message": f"no route {path}", "type": "not_found"}})
        self.stats.requests += 1
        self.stats.seen_headers.append(headers)
        t_read = time.perf_counter()
        mode = headers.get("x-fake-mode", cfg.mode)
        if cfg.required_api_key and headers.get("authorization") != f"Bearer {cfg.required_api_key}":
            return self._simple(p, 401, {"error": {"message": "Incorrect API key provided: "
                                                   f"{headers.get('authorization', '').split(' ', 1)[-1]}",
                                                   "type": "auth"}})
        if mode.startswith("http"):
            code = int(mode[4:])
            return self._simple(p, code, {"error": {"message": f"scripted {code}", "type": "fake", "code": code}})
        if mode == "stall":
            return
        if mode == "invalid_json":
            return self._simple(p, 200, b'{"id": "fake-1", "choices": [{"text": "trunc')
        try:
            req = json.loads(body)
        except ValueError:
            return self._simple(p, 400, {"error": {"message": "bad JSON", "type": "invalid_request_error"}})
        self.stats.seen_bodies.append(req)
        chat = "messages" in req
        if chat:
            parts = []
            for m in req["messages"]:
                c = m.get("content") or ""
                parts += [c] if isinstance(c, str) else [x.get("text", "") for x in c if isinstance(x, dict)]
            prompt = " ".join(parts)
        else:
            prompt = str(req.get("prompt", ""))
        n_in = len(prompt.split())
        n = cfg.fixed_tokens if cfg.fixed_tokens is not None else int(req.get("max_tokens") or 16)
        self._stream(p, mode, chat, n_in, n, t_read)

    def _stream(self, p: _Proto, mode: str, chat: bool, n_in: int, n: int, t_read: float) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        p.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        obj = "chat.completion.chunk" if chat else "text_completion"

        def event(payload: bytes) -> bytes:
            data = b"data: " + payload + b"\n\n"
            return b"%x\r\n%s\r\n" % (len(data), data)

        def token_payload(i: int) -> bytes:
            text = f" w{i}"
            if mode == "long_line" and i == 0:
                text = "x" * cfg.long_line_bytes
            choice = {"index": 0, "delta": {"content": text}, "finish_reason": None} if chat else \
                {"index": 0, "text": text, "finish_reason": None}
            return json.dumps({"id": "fake-1", "object": obj, "choices": [choice]},
                              separators=(",", ":")).encode()

        def final_payload() -> bytes:
            choice = {"index": 0, "delta": {}, "finish_reason": "length"} if chat else \
                {"index": 0, "text": "", "finish_reason": "length"}
            out: dict[str, Any] = {"id": "fake-1", "object": obj, "choices": [choice]}
            if mode == "bad_usage":
                out["usage"] = {"prompt_tokens": [n_in], "completion_tokens": str(n), "total_tokens": None}
            elif mode != "no_usage":
                out["usage"] = {"prompt_tokens": n_in, "completion_tokens": n, "total_tokens": n_in + n}
            return json.dumps(out, separators=(",", ":")).encode()

        st = self.stats
        st.running += 1
        first_sent = [0.0]

        def send(i: int) -> None:
            if i == 0:
                first_sent[0] = time.perf_counter()
            if mode == "cut" and i == cfg.cut_after:
                st.running -= 1
                if p.tr is not None:
                    p.tr.close()
                return
            if mode == "truncated_chunk" and i == cfg.cut_after:
                st.running -= 1
                p.write(b"%x\r\n%s" % (4096, b"data: {\"choices\": [{\"te"))
                if p.tr is not None:
                    p.tr.close()
                return
            if mode == "broken_sse" and i == 1:
                p.write(event(b'{"choices": [{"text": "unterminated'))
                return
            if mode == "error_event" and i == 1:
                p.write(event(b'{"error": {"message": "engine died", "code": 500}}'))
                return
            data = event(token_payload(i))
            if mode == "split":
                for k in range(0, len(data), 2):
                    p.write(data[k:k + 2])
            else:
                p.write(data)
            st.generated_tokens += 1
            if i == n - 1:
                p.write(event(final_payload()) + event(b"[DONE]") + b"0\r\n\r\n")
                st.running -= 1
                st.prompt_tokens += n_in
                st.served.append((t_read, first_sent[0], n))

        for i in range(n):
            p.handles.append(loop.call_at(loop.time() + cfg.ttft_s + i * cfg.itl_s, send, i))


def serve(config: FakeServerConfig, *, host: str = "127.0.0.1", port: int = 0,
          ready: Any = None) -> None:
    """Run a fake server in this process until killed (for benchmarks: a separate
    process, so the server does not share the client's CPU core and event loop).
    ``ready``: an optional callable receiving the bound port."""

    async def main() -> None:
        srv = await FakeServer(config, host=host, port=port).start()
        if ready is not None:
            ready(srv.port)
        await asyncio.Event().wait()

    asyncio.run(main())


if __name__ == "__main__":   # python -m servelab.load.fakeserver PORT TTFT_S ITL_S [FIXED_TOKENS]
    import sys

    args = sys.argv[1:]
    cfg = FakeServerConfig(ttft_s=float(args[1]), itl_s=float(args[2]),
                           fixed_tokens=int(args[3]) if len(args) > 3 else None)
    serve(cfg, port=int(args[0]), ready=lambda p: print(f"listening {p}", flush=True))
