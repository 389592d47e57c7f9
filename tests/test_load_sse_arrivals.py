"""SSE parsing and arrival schedules of the load client."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servelab.errors import ConfigError
from servelab.load.arrivals import arrival_times, load_trace, parse_rates
from servelab.load.sse import SSEParser

STREAM = (b": keep-alive\n\n"
          b'data: {"choices":[{"text":"a"}]}\n\n'
          b'data: {"choices":[{"text":"b"}]}\r\n\r\n'
          b"event: error\ndata: {\"error\":1}\n\n"
          b"data: line1\ndata: line2\n\n"
          b"data: [DONE]\n\n")
EXPECTED = [(b"", b'{"choices":[{"text":"a"}]}'), (b"", b'{"choices":[{"text":"b"}]}'),
            (b"error", b'{"error":1}'), (b"", b"line1\nline2"), (b"", b"[DONE]")]


def _parse_in_pieces(data: bytes, cuts: list[int]) -> list[tuple[bytes, bytes]]:
    p = SSEParser()
    out = []
    prev = 0
    for c in sorted(set(cuts)) + [len(data)]:
        out += p.feed(data[prev:c])
        prev = c
    return out + p.close()


def test_sse_whole_stream() -> None:
    assert _parse_in_pieces(STREAM, []) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_sse_any_split_gives_same_events(cuts: list[int]) -> None:
    assert _parse_in_pieces(STREAM, cuts) == EXPECTED


def test_sse_byte_by_byte_and_long_line() -> None:
    big = json.dumps({"choices": [{"text": "x" * 300_000}]}).encode()   # > aiohttp's 2**16 readline limit
    data = b"data: " + big + b"\n\n" + b"data: [DONE]\n\n"
    p = SSEParser()
    events = []
    for i in range(0, len(data), 4096):
        events += p.feed(data[i:i + 4096])
    assert events == [(b"", big), (b"", b"[DONE]")]
    assert _parse_in_pieces(b'data: {"a":1}\n\n', list(range(15))) == [(b"", b'{"a":1}')]


def test_sse_unterminated_last_event_is_returned_by_close() -> None:
    p = SSEParser()
    assert p.feed(b"data: [DONE]") == []
    assert p.close() == [(b"", b"[DONE]")]


def test_constant_schedule_exact() -> None:
    t = arrival_times(kind="constant", rate_rps=4.0, num_requests=5)
    assert t.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_poisson_and_gamma_moments() -> None:
    n = 20000
    gaps = np.diff(arrival_times(kind="poisson", rate_rps=10.0, num_requests=n, seed=3))
    assert abs(gaps.mean() - 0.1) < 0.1 * 0.03
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.03               # exponential: CV = 1
    for b in (0.25, 4.0):
        g = np.diff(arrival_times(kind="gamma", rate_rps=10.0, num_requests=n, burstiness=b, seed=5))
        assert abs(g.mean() - 0.1) < 0.1 * 0.05                       # mean gap stays 1/rate
        assert abs(g.std() / g.mean() - 1 / math.sqrt(b)) < 0.05 / math.sqrt(b)   # CV = 1/sqrt(shape)


def test_duration_window_and_inf_rate() -> None:
    t = arrival_times(kind="constant", rate_rps=2.0, duration_s=3.0)
    assert t.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert arrival_times(kind="poisson", rate_rps=math.inf, num_requests=3).tolist() == [0, 0, 0]
    with pytest.raises(ConfigError, match="inf needs"):
        arrival_times(kind="poisson", rate_rps=math.inf, duration_s=1.0)
    with pytest.raises(ConfigError, match="unknown arrival process 'bursty'"):
        arrival_times(kind="bursty", rate_rps=1.0, num_requests=1)


def test_parse_rates() -> None:
    assert parse_rates("1,2, 4,inf") == [1.0, 2.0, 4.0, math.inf]
    with pytest.raises(ConfigError, match="'fast'"):
        parse_rates("1,fast")


def test_trace_shifted_and_sorted(tmp_path) -> None:
    p = tmp_path / "trace.jsonl"
    p.write_text('{"timestamp": 105.5, "input_tokens": 10, "output_tokens": 3}\n'
                 '{"timestamp": 100.0, "input_tokens": 20}\n\n'
                 '{"timestamp_ms": 101000}\n')
    tr = load_trace(p)
    assert [e.arrival_s for e in tr] == [0.0, 1.0, 5.5]
    assert tr[0].input_tokens == 20 and tr[2].output_tokens == 3


def test_sse_fast_path_edges() -> None:
    p = SSEParser()
    assert p.feed(b"data: x\r\n\n") == [(b"", b"x")]          # CR LF line end, then blank line
    assert p.feed(b"event: e\n") == []
    assert p.feed(b"data: y\n\n") == [(b"e", b"y")]           # a pending event name is honoured
    assert p.feed(b"data: a\n") == []
    assert p.feed(b"data: b\n\n") == [(b"", b"a\nb")]         # pending data lines are joined
