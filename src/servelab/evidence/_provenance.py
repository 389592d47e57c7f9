"""Provenance of a run: versions, git commit, catalog hash, host.

- ``catalog_hash``: sha256 over the catalog's data files (``catalog/data/*``), each
  contributing its file name and bytes in sorted name order — two runs with the same
  hash used the same GPU, model and workload figures.
- ``git_commit``: ``git rev-parse HEAD`` of the current directory's repository, with a
  ``+dirty`` suffix when tracked files differ from it; ``None`` outside a repository or
  without git.
- ``versions``: servelab, Python, numpy, pyarrow, pydantic and the platform.
"""

from __future__ import annotations

import hashlib
import platform
import socket
import subprocess
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path

__all__ = ["catalog_hash", "git_commit", "versions", "hostname", "file_sha256"]


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=1)
def catalog_hash() -> str:
    """sha256 over the catalog data files (name + bytes, sorted by name)."""
    h = hashlib.sha256()
    data = resources.files("servelab.catalog").joinpath("data")
    for entry in sorted(data.iterdir(), key=lambda p: p.name):
        if entry.is_file():
            h.update(entry.name.encode())
            h.update(b"\0")
            h.update(entry.read_bytes())
    return h.hexdigest()


def git_commit(cwd: str | Path | None = None) -> str | None:
    """HEAD commit of the repository around ``cwd`` (``+dirty`` if modified), else None."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        commit = head.stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
            capture_output=True, text=True, timeout=10,
        )
        return commit + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """Versions of servelab, Python and the libraries a result depends on."""
    return {
        "servelab": _version("servelab"),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "pyarrow": _version("pyarrow"),
        "pydantic": _version("pydantic"),
        "platform": platform.platform(),
    }


def hostname() -> str:
    return socket.gethostname()
