"""``vllm bench serve`` command-line spellings that a flag parser does not take as they are.

vLLM's ``--goodput`` is argparse ``nargs='+'``: ``--goodput ttft:200 tpot:20``.
:func:`expand_multi_value_flags` rewrites such an argument list so that each
``metric:value`` term gets its own flag (``--goodput ttft:200 --goodput tpot:20``), which
a repeatable option reads. :func:`parse_headers` reads ``Name: value`` header flags.
"""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["expand_multi_value_flags", "parse_headers"]

_GOODPUT_TERM = ("ttft:", "tpot:", "itl:", "e2el:", "e2e:")


def expand_multi_value_flags(args: list[str]) -> list[str]:
    """``--goodput ttft:200 tpot:20`` (argparse ``nargs='+'``, as vLLM spells it) →
    ``--goodput ttft:200 --goodput tpot:20``: the terms after ``--goodput`` that look
    like ``metric:value`` are each given their own flag."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        out.append(a)
        if a == "--goodput" and i + 1 < len(args):
            out.append(args[i + 1])
            i += 2
            while i < len(args) and args[i].lower().startswith(_GOODPUT_TERM):
                out += ["--goodput", args[i]]
                i += 1
            continue
        i += 1
    return out


def parse_headers(items: list[str]) -> tuple[tuple[str, str], ...]:
    """``["Name: value", …]`` → ``(("Name", "value"), …)``; ``ConfigError`` for an item
    without a name and a colon (naming only the part before it: a value may be a secret)."""
    out = []
    for h in items:
        k, sep, v = h.partition(":")
        if not sep or not k.strip():
            raise ConfigError(f"bad --header {h.split(':')[0]!r}…; expected 'Name: value'")
        out.append((k.strip(), v.strip()))
    return tuple(out)
