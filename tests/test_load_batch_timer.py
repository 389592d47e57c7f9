"""Deferred (batched) decoding keeps every read's own arrival time; the dispatcher's
deadline sleeper never returns early."""

from __future__ import annotations

import asyncio
import json
import time
import types

import pytest

from servelab.load import rawhttp
from servelab.load._timer import DeadlineSleeper, sleep_until
from servelab.load.client import EndpointConfig, Prompt, send_request


def _chunk(payload: bytes) -> bytes:
    data = b"data: " + payload + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def _tok(i: int) -> bytes:
    return _chunk(json.dumps({"choices": [{"index": 0, "text": f" t{i}", "finish_reason": None}]},
                             separators=(",", ":")).encode())


FINAL = _chunk(b'{"choices":[{"index":0,"text":"","finish_reason":"length"}],'
               b'"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}')
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
T3 = _tok(3)
# (arrival time, bytes of one read): a lone token, two tokens coalesced in one read, a
# token split across two reads, then usage + [DONE] + the end of the chunked body.
READS = [(1.0, HEAD), (1.1, _tok(0)), (1.2, _tok(1) + _tok(2)), (1.3, T3[:20]), (1.4, T3[20:]),
         (1.5, _tok(4)), (1.6, FINAL + _chunk(b"[DONE]") + b"0\r\n\r\n")]


class _ScriptedPool(rawhttp.RawPool):
    """Feeds scripted reads to the real protocol, with a scripted arrival clock."""

    async def request(self, url, *, headers, body, on_body, connect_timeout_s, method="POST",
                      on_sent=None, on_batch=None):
        conn = rawhttp._Conn()
        conn.transport = types.SimpleNamespace(close=lambda: None, is_closing=lambda: False)
        fut = asyncio.get_running_loop().create_future()
        conn._reset(on_body, fut, on_batch)
        real = rawhttp.time
        try:
            for t, data in READS:
                rawhttp.time = types.SimpleNamespace(perf_counter=lambda t=t: t)
                conn.data_received(data)
        finally:
            rawhttp.time = real
        return await fut


@pytest.mark.parametrize("keep_text", [False, True])      # batched path / read-by-read path
def test_each_token_gets_its_reads_arrival_time(keep_text: bool) -> None:
    ep = EndpointConfig(base_url="http://127.0.0.1:1", model="m")
    p = Prompt(id="a", arrival_s=0.0, input_tokens=3, output_tokens=5)

    async def main():
        return await send_request(_ScriptedPool(), ep, p, body=b"{}", t0=0.0, headers={},
                                  keep_text=keep_text)

    rec, text = asyncio.run(main())
    assert rec.status == "ok", rec.reason
    assert rec.token_times_s == pytest.approx([1.1, 1.2, 1.2, 1.4, 1.5], abs=1e-12)
    assert rec.first_token_s == pytest.approx(1.1, abs=1e-12)
    assert rec.finish_s == pytest.approx(1.6, abs=1e-12)     # when [DONE] arrived
    assert rec.output_tokens == 5 and rec.extra["token_count_source"] == "usage"
    assert rec.extra["chunks"] == 5
    assert text == (" t0 t1 t2 t3 t4" if keep_text else "")


def test_deadline_sleeper_never_returns_early() -> None:
    async def main() -> list[float]:
        s = DeadlineSleeper()
        early = []
        try:
            for k in range(20):
                target = time.perf_counter() + 0.0003 * (k % 5) + 0.0001
                await s.until(target)
                early.append(time.perf_counter() - target)
            await s.until(time.perf_counter() - 1.0)          # a past deadline returns at once
        finally:
            s.close()
        target = time.perf_counter() + 0.0005
        await sleep_until(target)                             # the portable fallback
        early.append(time.perf_counter() - target)
        return early

    after = asyncio.run(main())
    assert min(after) >= 0.0
