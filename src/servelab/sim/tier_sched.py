"""The scheduler's side of the KV tier policies (:mod:`.tiering`): building the block
pool, the ``cost`` policy's write-side reference and read-side choice, and prefetch of
queued requests' prefixes (start, landing, holding requests until it ends).

A mixin of :class:`~.scheduler.Scheduler`: it reads the scheduler's queues, pool, batch
(``B``, ``C``), step start ``p_t`` and step model (``model``, set by the engine). The
equations and sources are in :mod:`.tiering`.

Units: seconds, blocks.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..perf.deployment import StepBatch
from .kv import BlockPool
from .request import WAITING, SimRequest
from .tiering import PolicyBlockPool, best_restore

__all__ = ["TierScheduling"]


class TierScheduling:
    """Tier-policy state and steps of one replica's scheduler."""

    cfg: Any
    bs: int
    pool: Any
    tier_cost: list[tuple[float, float]]

    def _init_tiers(self, engine: Any, num_blocks: int, tiers: tuple[Any, ...]) -> None:
        pol = engine.kv_policy
        self.kv_policy = pol if pol is not None and pol.active else None
        if self.kv_policy is None:
            self.pool = BlockPool(num_blocks, tiers=[t.blocks for t in tiers])
        else:
            if pol.prefetch and len(tiers) < 2:
                raise ConfigError(f"KV prefetch needs at least two offload tiers (it copies blocks up "
                                  f"into the first); got {[t.name for t in tiers]}")
            self.pool = PolicyBlockPool(num_blocks, [t.blocks for t in tiers], policy=pol)
        self.pf_on = self.kv_policy is not None and pol.prefetch
        self.pf_free = 0.0               # prefetch channel busy until
        self.pf_wait = self.pf_on and pol.prefetch_wait
        self.pf_hold: list[SimRequest] = []  # waiting for their prefetch (pf_wait)
        self.wake_s: float | None = None     # earliest end of a held prefetch
        self.wake_pushed: float | None = None  # the wake-up the fleet loop has scheduled
        self.pf_landed = 0               # blocks that loaded at tier-0 rate thanks to a prefetch
        self.recompute_s_per_block = 0.0

    def init_policy(self, model) -> None:
        """Write side of the ``cost`` policy: a tier takes blocks only if loading one beats
        recomputing one (marginal prefill of a block in a ``ref_chunk`` prefill, empty batch)."""
        pol = self.kv_policy
        if pol is None or pol.policy != "cost":
            return
        n = pol.ref_chunk
        st = model.step_time_s
        d = st(StepBatch(((n, 0),), 0, 0)) - st(StepBatch(((n // 2, 0),), 0, 0))
        self.recompute_s_per_block = d / (n // 2) * self.bs
        self.pool.keep = [per < self.recompute_s_per_block for per, _lat in self.tier_cost]

    def _prefetch(self, r: SimRequest, now_s: float) -> None:
        """Start copying the part of ``r``'s prefix held below the first tier up into it."""
        s = r.spec
        if not self.cfg.enable_prefix_caching or not (r.recompute or s.conversation >= 0
                                                      or s.prefix_group >= 0):
            return
        look = (r.prompt_len - 1) // self.bs
        chain = self._chain(r, look)
        pool = self.pool
        where = pool.match_tiers(chain, pool.match(chain, look), look)
        n = sum(1 for i in where if i > 0)
        if not n:
            return
        per, lat = self.tier_cost[max(where)]
        dl = self.kv_policy.prefetch_deadline_s
        stop = r.arrival_s + dl if dl is not None else float("inf")
        t_data = max(now_s, self.pf_free) + lat
        if t_data >= stop:
            return
        self.pf_free = min(t_data + n * per, stop)
        r.pf = (t_data, per, n, stop)

    def _pf_release(self, now_s: float) -> None:
        """Requests whose prefetch has ended (or hit its deadline) join the queue in
        arrival order; ``wake_s`` is the next such time among those still held."""
        keep: list[SimRequest] = []
        wake = None
        for r in self.pf_hold:
            if r.state != WAITING:
                continue                              # aborted while held
            t_data, per, n, stop = r.pf               # type: ignore[misc]
            ready = min(t_data + n * per, stop)
            if ready <= now_s:
                self.num_waiting -= 1                 # _wpush counts it again
                if self.priority:
                    self._wpush(r, front=False)
                else:
                    q = self.waiting_q
                    i = 0
                    while i < len(q) and q[i].arrival_s <= r.arrival_s:
                        i += 1
                    q.insert(i, r)
                    self.num_waiting += 1
            else:
                keep.append(r)
                wake = ready if wake is None or ready < wake else wake
        self.pf_hold = keep
        self.wake_s = wake

    def _policy_restore(self, r: SimRequest, hits: int, where: list[int], loaded: list[int],
                        L: int) -> tuple[list[int], list[int], int]:
        """Prefetched blocks and the ``cost`` read side: which tier blocks to load."""
        landed = 0
        if r.pf is not None:
            t_data, per, n, stop = r.pf
            t = min(self.p_t, stop)
            if t >= t_data + n * per:             # transfer over: all landed (no float floor; per may be 0)
                landed = n
            elif t > t_data:
                landed = min(n, int((t - t_data) / per))
        if self.kv_policy.policy == "cost":
            bs, B, C = self.bs, self.B, self.C
            st = self.model.step_time_s                 # type: ignore[attr-defined]
            base = st(StepBatch(((L - hits * bs, hits * bs),), B, C))

            def rec(j: int) -> float:
                return base - st(StepBatch(((L - (hits + j) * bs, (hits + j) * bs),), B, C))

            j = best_restore(where, self.tier_cost, landed, rec)
            if j < len(where):
                self.pool.untake_tiers(loaded[j:], where[j:])
                where, loaded = where[:j], loaded[:j]
        landed = min(landed, sum(1 for i in where if i > 0))
        return where, loaded, landed

