"""Per-request records and run metadata: the one schema every run produces.

Simulated, emulated and measured runs all yield ``RequestRecord`` lists plus one
``RunMeta``; records never say which produced them (``RunMeta.kind`` does).
Times are seconds from the run's start (``RunMeta.started_at``), on a monotonic
clock for measured runs.

Field meanings:
- ``arrival_s``: when the request was offered — the scheduled send time for a load
  client (so dispatch lateness = ``dispatch_s - arrival_s`` is never hidden), the
  arrival at the router for the simulator.
- ``dispatch_s``: when it reached a replica (simulator) / was actually sent (client).
- ``start_s``: when a replica first scheduled it into a batch (None if unknown).
- ``first_token_s`` / ``finish_s``: first output token / last byte or token.
- ``token_times_s``: absolute time of each output token (first == first_token_s),
  or None when not materialized (the simulator's event skipping); then ``itl_*`` metrics
  fall back to TPOT.
- ``status``: ok | rejected (admission: 429/503, queue full) | timed_out | failed
  (error, crash, broken stream) | cancelled (run stopped). ``reason`` says why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

__all__ = ["Status", "STATUSES", "RequestRecord", "RunMeta"]

Status = Literal["ok", "rejected", "timed_out", "failed", "cancelled"]
STATUSES: tuple[str, ...] = ("ok", "rejected", "timed_out", "failed", "cancelled")


@dataclass(kw_only=True, slots=True)
class RequestRecord:
    id: str
    arrival_s: float
    input_tokens: int
    output_tokens: int = 0
    status: Status = "ok"
    reason: str = ""
    dispatch_s: float | None = None
    start_s: float | None = None
    first_token_s: float | None = None
    finish_s: float | None = None
    token_times_s: list[float] | None = None
    cached_tokens: int = 0
    replica: str | None = None
    priority: int = 0
    adapter: str | None = None
    retries: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RequestRecord":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown record fields {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)


@dataclass(kw_only=True)
class RunMeta:
    run_id: str
    kind: str                      # simulate | bench | emulate | import-vllm | import-guidellm
    started_at: str                # ISO-8601 UTC wall clock
    finished_at: str | None = None
    duration_s: float | None = None   # offered-load window used for throughput
    complete: bool = False         # False until the run ended normally
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    host: str = ""
    gpu: str | None = None
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunMeta":
        return cls(**d)
