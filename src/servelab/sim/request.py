"""A request's state inside the simulator, and what one engine step reports.

Times are seconds from the run's start; token counts are integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..catalog.workloads import RequestSpec

__all__ = ["SimRequest", "StepOutcome", "WAITING", "PREFILL", "DECODE", "DONE", "ABORTED"]

WAITING, PREFILL, DECODE, DONE, ABORTED = 0, 1, 2, 3, 4


class SimRequest:
    """A request's state inside the simulator (times in seconds from run start)."""

    __slots__ = (
        "spec", "rid", "idx", "input", "target", "outputs", "computed", "prompt_len",
        "state", "sync", "ctx_join", "out_join", "fin_s_idx", "shared", "chain",
        "registered", "share_upto", "admit_seq", "priority", "arrival_s", "dispatch_s",
        "start_s", "first_token_s", "finish_s", "cached_tokens", "token_times",
        "retries", "status", "reason", "replica", "recompute", "deadline_s", "end_s",
        "pf", "remote",
    )

    def __init__(self, spec: RequestSpec, idx: int) -> None:
        self.spec = spec
        self.rid = spec.id
        self.idx = idx
        self.input = spec.input_tokens
        self.target = max(1, spec.output_tokens)
        self.priority = spec.priority
        self.arrival_s = spec.arrival_s
        self.retries = 0
        self.status = ""
        self.reason = ""
        self.replica: str | None = None
        self.dispatch_s: float | None = None
        self.deadline_s = math.inf
        self.end_s: float | None = None     # when a non-ok status was decided (fleet-owned)
        self.token_times: list[float] | None = None
        self.remote = False                 # KV of the prompt arrives from a prefill replica (P/D)
        self.reset()

    def reset(self) -> None:
        """Back to not-yet-started (used when a client retries elsewhere)."""
        self.outputs = 0
        self.computed = 0
        self.prompt_len = self.input
        self.state = WAITING
        self.sync = self.ctx_join = self.out_join = self.fin_s_idx = 0
        self.shared: list[int] = []
        self.chain: list[int] = []
        self.registered = 0
        self.share_upto = 0
        self.admit_seq = 0
        self.start_s: float | None = None
        self.first_token_s: float | None = None
        self.finish_s: float | None = None
        self.cached_tokens = 0
        self.recompute = False
        self.pf: tuple[float, float, int, float] | None = None   # prefetch: (t_data, s/block, blocks, stop)
        if self.token_times is not None:
            self.token_times = []


@dataclass(kw_only=True)
class StepOutcome:
    duration_s: float
    tokens: list[tuple[str, int]] = field(default_factory=list)   # (request id, new output tokens)
    finished: list[str] = field(default_factory=list)
    preempted: list[str] = field(default_factory=list)
    started: list[tuple[str, float]] = field(default_factory=list)  # (request id, start_s): first scheduled this step
