"""Validation of an OpenAI completions / chat-completions request body, whole, before
anything reaches the engine.

The checks follow the OpenAI API reference and vLLM's request models
(``vllm/entrypoints/openai/protocol.py``): field types (a boolean is not an integer),
ranges (``max_tokens`` ≥ 1, ``temperature`` 0–2, ``top_p`` in (0, 1], penalties −2–2,
``n`` = 1 — the emulator produces one choice), ``stream_options`` only with
``stream: true`` (vLLM's rule), chat ``messages`` a non-empty list of objects with a
known ``role`` and string or text-part ``content``. Unknown fields are accepted and
ignored, as vLLM does. A violation raises :class:`BadRequest` with the message and
the offending parameter for a 400 ``invalid_request_error`` body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["BadRequest", "ParsedRequest", "parse_request", "DEFAULT_MAX_TOKENS"]

DEFAULT_MAX_TOKENS = 16          # OpenAI completions default for max_tokens
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class ParsedRequest:
    text: str                    # prompt text the emulator's tokenizer counts
    token_ids: int               # prompt tokens given as ids (counted as they are)
    max_tokens: int
    stream: bool
    include_usage: bool


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _opt_num(body: dict[str, Any], name: str, lo: float, hi: float, *, lo_open: bool = False) -> None:
    v = body.get(name)
    if v is None:
        return
    if not _is_num(v) or (v <= lo if lo_open else v < lo) or v > hi:
        raise BadRequest(f"'{name}' must be a number {'>' if lo_open else '>='} {lo:g} and <= {hi:g}, "
                         f"got {v!r}", name)


def _opt_int(body: dict[str, Any], name: str, lo: int, hi: int | None = None) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if not _is_int(v) or v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" + (f" and <= {hi}" if hi is not None else "")
        raise BadRequest(f"'{name}' must be an integer {rng}, got {v!r}", name)
    return v


def _opt_bool(body: dict[str, Any], name: str) -> bool:
    v = body.get(name)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise BadRequest(f"'{name}' must be a boolean, got {v!r}", name)
    return v


def _content_text(content: Any, i: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        out = []
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise BadRequest(f"messages[{i}].content parts must be objects with a 'type'", "messages")
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise BadRequest(f"messages[{i}].content text part needs a string 'text'", "messages")
                out.append(part["text"])
        return " ".join(out)
    raise BadRequest(f"messages[{i}].content must be a string, a list of parts or null, got "
                     f"{type(content).__name__}", "messages")


def _prompt(body: dict[str, Any]) -> tuple[str, int]:
    p = body.get("prompt")
    if isinstance(p, str):
        return p, 0
    if isinstance(p, list) and p:
        if all(isinstance(x, str) for x in p):
            return " ".join(p), 0
        if all(_is_int(x) and x >= 0 for x in p):
            return "", len(p)                       # token ids
    raise BadRequest("'prompt' must be a string, a non-empty list of strings or a list of token ids, got "
                     f"{type(p).__name__}", "prompt")


def _messages(body: dict[str, Any]) -> str:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest("'messages' must be a non-empty list", "messages")
    texts = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise BadRequest(f"messages[{i}] must be an object with 'role' and 'content'", "messages")
        if m.get("role") not in _ROLES:
            raise BadRequest(f"messages[{i}].role must be one of {', '.join(_ROLES)}; got {m.get('role')!r}",
                             "messages")
        texts.append(_content_text(m.get("content"), i))
    return " ".join(texts)


def parse_request(body: Any, *, chat: bool) -> ParsedRequest:
    """The fields the emulator uses, after checking every field it knows (BadRequest)."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest(f"'model' must be a string, got {type(model).__name__}", "model")
    text, ids = (_messages(body), 0) if chat else _prompt(body)
    mt = body.get("max_tokens")
    name = "max_tokens"
    if mt is None:
        mt, name = body.get("max_completion_tokens"), "max_completion_tokens"
    if mt is None:
        mt = DEFAULT_MAX_TOKENS
    elif not _is_int(mt) or mt < 1:
        raise BadRequest(f"'{name}' must be a positive integer, got {mt!r}", name)
    stream = _opt_bool(body, "stream")
    so = body.get("stream_options")
    include_usage = False
    if so is not None:
        if not isinstance(so, dict):
            raise BadRequest(f"'stream_options' must be an object, got {type(so).__name__}", "stream_options")
        if not stream:
            raise BadRequest("'stream_options' is only allowed when 'stream' is true", "stream_options")
        include_usage = _opt_bool(so, "include_usage")
        _opt_bool(so, "continuous_usage_stats")
    n = _opt_int(body, "n", 1)
    if n is not None and n != 1:
        raise BadRequest(f"'n' = {n} is not supported by the emulator (one choice per request)", "n")
    _opt_num(body, "temperature", 0, 2)
    _opt_num(body, "top_p", 0, 1, lo_open=True)
    _opt_num(body, "presence_penalty", -2, 2)
    _opt_num(body, "frequency_penalty", -2, 2)
    _opt_int(body, "top_k", -1)
    _opt_int(body, "seed", -(2**63), 2**64 - 1)
    _opt_int(body, "priority", -(2**63), 2**63 - 1)
    mn = _opt_int(body, "min_tokens", 0)
    if mn is not None and mn > mt:
        raise BadRequest(f"'min_tokens' ({mn}) must be <= max_tokens ({mt})", "min_tokens")
    _opt_bool(body, "ignore_eos")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise BadRequest("'stop' must be a string or a list of strings", "stop")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise BadRequest("'user' must be a string", "user")
    return ParsedRequest(text=text, token_ids=ids, max_tokens=mt, stream=stream, include_usage=include_usage)
