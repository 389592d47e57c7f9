"""Numbers in README.md and docs/ checked against where they come from.

Three kinds of marks, all invisible when the Markdown is rendered:

- ``12.1<!--src benchmarks/results/plan.json min-->`` — the number right before the
  comment must equal the value at that key of that (committed) result file, to the
  precision shown (half a unit of its last digit), or within ``tol=2%`` when given.
  Keys are dotted paths; ``*`` matches every key or index at that level; a ``min:`` or
  ``max:`` prefix takes the least or greatest of the matches; ``scale=1000`` multiplies
  the file's value (seconds in the file, milliseconds in the text).
- ``<!-- docs-check: run [tol=1%] -->`` on the line before a ```` ```console ```` block:
  every ``$ …`` command in the block is run again (``servelab`` from this environment,
  ``COLUMNS=110``, in a scratch folder that sees ``examples/``), and every line of the
  block holding a number must match a line of the output with the same words, its
  numbers equal to the precision shown (or within ``tol``).
- ``<!-- docs-check: transcript PATH -->`` before a console block: the same comparison
  against a committed file that a script writes (e.g. ``examples/drill/run-drill.sh``
  writes ``examples/drill/transcript.txt``), for output that depends on timing.

``python tests/docs_check.py`` prints every mark's result; ``make docs-check`` runs
``tests/test_docs.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_NUM = r"[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
NUM_RE = re.compile(rf"(?<![\w.]){_NUM}(?![\w])")
SRC_RE = re.compile(rf"(?<![\w.])({_NUM})<!--\s*src\s+(\S+)\s+(\S+)((?:\s+\w+=\S+)*)\s*-->")
BLOCK_RE = re.compile(r"<!--\s*docs-check:\s*(run|transcript)([^>]*?)-->\s*\n```console\n(.*?)\n```", re.S)


@dataclass(frozen=True)
class Result:
    where: str
    ok: bool
    detail: str


def parse_number(text: str) -> float:
    return float(text.replace(",", "").replace("−", "-"))


def shown_tolerance(text: str) -> float:
    """Half a unit of the last digit shown: '12.1' → 0.05, '1,226' → 0.5."""
    t = text.replace(",", "").lstrip("-−")
    if "e" in t.lower():
        mant, _, exp = t.lower().partition("e")
        dec = len(mant.partition(".")[2])
        return 0.5 * 10.0 ** (int(exp) - dec)
    dec = len(t.partition(".")[2])
    return 0.5 * 10.0 ** (-dec)


def close(doc_text: str, value: float, tol_rel: float = 0.0) -> bool:
    d = parse_number(doc_text)
    return abs(value - d) <= max(shown_tolerance(doc_text), tol_rel * abs(d)) * (1 + 1e-9)


def _opts(text: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in text.split() if "=" in kv)


def _tol(opts: dict[str, str]) -> float:
    t = opts.get("tol", "0")
    return float(t.rstrip("%")) / 100 if t.endswith("%") else float(t)


def lookup(data: Any, key: str) -> float:
    """The value at ``key`` (module docstring); ``KeyError`` naming the missing part."""
    agg = None
    if key.startswith(("min:", "max:")):
        agg, key = key[:3], key[4:]
    nodes = [data]
    parts = key.split(".")
    i = 0
    while i < len(parts):
        nxt = []
        step = 1
        for n in nodes:
            part = parts[i]
            if part == "*":
                nxt += list(n.values()) if isinstance(n, dict) else list(n)
            elif isinstance(n, dict):
                # keys may hold dots themselves ("held_out_v1.0_all"): longest match first
                for j in range(len(parts), i, -1):
                    if ".".join(parts[i:j]) in n:
                        nxt.append(n[".".join(parts[i:j])])
                        step = max(step, j - i)
                        break
            elif isinstance(n, list) and part.isdigit() and int(part) < len(n):
                nxt.append(n[int(part)])
        if not nxt:
            raise KeyError(f"no {parts[i]!r} in {key!r}")
        nodes = nxt
        i += step
    vals = [float(v) for v in nodes if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not vals:
        raise KeyError(f"{key!r} holds no number")
    if agg == "min":
        return min(vals)
    if agg == "max":
        return max(vals)
    if len(vals) != 1:
        raise KeyError(f"{key!r} matches {len(vals)} numbers; use min: or max:")
    return vals[0]


def check_sources(path: Path) -> Iterator[Result]:
    text = path.read_text(encoding="utf-8")
    for m in SRC_RE.finditer(text):
        num, file, key, rest = m.groups()
        opts = _opts(rest)
        line = text.count("\n", 0, m.start()) + 1
        where = f"{path.relative_to(ROOT)}:{line} {num} ← {file} {key}"
        try:
            v = lookup(json.loads((ROOT / file).read_text(encoding="utf-8")), key) * float(opts.get("scale", 1))
        except (OSError, ValueError, KeyError) as e:
            yield Result(where, False, f"cannot read the source: {e}")
            continue
        yield Result(where, close(num, v, _tol(opts)), f"file says {v:.6g}")


_BOX = str.maketrans("", "", "─━═│┃╭╮╰╯┏┓┗┛┡┩└┘┌┐")


def skeleton(line: str) -> str:
    """The words of a line: numbers as '#', box-drawing characters and spacing dropped
    (table and rule widths follow the terminal)."""
    return " ".join(NUM_RE.sub("#", line).translate(_BOX).split())


def compare_output(expected: str, actual: str, tol_rel: float = 0.0) -> list[str]:
    """Lines of ``expected`` holding numbers that no line of ``actual`` matches (same
    words, numbers within tolerance); empty when all match."""
    by_skel: dict[str, list[list[str]]] = {}
    for a in actual.splitlines():
        by_skel.setdefault(skeleton(a), []).append(NUM_RE.findall(a))
    bad = []
    in_cmd = False
    for e in expected.splitlines():
        if e.startswith("$ ") or in_cmd:               # a command and its continuation lines
            in_cmd = e.rstrip().endswith("\\")
            continue
        nums = NUM_RE.findall(e)
        if not nums:
            continue
        sk = skeleton(e)
        cands = by_skel.get(sk, [])
        if not cands and sk.endswith("…"):            # a line the document cut short
            cands = [nums_a[:len(nums)] for k, v in by_skel.items() if k.startswith(sk[:-1].rstrip(" ,"))
                     for nums_a in v]
        if not any(len(c) == len(nums) and all(close(d, parse_number(a), tol_rel) for d, a in zip(nums, c))
                   for c in cands):
            near = f" (closest: {' '.join(cands[0])})" if cands else " (no line with these words)"
            bad.append(e.strip() + near)
    return bad


def _commands(block: str) -> list[str]:
    cmds, acc, cont = [], "", False
    for line in block.splitlines():
        if not cont and not line.startswith("$ "):
            continue
        piece = line[2:] if not cont else line.strip()
        if piece.rstrip().endswith("\\"):
            acc += piece.rstrip()[:-1] + " "
            cont = True
            continue
        cmds.append(acc + piece)
        acc, cont = "", False
    return cmds


def run_block(block: str, timeout_s: float = 300.0) -> str:
    env = {**os.environ, "COLUMNS": "110", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "NO_COLOR": "1", "TERM": "dumb"}
    with tempfile.TemporaryDirectory(prefix="servelab-docs-") as d:
        os.symlink(ROOT / "examples", Path(d) / "examples")
        out = []
        for cmd in _commands(block):
            p = subprocess.run(cmd, shell=True, cwd=d, env=env, capture_output=True, text=True, timeout=timeout_s)
            if p.returncode != 0:
                raise RuntimeError(f"`{cmd}` exited {p.returncode}: {p.stderr[-1500:]}")
            out.append(p.stdout + p.stderr)
        return "\n".join(out)


def blocks(path: Path) -> Iterator[tuple[str, str, dict[str, str], str, int]]:
    text = path.read_text(encoding="utf-8")
    for m in BLOCK_RE.finditer(text):
        kind, rest, body = m.groups()
        words = rest.split()
        opts = _opts(rest)
        arg = next((w for w in words if "=" not in w), "")
        yield kind, arg, opts, body, text.count("\n", 0, m.start()) + 1


def check_block(path: Path, kind: str, arg: str, opts: dict[str, str], body: str, line: int) -> Result:
    where = f"{path.relative_to(ROOT)}:{line} ({kind}{' ' + arg if arg else ''})"
    try:
        actual = run_block(body) if kind == "run" else (ROOT / arg).read_text(encoding="utf-8")
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return Result(where, False, str(e))
    bad = compare_output(body, actual, _tol(opts))
    return Result(where, not bad, "; ".join(bad[:8]) + (f" … and {len(bad) - 8} more" if len(bad) > 8 else ""))


def main() -> int:
    results = [r for p in DOCS for r in check_sources(p)]
    results += [check_block(p, *b) for p in DOCS for b in blocks(p)]
    for r in results:
        print(("ok   " if r.ok else "FAIL ") + r.where + ("" if r.ok else f": {r.detail}"))
    bad = sum(not r.ok for r in results)
    print(f"{len(results) - bad} of {len(results)} checks pass")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
