"""Regenerate the rendered files shown in docs/deploy.md: ``python docs/gen_deploy.py``.

Each block ``<!-- render: ARGS | FILE -->`` … ``<!-- end render -->`` is replaced by FILE
as ``servelab ARGS --out DIR`` writes it (run from the repository root);
tests/test_deploy_docs.py fails when a block differs from a fresh render.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "deploy.md"
BLOCK = re.compile(r"<!-- render: (?P<args>.*?) \| (?P<file>\S+) -->\n(?P<body>.*?)<!-- end render -->", re.S)


def render(args: str, name: str) -> str:
    """The fenced block for ``servelab ARGS`` -> FILE."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out"
        subprocess.run([sys.executable, "-c", "from servelab.cli import main; main()", *shlex.split(args),
                        "--out", str(out)], check=True, capture_output=True, cwd=ROOT)
        body = (out / name).read_text()
    return f"```{'json' if name.endswith('.json') else 'yaml'}\n{body}```\n"


def main() -> None:
    text = DOC.read_text()
    DOC.write_text(BLOCK.sub(lambda m: f"<!-- render: {m['args']} | {m['file']} -->\n"
                                       f"{render(m['args'], m['file'])}<!-- end render -->", text))


if __name__ == "__main__":
    main()
