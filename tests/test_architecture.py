"""The import rules of the design brief, as a test: `lint-imports` over `.importlinter`.

The contracts themselves are checked too: each must break on a synthetic violation (so a
contract that cannot fail is caught), and every top-level package must be named in them.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"
PKG = ROOT / "src" / "servelab"


def _lint(config: Path, cwd: Path = ROOT, pythonpath: str | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "importlinter.cli"]
    env = None
    if pythonpath is not None:
        import os
        env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run([*cmd, "--config", str(config), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _contracts() -> configparser.ConfigParser:
    cp = configparser.ConfigParser()
    cp.read(CONFIG)
    return cp


def _names(value: str) -> list[str]:
    out = []
    for line in value.split():
        for part in line.replace(":", "|").split("|"):
            part = part.strip().strip("()")
            if part:
                out.append(part)
    return out


def test_lint_imports_passes():
    res = _lint(CONFIG)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def test_every_top_level_package_is_named_in_the_layers():
    layered = set(_names(_contracts()["importlinter:contract:layers"]["layers"]))
    tops = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    tops |= {p.stem for p in PKG.glob("*.py") if p.stem != "__init__"}
    missing = sorted(f"servelab.{t}" for t in tops - {"kernels"} if f"servelab.{t}" not in layered)
    assert not missing, f"packages not placed in a layer of .importlinter: {missing}"


@pytest.mark.parametrize("optional", ["scenario", "deploy"])
def test_optional_core_packages_join_the_core_contract_once_they_exist(optional):
    """A forbidden contract cannot name a missing package, so this one is listed only
    once the package exists: then it must be (it is core, per the design brief)."""
    sources = _names(_contracts()["importlinter:contract:core-no-cli-report-kernels"]["source_modules"])
    exists = (PKG / optional).is_dir()
    assert (f"servelab.{optional}" in sources) == exists, (
        f"servelab.{optional} {'exists' if exists else 'does not exist'}: "
        f"{'add it to' if exists else 'it cannot be in'} the core contract's source_modules")


# One synthetic violation per contract: a copy of the package with one import added.
_VIOLATIONS = {
    "layers": ("perf/step.py", "from ..sim import engine as _x\n"),
    "sim-load": ("load/client.py", "from ..sim import engine as _x\n"),
    "core-no-cli-report-kernels": ("evidence/verdict.py", "from ..kernels import specs as _x\n"),
    "kernels-leaf": ("kernels/counts.py", "from ..catalog import gpus as _x\n"),
}


@pytest.mark.parametrize("contract", sorted(_VIOLATIONS))
def test_each_contract_breaks_on_a_violation(tmp_path, contract):
    assert f"importlinter:contract:{contract}" in _contracts(), contract
    shutil.copytree(PKG, tmp_path / "servelab", ignore=shutil.ignore_patterns("__pycache__"))
    rel, line = _VIOLATIONS[contract]
    target = tmp_path / "servelab" / rel
    text = target.read_text(encoding="utf-8")
    head, sep, rest = text.partition("from __future__ import annotations\n")
    target.write_text(head + sep + line + rest, encoding="utf-8")
    shutil.copy(CONFIG, tmp_path / ".importlinter")
    res = _lint(tmp_path / ".importlinter", cwd=tmp_path, pythonpath=str(tmp_path))
    assert res.returncode != 0, res.stdout
    name = _contracts()[f"importlinter:contract:{contract}"]["name"]
    flat = " ".join(res.stdout.split())   # the report wraps long contract names
    assert f"{' '.join(name.split())} BROKEN" in flat, res.stdout


CLI_MAX_LINES = 1800


def test_the_cli_stays_thin():
    """The CLI parses arguments, calls one package function and prints or writes what it
    returns (design brief: "cli — thin: parses, calls the packages, prints. No model
    logic, no HTML"). Model logic, tables and pages that grow inside ``cli/`` cannot be
    reached from Python or tested without running a command, so ``cli/`` is held under
    1,800 lines in all: a command that outgrows it has logic to move into its package
    (computation) or ``servelab.report`` (tables, pages)."""
    files = sorted((PKG / "cli").glob("*.py"))
    counts = {f.name: len(f.read_text(encoding="utf-8").splitlines()) for f in files}
    assert len(files) >= 10, counts           # the command modules are where this test looks
    total = sum(counts.values())
    assert total <= CLI_MAX_LINES, (f"src/servelab/cli/ has {total} lines (limit {CLI_MAX_LINES}); "
                                    f"largest: {sorted(counts.items(), key=lambda kv: -kv[1])[:3]}")


def test_only_cli_tests_import_the_cli():
    """Library behaviour is tested through the packages; a test that imports
    ``servelab.cli`` runs commands (CliRunner or a subprocess) and only reaches the app."""
    tests = Path(__file__).resolve().parent
    bad = []
    for f in sorted(tests.glob("*.py")):
        text = f.read_text(encoding="utf-8")
        for line in text.splitlines():
            s = line.strip()
            if s.startswith(("from servelab.cli", "import servelab.cli")) and not (
                    s.startswith("from servelab.cli import") and set(
                        n.strip() for n in s.split(" import ", 1)[1].split("#")[0].replace(" as cli_app", "")
                        .split(",")) <= {"app", "main"}):
                bad.append(f"{f.name}: {s}")
    assert not bad, bad
