"""docs/deploy.md shows what `servelab deploy render` writes today (docs/gen_deploy.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_rendered_blocks_in_the_docs_are_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_deploy", ROOT / "docs" / "gen_deploy.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)  # type: ignore[union-attr]
    blocks = list(gen.BLOCK.finditer((ROOT / "docs" / "deploy.md").read_text()))
    assert len(blocks) >= 3
    for m in blocks:
        assert m["body"] == gen.render(m["args"], m["file"]), \
            f"stale block for `servelab {m['args']}` ({m['file']}): run python docs/gen_deploy.py"
