"""Is the process that wrote a ``running`` ledger row still alive?

A row stores the writer's pid and its start time (field 22 of ``/proc/<pid>/stat``,
clock ticks since boot). The writer is alive when ``kill(pid, 0)`` succeeds, the
process is not a zombie, and its start time is unchanged (otherwise the pid was
reused by a newer process). Without ``/proc`` (non-Linux) only the pid is checked.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["proc_start", "pid_alive"]


def proc_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux /proc), None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name (field 2) may contain spaces, so split after ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields and fields[0] == "Z":   # zombie: dead, not yet reaped
        return "zombie"
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now_start = proc_start(pid)
    if now_start == "zombie":
        return False
    return start is None or now_start is None or now_start == start
