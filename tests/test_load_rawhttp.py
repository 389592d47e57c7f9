"""The lean HTTP/1.1 transport: framing variants written byte-exactly by a tiny server."""

from __future__ import annotations

import asyncio

import pytest

from servelab.load.rawhttp import ConnectError, Disconnected, RawPool

CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
LENGTH = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world"
CLOSE = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello world"
ERROR = b'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9\r\n\r\n{"a": 1}\n'


async def _serve(payload: bytes, piece: int, close_after: bool):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            n = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
            await reader.readexactly(n)
            for i in range(0, len(payload), piece):
                writer.write(payload[i:i + piece])
                await writer.drain()
                await asyncio.sleep(0)
            if close_after:
                writer.close()
                return

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("payload,close", [(CHUNKED, False), (LENGTH, False), (CLOSE, True)])
@pytest.mark.parametrize("piece", [1, 3, 1000])
def test_bodies_decoded_whatever_the_split(payload: bytes, close: bool, piece: int) -> None:
    async def main() -> None:
        srv = await _serve(payload, piece, close)
        port = srv.sockets[0].getsockname()[1]
        pool = RawPool()
        got = bytearray()
        for _ in range(2):                       # second request reuses the kept-alive connection
            got.clear()
            resp = await pool.request(f"http://127.0.0.1:{port}/v1/x", headers={}, body=b"{}",
                                      on_body=lambda b, t: got.extend(b), connect_timeout_s=2)
            assert resp.status == 200 and bytes(got) == b"hello world"
        pool.close()
        srv.close()

    asyncio.run(main())


def test_error_body_kept_and_connect_errors() -> None:
    async def main() -> None:
        srv = await _serve(ERROR, 4, False)
        port = srv.sockets[0].getsockname()[1]
        pool = RawPool()
        resp = await pool.request(f"http://127.0.0.1:{port}/", headers={}, body=b"", on_body=None,
                                  connect_timeout_s=2)
        assert resp.status == 503 and bytes(resp.body) == b'{"a": 1}\n'
        with pytest.raises(ConnectError):
            await pool.request("http://127.0.0.1:9/", headers={}, body=b"", on_body=None, connect_timeout_s=2)
        pool.close()
        srv.close()

    asyncio.run(main())


def test_cut_mid_body_is_reported() -> None:
    async def main() -> None:
        srv = await _serve(CHUNKED[:60], 1000, True)
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(Disconnected) as e:
            await RawPool().request(f"http://127.0.0.1:{port}/", headers={}, body=b"", on_body=lambda b, t: None,
                                    connect_timeout_s=2)
        assert e.value.got_bytes
        srv.close()

    asyncio.run(main())


@pytest.mark.timeout(30)
def test_broken_stream_that_then_stalls_fails_fast() -> None:
    """Malformed SSE followed by silence: a failed record at once, not a timeout."""
    import time

    from servelab.load.client import EndpointConfig, Prompt, send_request

    bad = b"data: {not json\n\n"
    payload = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(bad), bad))

    async def main():
        srv = await _serve(payload, 1000, False)
        port = srv.sockets[0].getsockname()[1]
        # a client timeout beyond the test's own (30 s): "failed", not "timed_out", and no
        # test timeout, show that it stopped at once
        ep = EndpointConfig(base_url=f"http://127.0.0.1:{port}", model="m", request_timeout_s=60)
        pool = RawPool()
        t = time.perf_counter()
        rec, _ = await send_request(pool, ep, Prompt(id="x", arrival_s=0.0, input_tokens=1, output_tokens=1),
                                    body=b"{}", t0=t, headers=ep.http_headers())
        pool.close()
        srv.close()
        return rec

    rec = asyncio.run(main())
    assert rec.status == "failed" and "malformed SSE" in rec.reason
