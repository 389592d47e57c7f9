"""The emulator under malformed requests, slow and vanishing clients, and floods."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servelab.emulator import EmulatorConfig, ServerLimits
from servelab.emulator.requests import BadRequest, parse_request
from servelab.load.scrape import parse_metrics

from load_fixtures import emulator_server

_OK = {"prompt": "a b c", "max_tokens": 2}
# body → parameter named in the 400 (None: the body as a whole)
MALFORMED = [
    ({**_OK, "stream": True, "stream_options": "yes"}, "stream_options"),
    ({**_OK, "stream_options": {"include_usage": True}}, "stream_options"),      # without stream
    ({**_OK, "stream": True, "stream_options": {"include_usage": "yes"}}, "include_usage"),
    ({**_OK, "stream": "yes"}, "stream"),
    ({**_OK, "max_tokens": True}, "max_tokens"),
    ({**_OK, "max_tokens": 2.5}, "max_tokens"),
    ({**_OK, "max_tokens": 0}, "max_tokens"),
    ({"prompt": "a", "max_completion_tokens": "3"}, "max_completion_tokens"),
    ({"prompt": 5, "max_tokens": 2}, "prompt"),
    ({"prompt": ["a", 1], "max_tokens": 2}, "prompt"),
    ({"prompt": [], "max_tokens": 2}, "prompt"),
    ({"prompt": {"text": "a"}, "max_tokens": 2}, "prompt"),
    ({**_OK, "model": 3}, "model"),
    ({**_OK, "n": 2}, "n"),
    ({**_OK, "temperature": "hot"}, "temperature"),
    ({**_OK, "temperature": 5}, "temperature"),
    ({**_OK, "top_p": 0}, "top_p"),
    ({**_OK, "min_tokens": 5}, "min_tokens"),
    ({**_OK, "stop": [1]}, "stop"),
    ({**_OK, "ignore_eos": "true"}, "ignore_eos"),
    ([1, 2], None),
    ("text", None),
]
MALFORMED_CHAT = [
    ({"messages": [], "max_tokens": 2}, "messages"),
    ({"messages": "hi", "max_tokens": 2}, "messages"),
    ({"messages": ["hi"], "max_tokens": 2}, "messages"),
    ({"messages": [{"role": "wizard", "content": "hi"}], "max_tokens": 2}, "messages"),
    ({"messages": [{"role": "user", "content": 5}], "max_tokens": 2}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}], "max_tokens": 2}, "messages"),
]


@pytest.mark.parametrize("body, param", MALFORMED)
def test_completions_validation(body, param) -> None:
    with pytest.raises(BadRequest) as ei:
        parse_request(body, chat=False)
    assert ei.value.param == param or (param == "include_usage" and ei.value.param == "include_usage")


@pytest.mark.parametrize("body, param", MALFORMED_CHAT)
def test_chat_validation(body, param) -> None:
    with pytest.raises(BadRequest) as ei:
        parse_request(body, chat=True)
    assert ei.value.param == param


def test_valid_requests_parse() -> None:
    r = parse_request({"prompt": ["a b", "c"], "max_tokens": 3, "stream": True,
                       "stream_options": {"include_usage": True}, "temperature": 0, "vendor_field": 1}, chat=False)
    assert (r.text, r.max_tokens, r.stream, r.include_usage) == ("a b c", 3, True, True)
    assert parse_request({"prompt": [1, 2, 3]}, chat=False).token_ids == 3
    r = parse_request({"messages": [{"role": "system", "content": None},
                                    {"role": "user", "content": [{"type": "text", "text": "x y"},
                                                                 {"type": "image_url", "image_url": {}}]}]},
                      chat=True)
    assert r.text.split() == ["x", "y"] and r.max_tokens == 16


def _raw(port: int, data: bytes, *, read: bool = True, timeout: float = 30) -> bytes:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


def _post(port: int, path: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _idle(emu) -> bool:
    st = emu.engine.stats(0.0)
    return not emu.reqs and st["running"] == 0 and st["waiting"] == 0


def _wait(pred, limit_s: float = 20.0) -> bool:
    end = time.monotonic() + limit_s            # a bound on waiting, not a timing assertion
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_malformed_bodies_get_400_and_never_reach_the_engine() -> None:
    with emulator_server(EmulatorConfig(speedup=1.0)) as emu:
        for body, param in MALFORMED:
            status, err = _post(emu.port, "/v1/completions", json.dumps(body).encode())
            assert status == 400, body
            assert err["error"]["type"] == "invalid_request_error" and err["error"]["param"] == (
                param if param != "include_usage" else "include_usage")
        for body, _ in MALFORMED_CHAT:
            assert _post(emu.port, "/v1/chat/completions", json.dumps(body).encode())[0] == 400
        assert _post(emu.port, "/v1/completions", b"{not json")[0] == 400
        assert _post(emu.port, "/v1/completions", b"\xff\xfe")[0] == 400
        assert _post(emu.port, "/v1/nothing", b"{}")[0] == 404
        with urllib.request.urlopen(f"http://127.0.0.1:{emu.port}/metrics", timeout=30) as r:
            vals = parse_metrics(r.read().decode())
        assert _idle(emu) and vals.get("vllm:prompt_tokens_total", 0.0) == 0.0     # nothing was admitted
        status, ok = _post(emu.port, "/v1/completions", json.dumps(_OK).encode())   # still serves
        assert status == 200 and ok["usage"]["completion_tokens"] == 2


def test_limits_body_size_connections_and_slow_headers() -> None:
    limits = ServerLimits(max_connections=3, header_timeout_s=0.3, body_timeout_s=0.3, max_body_bytes=2000)
    with emulator_server(EmulatorConfig(speedup=1.0), limits=limits) as emu:
        status, err = _post(emu.port, "/v1/completions", json.dumps({"prompt": "a " * 2000}).encode())
        assert status == 413 and "larger than 2000 bytes" in err["error"]["message"]
        # slow headers: a head never finished is answered 408 and closed
        got = _raw(emu.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
        assert got.startswith(b"HTTP/1.1 408") and b'"type": "timeout"' in got
        # a body that never completes: 408 from the handler
        got = _raw(emu.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 100\r\n\r\n{\"prompt\"")
        assert got.startswith(b"HTTP/1.1 408")
        # connections beyond the limit: 503 at once
        held = [socket.create_connection(("127.0.0.1", emu.port)) for _ in range(3)]
        try:
            assert _wait(lambda: emu._factory.open == 3)
            got = _raw(emu.port, b"", read=True)
            assert got.startswith(b"HTTP/1.1 503") and b"too many connections (limit 3)" in got
        finally:
            for s in held:
                s.close()
        assert _wait(lambda: emu._factory.open == 0)          # the held ones timed out or closed
        assert _post(emu.port, "/v1/completions", json.dumps(_OK).encode())[0] == 200


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_goes_away_aborts_its_request(stream: bool) -> None:
    """30,000 tokens at real-time speed take minutes; closing the socket frees the engine at once."""
    with emulator_server(EmulatorConfig(speedup=1.0)) as emu:
        body = json.dumps({"prompt": "a b c", "max_tokens": 30000, "stream": stream}).encode()
        s = socket.create_connection(("127.0.0.1", emu.port))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        assert _wait(lambda: len(emu.reqs) == 1)
        s.close()
        assert _wait(lambda: _idle(emu)), (emu.reqs, emu.engine.stats(0.0))


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True), st.text(max_size=6)),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)
_FIELDS = st.sampled_from(["prompt", "messages", "max_tokens", "max_completion_tokens", "stream",
                           "stream_options", "n", "temperature", "top_p", "min_tokens", "stop", "model",
                           "ignore_eos", "seed", "user", "priority", "top_k"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_FIELDS, _JSON, max_size=6) | _JSON, st.booleans())
def test_any_json_is_parsed_or_refused_with_a_bad_request(body, chat: bool) -> None:
    """Property: whatever the JSON, parsing ends in a request or a BadRequest naming a
    parameter — never another exception (which the server would turn into a 500)."""
    try:
        r = parse_request(body, chat=chat)
    except BadRequest as e:
        assert e.message
        return
    assert isinstance(r.max_tokens, int) and r.max_tokens >= 1 and not isinstance(r.max_tokens, bool)
    assert isinstance(r.stream, bool) and isinstance(r.include_usage, bool) and isinstance(r.text, str)


def test_deeply_nested_json_is_a_400() -> None:
    with emulator_server(EmulatorConfig(speedup=1.0)) as emu:
        status, err = _post(emu.port, "/v1/completions", b"[" * 100_000 + b"]" * 100_000)
    assert status == 400 and err["error"]["type"] == "invalid_request_error"
