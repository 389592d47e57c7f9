"""The kernel lab's results rows: defined in :mod:`servelab.kernelrows` (a record format
that the evidence ledger and calibration read without importing the kernel lab)."""

from __future__ import annotations

from typing import Any, Iterable

from ..kernelrows import DEFAULT_RESULTS, METRICS, SCHEMA, ResultRow, append_rows, read_rows

__all__ = ["SCHEMA", "METRICS", "ResultRow", "append_rows", "read_rows", "DEFAULT_RESULTS", "check_rows"]


def check_rows(checks: Iterable[Any], env: dict[str, Any], timestamp: str) -> list[ResultRow]:
    """Results rows (metric ``max_abs_err``) of correctness checks (``harness.CheckResult``),
    measured in the environment ``env`` (``env.environment()``) at ``timestamp``."""
    return [ResultRow(kernel=r.kernel, provider=r.provider, dtype=r.dtype, shape=r.shape,
                      metric="max_abs_err", unit="1", p50=r.max_abs_err, p95=r.max_abs_err,
                      p99=r.max_abs_err, n=r.trials, timestamp=timestamp, **env,
                      config={"phase": "check", "passed": r.passed, "excess": r.excess,
                              "backend": r.backend, "message": r.message})
            for r in checks]
