"""Writing output files so that a reader never sees half of one.

Every file servelab writes as a whole (run folders, reports, calibrations, HTML)
goes through :func:`atomic_write_text` / :func:`atomic_write_bytes` /
:func:`atomic_path`: the content is written to a temporary file in the same
folder, flushed and fsynced, then renamed over the target (``os.replace`` is atomic
on POSIX within one file system). If writing fails (a full disk, a permission
error) the temporary file is removed and the target is left as it was.

:func:`check_output_path` refuses a target that exists and is not a regular file —
a folder, a device node, a FIFO, a socket or a symbolic link (whose target would
otherwise be replaced by a regular file) — and one whose folder cannot be created
or written. Errors are :class:`~servelab.errors.ConfigError` naming the path.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import ConfigError

__all__ = ["check_output_path", "check_output_dir", "atomic_write_text", "atomic_write_bytes", "atomic_path"]


def _describe(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_output_path(path: str | os.PathLike[str], *, what: str = "output file") -> Path:
    """``path`` as a Path if a regular file may be written there; else ConfigError."""
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise ConfigError(f"{what} {str(p)!r}: {e.strerror or e}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{what} {str(p)!r} exists and is {_describe(st.st_mode)}; "
                          "give the path of a regular file (it is replaced) or of a new one")
    parent = p.parent
    _check_folder(parent, what=f"folder of {what} {str(p)!r}")
    return p


def _check_folder(d: Path, *, what: str) -> None:
    probe = d
    while not probe.exists():                 # the first existing ancestor must be writable
        if probe.parent == probe:
            break
        if probe.is_symlink():                # a dangling link: cannot create through it
            raise ConfigError(f"{what}: {str(probe)!r} is a broken symbolic link")
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"{what}: {str(probe)!r} is not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: {str(probe)!r} is not writable")


def check_output_dir(path: str | os.PathLike[str], *, what: str = "output folder") -> Path:
    """``path`` as a Path if it is (or can be created as) a writable folder."""
    p = Path(path)
    if p.exists() or p.is_symlink():
        if not p.is_dir():
            try:
                mode = os.lstat(p).st_mode
            except OSError:
                mode = 0
            raise ConfigError(f"{what} {str(p)!r} exists and is {_describe(mode)}; give a folder path")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ConfigError(f"{what} {str(p)!r} is not writable")
        return p
    _check_folder(p, what=what)
    return p


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``.

    ``with atomic_path(p) as tmp: pq.write_table(table, tmp)``. On an exception the
    temporary file is removed and ``path`` is untouched.
    """
    p = check_output_path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    p = Path(path)
    with atomic_path(p) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return p


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))
