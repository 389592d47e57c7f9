"""The deploy package sits above scenario: it never imports the CLI, the report, or
torch/triton (DESIGN.md, "Which part may import which"), and its public names are exactly
``__all__``."""

from __future__ import annotations

import ast
from pathlib import Path

import servelab.deploy as deploy

ROOT = Path(deploy.__file__).parent
FORBIDDEN = ("servelab.cli", "servelab.report", "servelab.emulator", "servelab.load", "torch", "triton")


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:      # relative: resolve against servelab.deploy
                base = ["servelab", "deploy"][: 2 - (node.level - 1)]
                out.add(".".join([*base, *([node.module] if node.module else [])]))
            else:
                out.add(node.module or "")
    return out


def test_deploy_imports_only_what_it_may() -> None:
    files = sorted(ROOT.glob("*.py"))
    assert len(files) >= 8
    for f in files:
        bad = {m for m in _imports(f) if any(m == x or m.startswith(x + ".") for x in FORBIDDEN)}
        assert not bad, f"{f.name} imports {sorted(bad)}"


def test_public_names_are_all() -> None:
    public = {n for n in dir(deploy) if not n.startswith("_")} - {
        "annotations", "drills", "grafana", "kubernetes", "live", "prometheus", "ray_serve", "render", "watch"}
    assert public == set(deploy.__all__)
