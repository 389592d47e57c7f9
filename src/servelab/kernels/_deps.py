"""Lazy access to the ``gpu`` extra (torch, triton) and to Triton's interpreter mode.

The base servelab install never imports torch or triton. Modules of this package that
define Triton kernels (``rmsnorm``, ``matmul``, ``decode_attention``, ``decode_step``)
import them at module load, so they are only imported through :func:`require_gpu_extra`
callers or explicitly.

Triton decides at *decoration* time whether a ``@triton.jit`` function is compiled or
interpreted (``TRITON_INTERPRET=1``), and it decorates its own standard library
(``tl.sum``, ``tl.max``, …) when ``triton`` is first imported, so the interpreter must be
chosen before ``triton`` is imported at all; see :func:`use_interpreter`.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from ..errors import ServelabError

__all__ = [
    "GpuExtraMissing", "KERNEL_MODULES", "gpu_extra_available", "require_gpu_extra",
    "interpreting", "use_interpreter", "cuda_available", "prepare_device",
]

# Modules whose import decorates Triton kernels (and so freezes the interpreter choice).
KERNEL_MODULES: tuple[str, ...] = (
    "servelab.kernels.rmsnorm", "servelab.kernels.matmul",
    "servelab.kernels.decode_attention", "servelab.kernels.decode_step",
)

INSTALL_HINT = "pip install 'servelab[gpu]'  (CPU-only: pip install torch triton)"


class GpuExtraMissing(ServelabError):
    """torch or triton is not installed; the message says how to install them."""


def gpu_extra_available() -> bool:
    """True when both torch and triton can be imported (checked without importing)."""
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "triton"))


def require_gpu_extra() -> None:
    """Raise :class:`GpuExtraMissing` naming the missing packages and the install command."""
    missing = [m for m in ("torch", "triton") if importlib.util.find_spec(m) is None]
    if missing:
        raise GpuExtraMissing(
            f"the kernel lab needs the 'gpu' extra; missing: {', '.join(missing)}. "
            f"Install with: {INSTALL_HINT}"
        )


def interpreting() -> bool:
    """True when Triton kernels run in the CPU interpreter (``TRITON_INTERPRET`` set)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def use_interpreter(on: bool = True) -> None:
    """Select Triton's interpreter (``on``) or the compiler before kernels are imported.

    Raises :class:`ServelabError` if triton or a kernel module was already imported in
    the other mode, because Triton fixed the choice when it decorated the functions.
    """
    # triton itself decorates its standard library (tl.sum, …) at import, so it counts too.
    loaded = [m for m in ("triton", *KERNEL_MODULES) if m in sys.modules]
    if loaded and interpreting() != on:
        raise ServelabError(
            f"{loaded} were already imported with interpreter="
            f"{interpreting()}; choose the mode before importing them (fresh process)"
        )
    if on:
        os.environ["TRITON_INTERPRET"] = "1"
    else:
        os.environ.pop("TRITON_INTERPRET", None)


def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA device (imports torch)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def prepare_device(device: str) -> None:
    """Before kernels are imported: ``device`` is ``cpu`` (Triton's interpreter) or
    ``cuda`` (compiled), the ``gpu`` extra is installed, the interpreter is chosen
    accordingly. ``ServelabError`` (``GpuExtraMissing``) naming what is wrong."""
    if device not in ("cpu", "cuda"):
        raise ServelabError(f"unknown device {device!r}; known: cpu, cuda")
    require_gpu_extra()
    use_interpreter(device == "cpu")
