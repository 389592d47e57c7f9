"""Kernel lab benchmark — a thin wrapper over `servelab kernels`.

    python benchmarks/bench_kernels.py [--quick] [--kernel NAME ...] [--ncu]

On a CUDA GPU: `servelab kernels run` (measured peaks, correctness, timing; rows appended
to benchmarks/results/kernels.jsonl) followed by `servelab kernels report` with an HTML
report at benchmarks/results/kernels.html. Without a GPU: says that GPU numbers are not
measured and runs `servelab kernels check` (Triton interpreter, CPU) instead.
"""

from __future__ import annotations

import sys

from servelab.cli import app
from servelab.kernels._deps import cuda_available, gpu_extra_available
from pathlib import Path

from servelab.kernels.results import DEFAULT_RESULTS as _COMMITTED

# `make bench` writes to $SERVELAB_BENCH_OUT; `make bench-record` copies into benchmarks/results/.
DEFAULT_RESULTS = (Path(__import__("os").environ["SERVELAB_BENCH_OUT"]) / _COMMITTED.name
                   if __import__("os").environ.get("SERVELAB_BENCH_OUT") else _COMMITTED)


def _invoke(args: list[str]) -> int:
    try:
        app(args, standalone_mode=False)
    except SystemExit as exc:          # typer.Exit inside standalone_mode=False
        return int(exc.code or 0)
    except Exception as exc:  # noqa: BLE001 — click's Exit carries the code
        return int(getattr(exc, "exit_code", 1))
    return 0


def main(argv: list[str]) -> int:
    if not gpu_extra_available():
        print("the kernel lab needs the gpu extra: pip install 'servelab[gpu]'")
        return 2
    if not cuda_available():
        print("no CUDA GPU visible: GPU numbers not measured; running the interpreter checks")
        return _invoke(["kernels", "check"])
    rc = _invoke(["kernels", "run", "--results", str(DEFAULT_RESULTS), *argv])
    _invoke(["kernels", "report", str(DEFAULT_RESULTS), "--html", str(DEFAULT_RESULTS.with_suffix(".html"))])
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
