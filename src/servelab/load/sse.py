"""Incremental Server-Sent Events parser for streamed completions.

What it models: the ``text/event-stream`` wire format (WHATWG HTML Living Standard,
"Server-sent events", §9.2.6 "Interpreting an event stream"): lines end in LF, CR LF
or CR; a line ``data: X`` appends ``X`` to the current event's data; an empty line
dispatches the event; lines starting with ``:`` are comments; ``event:`` names the
event. OpenAI-compatible servers send one JSON object per event and end with
``data: [DONE]``.

Assumptions: bytes arrive in arbitrary pieces (a JSON object may be split across
reads, several events may share one read); lines may be arbitrarily long — the
parser keeps a growing buffer and has no line-length limit (unlike
``StreamReader.readline`` in aiohttp, whose default limit of 2**16 bytes breaks long
contexts). A lone CR as line terminator is accepted only when followed by LF (CR LF);
bare-CR streams are not produced by any OpenAI-compatible server we know of.

Units: none (bytes in, events out). Timestamps are the caller's business: every
event parsed from one read shares that read's arrival time.
"""

from __future__ import annotations

__all__ = ["SSEParser", "DONE"]

DONE = b"[DONE]"


class SSEParser:
    """Feed raw bytes, get complete events as ``(event_name, data)`` tuples.

    ``event_name`` is ``b""`` for the default ("message") event; ``data`` is the
    event's data lines joined by ``b"\\n"`` (the usual case is one line).
    """

    __slots__ = ("_buf", "_data", "_event")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._data: list[bytes] = []
        self._event = b""

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        # Fast path: one complete "data: X\n\n" event and nothing pending (the usual
        # shape of a streamed token).
        if (not self._buf and not self._data and not self._event and chunk.startswith(b"data: ")
                and chunk.endswith(b"\n\n") and chunk.count(b"\n") == 2 and chunk[-3:-2] != b"\r"):
            return [(b"", chunk[6:-2])]
        if b"\n" not in chunk:
            self._buf += chunk
            return []
        if self._buf:
            self._buf += chunk
            lines = bytes(self._buf).split(b"\n")
            self._buf = bytearray(lines.pop())
        else:
            lines = chunk.split(b"\n")
            tail = lines.pop()
            if tail:
                self._buf += tail
        out: list[tuple[bytes, bytes]] = []
        data = self._data
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    out.append((self._event, data[0] if len(data) == 1 else b"\n".join(data)))
                    data.clear()
                self._event = b""
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                if value.startswith(b" "):
                    value = value[1:]
                data.append(value)
            elif line.startswith(b":"):
                continue                       # comment / keep-alive
            elif line.startswith(b"event:"):
                self._event = line[6:].strip()
            # id:, retry: and unknown fields are ignored, as the standard says
        return out

    def close(self) -> list[tuple[bytes, bytes]]:
        """Events still pending when the stream ends without a final blank line.

        The standard discards an unterminated event; servers that omit the final
        blank line after ``[DONE]`` exist, so a complete trailing ``data:`` line is
        returned and the caller decides whether the stream was complete.
        """
        out = self.feed(b"\n\n") if (self._buf or self._data) else []
        self._buf.clear()
        self._data.clear()
        return out

    @property
    def idle(self) -> bool:
        """No partial line, no pending data lines, no event name: between events."""
        return not (self._buf or self._data or self._event)

    @property
    def pending_bytes(self) -> int:
        """Bytes received but not yet part of a complete line."""
        return len(self._buf)
