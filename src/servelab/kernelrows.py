"""Kernel-lab results rows (a record format): one JSON object per line, appended, never rewritten.

Every measurement (and every correctness check, when asked) is one row::

    {"schema": "servelab.kernels/1", "kernel": "rmsnorm", "provider": "triton",
     "dtype": "bf16", "shape": {"rows": 4096, "hidden": 8192}, "metric": "latency",
     "unit": "s", "p50": 1.2e-05, "p95": ..., "p99": ..., "n": 200,
     "gpu": "NVIDIA H200", "driver": "...", "cuda": "12.x", "torch": "2.x", "triton": "3.x",
     "timestamp": "2026-01-01T00:00:00+00:00", "run_id": "...", "config": {...}}

Metrics and units (see docs/kernels.md for their definitions):
``latency`` [s], ``bandwidth`` [GB/s], ``throughput`` [TFLOP/s],
``frac_copy_bw`` and ``frac_matmul_peak`` [fraction of the peaks measured at the start
of the same run], ``peak_copy_bw`` [GB/s], ``peak_matmul`` [TFLOP/s],
``dram_throughput_pct`` [%] (Nsight Compute), ``max_abs_err`` [1] (correctness checks).
Rate metrics' percentiles are taken at the latency percentiles, so ``p95`` of
``bandwidth`` is the bandwidth of the p95 (slower) call and is lower than ``p50``.
The file is JSONL so an interrupted run keeps every row already written.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from .errors import ConfigError

__all__ = ["SCHEMA", "METRICS", "ResultRow", "append_rows", "read_rows", "DEFAULT_RESULTS"]

SCHEMA = "servelab.kernels/1"
DEFAULT_RESULTS = Path("benchmarks/results/kernels.jsonl")

METRICS: dict[str, str] = {
    "latency": "s",
    "bandwidth": "GB/s",
    "throughput": "TFLOP/s",
    "frac_copy_bw": "fraction",
    "frac_matmul_peak": "fraction",
    "peak_copy_bw": "GB/s",
    "peak_matmul": "TFLOP/s",
    "dram_throughput_pct": "%",
    "max_abs_err": "1",
}


_REQUIRED = ("kernel", "provider", "dtype", "shape", "metric", "unit", "p50", "p95", "p99")


@dataclass(frozen=True, kw_only=True)
class ResultRow:
    kernel: str
    provider: str
    dtype: str
    shape: dict[str, Any]
    metric: str
    unit: str
    p50: float
    p95: float
    p99: float
    n: int = 1
    gpu: str = ""
    driver: str = ""
    cuda: str = ""
    torch: str = ""
    triton: str = ""
    timestamp: str = ""
    run_id: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"unknown metric {self.metric!r}; known: {', '.join(METRICS)}")
        if self.unit != METRICS[self.metric]:
            raise ConfigError(
                f"metric {self.metric!r} has unit {METRICS[self.metric]!r}, not {self.unit!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        d = self.to_dict()
        for k in ("p50", "p95", "p99"):   # JSON has no NaN/inf; store them as null
            if not math.isfinite(d[k]):
                d[k] = None
        return json.dumps(d, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ResultRow":
        if not isinstance(d, dict):
            raise ConfigError(f"a result row must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown result fields {sorted(unknown)}; known: {sorted(names)}")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise ConfigError(f"result row lacks {', '.join(missing)}; required: {', '.join(_REQUIRED)}")
        if d.get("schema", SCHEMA) != SCHEMA:
            raise ConfigError(f"unknown results schema {d.get('schema')!r}; expected {SCHEMA!r}")
        d = dict(d)
        for k in ("p50", "p95", "p99"):
            if d.get(k) is None:
                d[k] = math.nan
            elif isinstance(d[k], bool) or not isinstance(d[k], (int, float)):
                raise ConfigError(f"result field {k!r} must be a number or null, got {d[k]!r}")
            elif d[k] < 0 or (d[k] == 0 and d.get("metric") == "latency"):
                raise ConfigError(f"result field {k!r} of metric {d.get('metric')!r} must be "
                                  f"{'> 0' if d.get('metric') == 'latency' else '>= 0'}, got {d[k]!r}")
        if "n" in d and (isinstance(d["n"], bool) or not isinstance(d["n"], int)):
            raise ConfigError(f"result field 'n' must be an integer, got {d['n']!r}")
        for k in ("shape", "config"):
            if k in d and not isinstance(d[k], dict):
                raise ConfigError(f"result field {k!r} must be a JSON object, got {d[k]!r}")
        return cls(**d)

    def shape_str(self) -> str:
        return "×".join(f"{k}={v}" for k, v in self.shape.items())


def append_rows(path: str | Path, rows: Iterable[ResultRow]) -> int:
    """Append rows to the JSONL file (created with its folder); returns how many."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with p.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(row.to_json() + "\n")
            n += 1
        f.flush()
    return n


def read_rows(path: str | Path) -> list[ResultRow]:
    """Read every row; a truncated last line (interrupted write) is skipped."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"results file {str(p)!r} does not exist")
    rows: list[ResultRow] = []
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"results file {str(p)!r} is not UTF-8 text (JSON lines): {exc}") from None
    except OSError as exc:
        raise ConfigError(f"results file {str(p)!r} cannot be read: {exc.strerror or exc}") from None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ConfigError(f"{p}:{i + 1}: not a JSON object") from None
        try:
            rows.append(ResultRow.from_dict(d))
        except ConfigError as exc:
            raise ConfigError(f"{p}:{i + 1}: {exc}") from None
    return rows
