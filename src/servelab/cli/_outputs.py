"""Where commands write when no output path is given: ``runs/<command>-<UTC time>``.

The root is ``$SERVELAB_RUNS_DIR`` when set, else ``runs`` in the current folder
(ignored by git). The time stamp has milliseconds, so two runs started in the same
second get different folders.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["default_run_dir", "runs_root"]


def runs_root() -> Path:
    return Path(os.environ.get("SERVELAB_RUNS_DIR") or "runs")


def default_run_dir(command: str) -> Path:
    """``runs/<command>-YYYYmmdd-HHMMSS-mmm`` (not created here)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")[:-3]
    return runs_root() / f"{command}-{stamp}"
