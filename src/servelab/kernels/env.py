"""Versions and hardware a results row records: GPU name, driver, CUDA, torch, triton.

Reads only: the driver version comes from ``nvidia-smi --query-gpu=driver_version``
when that tool exists (a query, never a setting). Imports torch/triton lazily and
reports ``""`` for whatever is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata

__all__ = ["environment"]


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return ""


def _driver() -> str:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return ""
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""


def environment() -> dict[str, str]:
    """{gpu, driver, cuda, torch, triton} for results rows (empty strings when unknown)."""
    env = {"gpu": "", "driver": _driver(), "cuda": "", "torch": _version("torch"),
           "triton": _version("triton")}
    if env["torch"]:
        import torch

        env["cuda"] = torch.version.cuda or ""
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(torch.cuda.current_device())
    return env
