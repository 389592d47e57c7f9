"""One replica's engine: the scheduler plus time — one step, or a stretch of decode steps.

Event skipping (``max_steps > 1``): when a step is pure decode and nothing waiting
can join, the batch stays the same until the earliest of: a sequence finishes
(heap top), KV blocks run out (from the block-phase histogram), or something outside
the replica happens (the simulator then truncates the stretch). With the perf model's
``decode_affine(B) = (t0, t1)`` — one decode step over contexts summing to C takes
``t0 + t1·C`` — k steps take ``k·t0 + t1·(k·C + B·k(k−1)/2)``: step j (0-based)
sees context C + B·j. Truncation at a time t solves that quadratic for the first
step ending at or after t. Step-by-step mode (``max_steps = 1``, ``exact=True``)
calls ``step_time_s`` for every step and is the reference.

Speculative decoding (``num_speculative_tokens = k``, acceptance rate α) is an
expected-value model: a verification step yields E = (1 − α^(k+1)) / (1 − α) tokens
per sequence on average (Leviathan et al. 2023), so each sequence's tokens come at
the mean rate, one every (verification step + k draft steps) / E. Bursts of accepted
tokens are not modelled (ITL is smoothed; TPOT and E2E keep their mean). Decoders in a
step that also carries prefill chunks advance one token at normal decode cost.

Units: seconds, tokens, blocks.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

from ..perf.deployment import StepBatch
from .config import SchedulerConfig
from .request import DECODE, PREFILL, SimRequest, StepOutcome
from .scheduler import Scheduler

__all__ = ["ReplicaEngine", "StepOutcome", "SimRequest"]

_BIG = 1 << 62


class ReplicaEngine(Scheduler):
    """Scheduler + KV cache of one replica; steppable (``step``) or skipping (``begin``/``commit``)."""

    def __init__(
        self,
        deployment: Any,
        scheduler: SchedulerConfig,
        *,
        step_model: Any = None,
        name: str = "replica-0",
        exact: bool = False,
        record_token_times: bool = False,
        priority_preemption: bool = False,
        chains: dict | None = None,
    ) -> None:
        if step_model is None:
            from ..perf import StepModel
            step_model = StepModel(deployment)
        num_blocks = scheduler.num_kv_blocks
        if num_blocks is None:
            from ..errors import InfeasibleError
            from ..perf import memory_budget
            budget = memory_budget(deployment)
            if not budget.feasible:
                raise InfeasibleError(budget.reason)
            num_blocks = budget.kv_capacity_tokens // scheduler.block_size
        super().__init__(scheduler, int(num_blocks), name=name, record_token_times=record_token_times,
                         priority_preemption=priority_preemption, chains=chains)
        self.model = step_model
        # the perf model's StepModel: mixed steps timed without building a StepBatch
        # (same arithmetic); any other step model goes through step_time_s
        from ..perf.step import StepModel
        self._mixed = (step_model.mixed_time_s if type(step_model).step_time_s is StepModel.step_time_s
                       and hasattr(step_model, "mixed_time_s") else None)
        self.exact = exact
        if self.kv_policy is not None:
            self.init_policy(step_model)
        self._affine: dict[int, tuple[float, float]] = {}
        # plan in flight
        self.active = False
        self.p_t = self.p_end = self.p_t0 = self.p_t1 = 0.0
        self.p_k = self.p_B = self.p_C = 0
        self.p_chunks: list[tuple[SimRequest, int]] = []
        self.last_first: list[SimRequest] = []

    def _affine_of(self, b: int) -> tuple[float, float]:
        """(t0, t1) of one decode step per token of each sequence; with speculative
        decoding, a verification step over b·(k+1) rows (fixed part from
        ``decode_affine(b·(k+1))``, KV read once: t1 of ``decode_affine(b)``) plus k draft
        steps, divided by the expected tokens per step E."""
        a = self._affine.get(b)
        if a is None:
            k = self.cfg.num_speculative_tokens
            t0, t1 = self.model.decode_affine(b)
            if k:
                v0 = self.model.decode_affine(b * (k + 1))[0]
                e = self.cfg.spec_tokens_per_step
                t0, t1 = (v0 + k * self.cfg.spec_draft_cost * t0) / e, t1 / e
            a = self._affine[b] = (t0, t1)
        return a

    # ------------------------------------------------------------------ plan / commit
    def begin(self, now_s: float, max_steps: int = _BIG) -> float | None:
        """Schedule the next step (or decode stretch) starting at ``now_s``; its end time,
        or None when there is nothing to run. Call :meth:`commit` at that time."""
        assert not self.active, "begin() while a step is in flight"
        if self.pending_aborts:
            self._apply_aborts()
        self.p_t = now_s
        chunks = self._schedule()
        B = self.B
        if not chunks and not B:
            return None
        C = self.C
        self.p_chunks = chunks
        if chunks or self.exact:
            if chunks:
                mixed = self._mixed
                if mixed is not None:
                    dur = mixed([(n, r.computed) for r, n in chunks], B, C)
                else:
                    dur = self.model.step_time_s(StepBatch(tuple((n, r.computed) for r, n in chunks), B, C))
                dur += self.p_extra_s
            elif self.cfg.num_speculative_tokens:
                t0, t1 = self._affine_of(B)
                dur = t0 + t1 * C
            elif self._mixed is not None:
                t0, t1 = self.model.decode_affine(B)       # = step_time_s(StepBatch((), B, C))
                dur = t0 + t1 * C
            else:
                dur = self.model.step_time_s(StepBatch((), B, C))
            self.p_k = 1
            self.p_t0, self.p_t1 = dur, 0.0
            self.p_B = 0
            end = now_s + dur
        else:
            a = self._affine.get(B)
            t0, t1 = a if a is not None else self._affine_of(B)
            k = 1
            if not self.p_preempted and max_steps > 1:
                heap = self.fin_heap
                while heap:
                    top = heap[0]
                    r = top[2]
                    if r.state == DECODE and r.fin_s_idx == top[0]:
                        break
                    heapq.heappop(heap)
                k = min(max_steps, heap[0][0] - self.S) if heap else max_steps
                if k > 1:
                    pool = self.pool             # _kv_steps' first test, inline
                    free = pool.free_uncached + len(pool.evictable) if self.plain_pool else pool.num_free()
                    if B * (-(-(k - 1) // self.bs)) > free:
                        k = min(k, self._kv_steps(k))
            self.p_k = k
            self.p_t0, self.p_t1, self.p_B, self.p_C = t0, t1, B, C
            end = now_s + k * t0 + t1 * (k * C + B * k * (k - 1) * 0.5)
        self.p_end = end
        self.active = True
        return end

    def _kv_steps(self, k: int) -> int:
        """Largest k' <= k such that steps 2..k' find their KV blocks."""
        free = self.pool.num_free()
        B = self.B
        bs = self.bs
        if B * (-(-(k - 1) // bs)) <= free:
            return k
        full, rem = divmod(free, B)
        m = full * bs
        s0 = self.S + 1 + m
        cnt = self.cnt
        for i in range(bs):
            c = cnt[(-(s0 + i)) % bs]
            if c > rem:
                break
            rem -= c
            m += 1
        return min(k, 1 + m)

    def _time_at(self, j: int) -> float:
        if self.p_k == 1 and self.p_t1 == 0.0 and self.p_B == 0:
            return self.p_t + self.p_t0 * j
        return self.p_t + j * self.p_t0 + self.p_t1 * (j * self.p_C + self.p_B * j * (j - 1) * 0.5)

    def truncate(self, t: float) -> float | None:
        """Cut the stretch in flight after the step running at time ``t``; new end or None."""
        if not self.active or self.p_k <= 1 or t >= self.p_end:
            return None
        # a stretch (k > 1, B > 0): _time_at(j) is the quadratic, written out inline below
        p_t, t0, t1, B, C = self.p_t, self.p_t0, self.p_t1, self.p_B, self.p_C
        a = 0.5 * t1 * B
        b = t0 + t1 * (C - 0.5 * B)
        x = t - p_t
        if a > 0:
            j = math.ceil((-b + math.sqrt(b * b + 4 * a * x)) / (2 * a))
        else:
            j = math.ceil(x / b) if b > 0 else 1
        if j < 1:
            j = 1
        while j > 1 and p_t + (j - 1) * t0 + t1 * ((j - 1) * C + B * (j - 1) * (j - 2) * 0.5) >= t:
            j -= 1
        while True:
            end = p_t + j * t0 + t1 * (j * C + B * j * (j - 1) * 0.5)
            if end >= t:
                break
            j += 1
        if j >= self.p_k:
            return None
        self.p_k = j
        self.p_end = end
        return end

    def steps_done(self, t: float) -> int:
        """Steps of the plan in flight that have ended by time ``t``."""
        if not self.active:
            return 0
        lo, hi = 0, self.p_k
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._time_at(mid) <= t:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def commit(self) -> list[SimRequest]:
        """Apply the plan in flight at its end time; returns requests that finished."""
        assert self.active
        self.active = False
        T = self.p_end
        k = self.p_k
        S0 = self.S
        B = self.B
        if k > 1:
            self.pool.allocate(self._need(S0 + 1, k - 1))
        if self.record_times:
            self.times.extend(self._time_at(j) for j in range(1, k + 1))
        self.S = S0 + k
        self.C += B * k
        finished: list[SimRequest] = []
        first: list[SimRequest] = []
        if self.p_chunks:
            self._commit_chunks(T, first, finished)
        heap = self.fin_heap
        S = self.S
        if heap and heap[0][0] <= S:
            pop = heapq.heappop
            leave = self._leave_decode
            finish = self._finish
            while heap and heap[0][0] <= S:
                fin, _i, r = pop(heap)
                if r.state != DECODE or r.fin_s_idx != fin:
                    continue
                leave(r)
                finish(r, T)
                finished.append(r)
        self.last_first = first
        if self.pending_aborts:
            self._apply_aborts()
        return finished

    def _commit_chunks(self, T: float, first: list[SimRequest], finished: list[SimRequest]) -> None:
        for r, n in self.p_chunks:
            if r.state != PREFILL:
                continue
            r.computed += n
            if r.share_upto > r.registered:
                self._register(r)
            if r.computed >= r.prompt_len:
                r.outputs += 1
                if r.first_token_s is None:
                    r.first_token_s = T
                if r.token_times is not None:
                    r.token_times.append(T)
                first.append(r)
                self.prefilling.remove(r)
                if r.outputs >= r.target:
                    self._finish(r, T)
                    finished.append(r)
                else:
                    self._join_decode(r)
        self.p_chunks = []

    # ------------------------------------------------------------------ step API
    def step(self, now_s: float) -> StepOutcome:
        """Run one engine step starting at ``now_s`` (state advanced to its end)."""
        end = self.begin(now_s, 1)
        preempted = [r.rid for r in self.last_preempted]
        if end is None:
            return StepOutcome(duration_s=0.0, preempted=preempted)
        live = list(self.decoding)
        started = [(r.rid, now_s) for r, _ in self.p_chunks if r.start_s == now_s]
        finished = self.commit()
        tokens = [(rid, 1) for rid in live]
        tokens += [(r.rid, 1) for r in self.last_first]
        return StepOutcome(duration_s=end - now_s, tokens=tokens,
                           finished=[r.rid for r in finished], preempted=preempted, started=started)

    def stats(self, now_s: float | None = None) -> dict[str, Any]:
        """vLLM-style gauges; with ``now_s`` inside a stretch, KV usage at that moment."""
        free = self.pool.num_free()
        if now_s is not None and self.active and self.p_k > 1:
            j = self.steps_done(now_s)
            free -= self._need(self.S + 1, min(j, self.p_k - 1))
        return {
            "running": len(self.prefilling) + self.B,
            "waiting": self.num_waiting,
            "kv_usage_perc": 1.0 - free / self.pool.num_blocks,
            "num_preempted": self.num_preempted,
            "prefix_cache_hit_rate": self.pool.hit_rate(),
            "lora_loads": self.lora_loads,
            "cpu_kv_hit_tokens": self._tier_hits().get("dram", 0),
            "kv_tier_hit_tokens": self._tier_hits(),
            "kv_tier_blocks": dict(zip(self.tier_names, (len(t) for t in self.pool.tiers))),
            **self.policy_stats(),
        }

    def policy_stats(self) -> dict[str, int]:
        """Tier-policy counters (empty without a policy): blocks pinned now, blocks that
        loaded at the first tier's rate thanks to a prefetch."""
        if self.kv_policy is None:
            return {}
        return {"kv_pinned_blocks": len(getattr(self.pool, "pinned", ())),
                "kv_prefetched_blocks": self.pf_landed}

    def _tier_hits(self) -> dict[str, int]:
        """Prefix tokens loaded back from each offload tier (by tier name)."""
        return dict(zip(self.tier_names, self.pool.tier_hit_tokens))
