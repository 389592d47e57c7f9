"""The kernel lab's results rows: defined in :mod:`servelab.kernelrows` (a record format
that the evidence ledger and calibration read without importing the kernel lab)."""

from __future__ import annotations

from ..kernelrows import DEFAULT_RESULTS, METRICS, SCHEMA, ResultRow, append_rows, read_rows

__all__ = ["SCHEMA", "METRICS", "ResultRow", "append_rows", "read_rows", "DEFAULT_RESULTS"]
