"""One streamed request to an OpenAI-compatible endpoint, measured into a record.

What it measures, per request (all seconds from the run's start on
``time.perf_counter``, a monotonic clock; CLOCK_MONOTONIC on Linux, shared by all
processes of a host):

- ``dispatch_s``: just before the request is handed to the HTTP connection;
- ``token_times_s``: the arrival time of every SSE chunk that carries output text
  (several events read in one ``read()`` share its timestamp); ``first_token_s`` is
  the first of them;
- ``finish_s``: when the stream ended (``[DONE]`` or connection closed);
- token counts: from the server's ``usage`` object (the request asks for it with
  ``stream_options.include_usage``); when the server sends none, the number of
  content chunks is used instead. ``extra["token_count_source"]`` says which
  ("usage" | "chunks"); ``input_tokens`` falls back to the requested prompt length.

Failures are records, never exceptions: connection refused / reset → ``failed``;
HTTP 429 and 503 (admission control) → ``rejected``; other HTTP errors → ``failed``
with the status and the server's message; the request exceeding its timeout →
``timed_out``; undecodable SSE data → ``failed`` ("malformed SSE ..."); a stream
that ends without ``[DONE]`` or a ``finish_reason`` → ``failed`` ("stream cut ...").

Transport: ``rawhttp.RawPool`` by default (a lean asyncio protocol, less CPU per
token; see docs/load.md for the measurement) or aiohttp (``http_client="aiohttp"``,
read with ``iter_any()``). Either way our own SSE parser does the framing, so no
line-length limit applies (aiohttp's ``readline`` limit is 2**16 bytes by default). The API key is sent as ``Authorization: Bearer`` and never
appears in a record, a log line or :meth:`EndpointConfig.redacted`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from .._scrub import scrub_text
from ..records import RequestRecord
from .endpoint import EndpointConfig
from .rawhttp import ConnectError, Disconnected, RawPool
from .sse import DONE, SSEParser

__all__ = ["EndpointConfig", "Prompt", "build_body", "send_request", "REJECT_STATUSES"]

REJECT_STATUSES = frozenset({429, 503})   # vLLM/SGLang/Envoy admission answers
_MAX_ERROR_BODY = 2000                    # characters of an error body kept in ``reason``


@dataclass(kw_only=True, slots=True)
class Prompt:
    """One request to offer: the text (or chat messages) and its bookkeeping."""
    id: str
    arrival_s: float
    input_tokens: int                 # requested / estimated prompt length
    output_tokens: int                # max_tokens to ask for
    prompt: str = ""
    messages: list[dict[str, str]] | None = None
    prefix_group: int = -1
    prefix_tokens: int = 0
    conversation: int = -1
    turn: int = 0
    priority: int = 0
    adapter: str | None = None


def build_body(ep: EndpointConfig, p: Prompt) -> bytes:
    """The JSON request body (serialized once, before the run when possible)."""
    body: dict[str, Any] = {
        "model": p.adapter or ep.model,
        "max_tokens": p.output_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if ep.chat:
        body["messages"] = p.messages if p.messages is not None else [
            {"role": "user", "content": p.prompt}]
    else:
        body["prompt"] = p.prompt
    if ep.ignore_eos:
        body["ignore_eos"] = True
    if ep.min_tokens is not None:
        body["min_tokens"] = ep.min_tokens
    if p.priority:
        body["priority"] = p.priority
    body.update(ep.extra_body)
    return json.dumps(body, separators=(",", ":")).encode()


def _error_message(status: int, text: str) -> str:
    msg = text.strip()
    try:
        obj = json.loads(msg)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        if isinstance(err, dict):
            msg = str(err.get("message") or err)
        elif isinstance(err, str):
            msg = err
    except ValueError:
        pass
    return scrub_text(f"HTTP {status}: {msg[:_MAX_ERROR_BODY]}")


class _Stream:
    """State of one stream while its chunks are parsed (kept small and flat)."""
    __slots__ = ("times", "chunks", "usage", "finish_reason", "done", "error", "text", "keep_text", "ended",
                 "content_type")

    def __init__(self, keep_text: bool) -> None:
        self.times: list[float] = []
        self.chunks = 0
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.error: str | None = None
        self.text: list[str] = []
        self.keep_text = keep_text
        self.ended = 0.0                  # when [DONE] or a stream error was parsed (raw path)
        self.content_type = ""

    def event(self, name: bytes, data: bytes, now: float, chat: bool) -> None:
        if data == DONE:
            self.done = True
            return
        if name == b"error":
            self.error = f"server error event: {data[:_MAX_ERROR_BODY].decode(errors='replace')}"
            return
        # Fast path: a plain content chunk ("text":"x" / "content":"x", no usage, no
        # finish reason, no error) is a token without decoding its JSON.
        if not self.keep_text and b'"usage":{' not in data and b'"finish_reason":"' not in data \
                and b'"error"' not in data:
            marker = b'"content":"' if chat else b'"text":"'
            i = data.find(marker)
            if i >= 0:
                if data[i + len(marker):i + len(marker) + 1] != b'"':
                    self.times.append(now)
                    self.chunks += 1
                return
        try:
            obj = json.loads(data)
        except ValueError:
            self.error = f"malformed SSE data: {data[:200].decode(errors='replace')!r}"
            return
        if not isinstance(obj, dict):
            self.error = f"malformed SSE data: not a JSON object: {data[:200].decode(errors='replace')!r}"
            return
        if "error" in obj and not obj.get("choices"):
            err = obj["error"]
            self.error = "server error in stream: " + str(
                err.get("message", err) if isinstance(err, dict) else err)[:_MAX_ERROR_BODY]
            return
        choices = obj.get("choices")
        if choices is None:
            choices = ()
        elif not isinstance(choices, list):
            self.error = f"malformed SSE data: 'choices' is not a list: {data[:200].decode(errors='replace')!r}"
            return
        for choice in choices:
            if not isinstance(choice, dict):
                self.error = f"malformed SSE data: a choice is not an object: {data[:200].decode(errors='replace')!r}"
                return
            if chat:
                delta = choice.get("delta") or {}
                text = (delta.get("content") or delta.get("reasoning_content") or "") if isinstance(delta, dict) else ""
            else:
                text = choice.get("text") or ""
            if not isinstance(text, str):
                text = str(text)
            if text:
                self.times.append(now)
                self.chunks += 1
                if self.keep_text:
                    self.text.append(text)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.usage = usage


async def send_request(
    session: aiohttp.ClientSession | RawPool,
    ep: EndpointConfig,
    p: Prompt,
    *,
    body: bytes,
    t0: float,
    headers: dict[str, str],
    keep_text: bool = False,
) -> tuple[RequestRecord, str]:
    """Send one request and stream it to the end; returns the record and, when
    ``keep_text``, the generated text (for multi-turn history)."""
    rec = RequestRecord(
        id=p.id, arrival_s=p.arrival_s, input_tokens=p.input_tokens, priority=p.priority,
        adapter=p.adapter,
        extra={"requested_input_tokens": p.input_tokens, "requested_output_tokens": p.output_tokens},
    )
    if p.prefix_group >= 0:
        rec.extra["prefix_group"] = p.prefix_group
    if p.conversation >= 0:
        rec.extra.update(conversation=p.conversation, turn=p.turn)
    st = _Stream(keep_text)
    chat = ep.chat
    perf = time.perf_counter
    rec.dispatch_s = perf() - t0
    for attempt in (0, 1):
        try:
            if isinstance(session, RawPool):
                async with asyncio.timeout(ep.request_timeout_s):   # no extra task, unlike wait_for
                    await _exchange_raw(session, ep, body, headers, rec, st, chat, t0)
            else:
                await _exchange(session, ep, body, headers, rec, st, chat, t0)
        except ConnectError as e:
            _fail(rec, perf() - t0, f"connection failed: {e}")
        except Disconnected as e:
            if attempt == 0 and not e.got_bytes:
                rec.retries += 1            # stale kept-alive connection: send once more
                continue
            _fail(rec, perf() - t0, f"stream cut after {st.chunks} chunks: {e}")
        except aiohttp.ClientConnectorError as e:
            _fail(rec, perf() - t0, f"connection failed: {e.strerror or e}")
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
            if attempt == 0 and "http_status" not in rec.extra:
                # A kept-alive connection the server had already closed (seen with
                # llama.cpp's HTTP server): nothing was answered, send once more.
                rec.retries += 1
                continue
            _fail(rec, perf() - t0, f"stream cut after {st.chunks} chunks: {type(e).__name__}: {e}")
        except asyncio.TimeoutError:
            rec.finish_s = perf() - t0
            if st.error is not None and st.ended:
                # the stream broke before the timeout; its reads were decoded late
                rec.finish_s = st.ended
                break
            rec.status = "timed_out"
            rec.reason = f"no complete response within {ep.request_timeout_s:g} s" + (
                f" ({st.chunks} chunks received)" if st.chunks else "")
        except aiohttp.ClientPayloadError as e:
            _fail(rec, perf() - t0, f"stream cut after {st.chunks} chunks: {type(e).__name__}: {e}")
        except aiohttp.ClientError as e:
            _fail(rec, perf() - t0, f"{type(e).__name__}: {e}")
        break
    _finish(rec, st)
    return rec, "".join(st.text)


async def _exchange(session: aiohttp.ClientSession, ep: EndpointConfig, body: bytes, headers: dict[str, str],
                    rec: RequestRecord, st: _Stream, chat: bool, t0: float) -> None:
    perf = time.perf_counter
    timeout = aiohttp.ClientTimeout(total=ep.request_timeout_s, sock_connect=ep.connect_timeout_s)
    async with session.post(ep.url, data=body, headers=headers, timeout=timeout) as resp:
        rec.extra["http_status"] = resp.status
        st.content_type = resp.headers.get("Content-Type", "")
        if resp.status != 200:
            text = await resp.text(errors="replace")
            rec.finish_s = perf() - t0
            rec.status = "rejected" if resp.status in REJECT_STATUSES else "failed"
            rec.reason = _error_message(resp.status, text)
            return
        parser = SSEParser()
        async for chunk in resp.content.iter_any():
            now = perf() - t0
            for name, data in parser.feed(chunk):
                st.event(name, data, now, chat)
                if st.error is not None:
                    break
            if st.error or st.done:
                break
        if not st.done and not st.error:
            for name, data in parser.close():
                st.event(name, data, perf() - t0, chat)
        rec.finish_s = perf() - t0


async def _exchange_raw(pool: RawPool, ep: EndpointConfig, body: bytes, headers: dict[str, str],
                        rec: RequestRecord, st: _Stream, chat: bool, t0: float) -> None:
    parser = SSEParser()

    def on_body(data: bytes, now: float) -> bool:
        if st.error is not None or st.done:
            return st.error is not None
        t = now - t0
        for name, d in parser.feed(data):
            st.event(name, d, t, chat)
            if st.error is not None or st.done:
                st.ended = t
                break
        return st.error is not None            # a broken stream: stop reading it

    marker = b'"content":"' if chat else b'"text":"'
    after = len(marker)

    def on_batch(times: list[float], reads: list[bytes], i: int) -> int:
        """Count the reads from ``i`` on that are each one whole HTTP chunk holding one
        plain content event (the usual shape of a streamed token) as tokens at their
        read's arrival time; stop at the first other read (decoded one by one)."""
        if st.done or st.error is not None or not parser.idle:
            return i
        tt = st.times
        k, n = i, len(reads)
        while k < n:
            d = reads[k]
            j = d.find(b"\r\n", 0, 10)
            if j <= 0 or not d.startswith(b"data: ", j + 2) or not d.endswith(b"\n\n\r\n") \
                    or d.count(b"\n") != 4:
                break
            try:
                if int(d[:j], 16) != len(d) - j - 4:
                    break
            except ValueError:
                break
            m = d.find(marker, j)
            if m < 0 or d[m + after] == 34 or b'"usage":{' in d or b'"finish_reason":"' in d \
                    or b'"error"' in d:
                break
            tt.append(times[k] - t0)
            k += 1
        st.chunks += k - i
        return k

    resp = await pool.request(ep.url, headers=headers, body=body, on_body=on_body,
                              connect_timeout_s=ep.connect_timeout_s,
                              on_batch=None if st.keep_text else on_batch)
    rec.extra["http_status"] = resp.status
    st.content_type = resp.headers.get("content-type", "")
    now = time.perf_counter() - t0
    if resp.status != 200:
        rec.finish_s = now
        rec.status = "rejected" if resp.status in REJECT_STATUSES else "failed"
        rec.reason = _error_message(resp.status, resp.body.decode(errors="replace"))
        return
    if not st.done and st.error is None:
        for name, d in parser.close():
            st.event(name, d, now, chat)
    rec.finish_s = st.ended or now


def _fail(rec: RequestRecord, finish_s: float, reason: str) -> None:
    """Mark ``rec`` failed at ``finish_s`` (seconds from the run start) with ``reason``."""
    rec.finish_s = finish_s
    rec.status = "failed"
    rec.reason = reason


def _count(rec: RequestRecord, usage: dict[str, Any], name: str) -> int | None:
    """``usage[name]`` as a token count, or None (absent, or not a count: then the
    record notes it in ``extra["usage_invalid"]`` and the caller falls back)."""
    v = usage.get(name)
    if v is None:
        return None
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    if isinstance(v, float) and v.is_integer() and v >= 0:
        return int(v)
    rec.extra.setdefault("usage_invalid", []).append(f"{name}={str(v)[:40]!r} is not a token count")
    return None


def _finish(rec: RequestRecord, st: _Stream) -> None:
    if st.times:
        rec.token_times_s = st.times
        rec.first_token_s = st.times[0]
    rec.extra["chunks"] = st.chunks
    if st.finish_reason:
        rec.extra["finish_reason"] = st.finish_reason
    usage = st.usage or {}
    out_n = _count(rec, usage, "completion_tokens")
    if out_n is not None:
        rec.output_tokens = out_n
        rec.extra["token_count_source"] = "usage"
    else:
        rec.output_tokens = st.chunks
        rec.extra["token_count_source"] = "chunks"
    in_n = _count(rec, usage, "prompt_tokens")
    if in_n is not None:
        rec.input_tokens = in_n
        rec.extra["input_count_source"] = "usage"
        details = usage.get("prompt_tokens_details")
        cached = _count(rec, details, "cached_tokens") if isinstance(details, dict) else None
        if cached:
            rec.cached_tokens = cached
    else:
        rec.extra["input_count_source"] = "requested"
    if rec.status != "ok":
        return
    if st.error:
        rec.status, rec.reason = "failed", st.error
    elif not st.done and st.finish_reason is None and st.chunks == 0 and st.content_type \
            and "event-stream" not in st.content_type.lower():
        rec.status = "failed"
        rec.reason = f"the answer is not an event stream (Content-Type: {st.content_type[:80]})"
    elif not st.done and st.finish_reason is None:
        rec.status = "failed"
        rec.reason = f"stream cut after {st.chunks} chunks: ended without [DONE] or finish_reason"
    elif not st.times:
        rec.status = "failed"
        rec.reason = "stream finished without any output token"
