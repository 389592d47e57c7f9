"""Tiered KV policies: which blocks stay in HBM, which go to a slower tier, which are
read back from it, and prefetch of queued requests' prefixes.

Policies (``KVPolicy.policy``):

- ``lru`` — the cascade of :mod:`.kv`: HBM evicts least recently freed first, each tier
  passes its least recently used block down, a prefix found in a tier is always loaded.
- ``priority`` — a cached block remembers the best (lowest) priority of the requests that
  released it. Blocks of priority ``<= pin_priority`` are *pinned* in HBM, at most
  ``pin_blocks`` of them: they are evicted only when no unpinned cached block is left.
  A tier over capacity demotes its least recently used block that is not high-priority
  (scanning from the LRU end; if all are, the LRU one). Tiers and reads are as in ``lru``.
- ``cost`` — a block moves to a tier only if restoring it beats recomputing it, and a
  prefix found in the tiers is loaded only as far as that pays:

  * write side (static, per tier): tier i keeps blocks iff
    ``load_s_per_block_i < recompute_s_per_block``, where ``recompute_s_per_block`` is the
    marginal prefill time of one block inside a long prefill (``ref_chunk`` tokens, empty
    batch) from the step model; a block evicted past such a tier skips it (goes to the
    next worthwhile tier, or is dropped);
  * read side (per request, at the current batch): with ``h`` blocks hit in HBM, ``m``
    blocks found in the tiers and ``r = L − (h+m)·block_size`` tokens left, loading the
    first ``j`` tier blocks saves
    ``recompute(j) = T(chunk L − h·bs at context h·bs) − T(chunk L − (h+j)·bs at context (h+j)·bs)``
    (step times with the batch's current decoders B and context sum C) and costs
    ``restore(j) = Σ_tiers touched (latency + n·block_bytes / read_bytes_per_s)``.
    The engine loads the ``j`` (checked at 0, at every point where the tier changes and
    at m) with the largest ``recompute(j) − restore(j)``; 0 (recompute all) if none is > 0.

Prefetch (``prefetch=True``, needs at least two tiers): when a request enters a
replica's queue, the blocks of its prefix that sit in tiers below the first one are
copied up into the first tier's host buffer while it waits (HiCache's L3 → L2
prefetch). One prefetch channel per replica, FIFO: a request's transfer starts when the
channel is free, takes ``latency + n · block_bytes / read_bytes_per_s`` of the slowest
tier it reads, and progresses linearly. At admission, the first
``floor((min(t_admit, deadline) − t_data) / per_block)`` of those blocks (all of them once
the transfer has ended, ``t ≥ t_data + n · per_block``) have landed and
load at the first tier's rate; the rest load from where they are (or are recomputed
under ``cost``). The deadline is ``arrival + prefetch_deadline_s`` (SLO-aware, like
HiCache's ``timeout`` policy, ``prefetch_timeout_base + per_ki_token · n/1024``): a
prefetch stops there even if the request still waits; ``None`` = until admission
(HiCache ``best_effort``). With ``prefetch_wait`` a request whose prefetch is running
stays out of the waiting queue until the prefetch ends or its deadline passes (HiCache's
``timeout`` policy; with no deadline, ``wait_complete``), then joins the queue at its
arrival-order place; the fleet loop wakes the replica at that time. Requests behind it
are not blocked (SGLang skips a request whose prefetch is in progress).

Sources: HiCache prefetch policies (SGLang PR #8692 "Simple prefetch policy":
best_effort / timeout / wait_complete; PR #10512: timeout = base + per_ki_token · n/1024).

Units: seconds, blocks, bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ..errors import ConfigError
from .kv import BlockPool

__all__ = ["KVPolicy", "TIER_POLICIES", "PolicyBlockPool", "restore_s", "best_restore"]

TIER_POLICIES: tuple[str, ...] = ("lru", "priority", "cost")


@dataclass(frozen=True, kw_only=True)
class KVPolicy:
    """How a replica uses its KV tiers (see the module docstring)."""
    policy: str = "lru"
    pin_priority: int = 0                   # priority <= this is "high" (lower = more important)
    pin_blocks: int = 0                     # HBM blocks high-priority prefixes may pin
    prefetch: bool = False                  # copy queued requests' prefixes up a tier
    prefetch_deadline_s: float | None = None  # after arrival; None = until admission
    prefetch_wait: bool = False             # hold a request until its prefetch ends or its deadline
    ref_chunk: int = 2048                   # prefill tokens of the write-side recompute reference

    def __post_init__(self) -> None:
        if self.policy not in TIER_POLICIES:
            raise ConfigError(f"unknown KV tier policy {self.policy!r}; known: {', '.join(TIER_POLICIES)}")
        if self.pin_blocks < 0:
            raise ConfigError(f"pin_blocks must be >= 0, got {self.pin_blocks!r}")
        if self.prefetch_deadline_s is not None and self.prefetch_deadline_s <= 0:
            raise ConfigError(f"prefetch_deadline_s must be > 0 or None, got {self.prefetch_deadline_s!r}")
        if self.ref_chunk < 32:
            raise ConfigError(f"ref_chunk must be >= 32 tokens, got {self.ref_chunk!r}")

    @property
    def active(self) -> bool:
        """Anything beyond the plain LRU cascade."""
        return self.policy != "lru" or self.prefetch


def restore_s(where: list[int], cost: list[tuple[float, float]], upto: int | None = None,
              landed: int = 0) -> float:
    """Load time of the first ``upto`` blocks of ``where`` (tier index per block);
    ``cost[i] = (s_per_block, latency_s)``. The first ``landed`` blocks held in tiers
    below the first were prefetched and load at tier 0's rate."""
    counts = [0] * len(cost)
    n = len(where) if upto is None else upto
    for i in where[:n]:
        if i > 0 and landed > 0:
            landed -= 1
            i = 0
        counts[i] += 1
    return sum(lat + c * per for (per, lat), c in zip(cost, counts) if c)


def best_restore(where: list[int], cost: list[tuple[float, float]], landed: int,
                 recompute_s) -> int:
    """Number of leading tier blocks worth loading (``cost`` policy, read side);
    ``recompute_s(j)``: prefill time saved by not recomputing the first ``j``."""
    cands = {len(where)}
    for j in range(1, len(where)):
        if where[j] != where[j - 1]:
            cands.add(j)
    if landed:
        cands.add(min(len(where), landed))
    best_j, best = 0, 0.0
    for j in sorted(cands):
        gain = recompute_s(j) - restore_s(where, cost, j, landed)
        if gain > best:
            best_j, best = j, gain
    return best_j


class PolicyBlockPool(BlockPool):
    """:class:`~.kv.BlockPool` with priority pinning and per-tier admission (cost)."""

    __slots__ = ("pinned", "pin_cap", "pin_priority", "prio_of", "keep", "hi_tiers")

    def __init__(self, num_blocks: int, tiers: list[int], *, policy: KVPolicy) -> None:
        super().__init__(num_blocks, tiers=tiers)
        self.pinned: OrderedDict[int, None] = OrderedDict()      # high-priority refcount-0 blocks
        self.pin_cap = policy.pin_blocks if policy.policy == "priority" else 0
        self.pin_priority = policy.pin_priority
        self.prio_of: dict[int, int] = {}                         # best priority seen per block
        self.keep: list[bool] = [True] * len(tiers)              # cost: tier takes blocks
        self.hi_tiers = policy.policy == "priority"

    def num_free(self) -> int:
        return self.free_uncached + len(self.evictable) + len(self.pinned)

    def usage(self) -> float:
        return 1.0 - self.num_free() / self.num_blocks

    def acquire(self, hashes: list[int]) -> None:
        cache, ev, pin = self.cache, self.evictable, self.pinned
        for h in hashes:
            rc = cache[h]
            if rc == 0:
                if h in ev:
                    del ev[h]
                else:
                    del pin[h]
            cache[h] = rc + 1

    def release(self, shared: list[int], num_private: int, priority: int = 0) -> None:
        cache, ev, pin, prio = self.cache, self.evictable, self.pinned, self.prio_of
        freed = []
        for h in shared:
            p = prio.get(h)
            if p is None or priority < p:
                prio[h] = priority
            rc = cache[h] - 1
            cache[h] = rc
            if rc == 0:
                freed.append(h)
        # pin head blocks first (a prefix is matched from its head), then queue every
        # freed block tail first, as the LRU cascade does
        room = self.pin_cap - len(pin)
        pinned = set()
        if room > 0:
            for h in freed:
                if prio[h] <= self.pin_priority:
                    pinned.add(h)
                    if len(pinned) >= room:
                        break
        for h in reversed(freed):
            if h in pinned:
                pin[h] = None
            else:
                ev[h] = None
        self.free_uncached += num_private

    def _is_hi(self, h: int) -> bool:
        p = self.prio_of.get(h)
        return p is not None and p <= self.pin_priority

    def _demote(self, h: int) -> None:
        """Put an evicted block into the tier cascade, honouring ``keep`` and priority."""
        tiers, caps, keep = self.tiers, self.tier_cap, self.keep
        last = len(tiers) - 1
        i = 0
        while True:
            while i <= last and not keep[i]:
                i += 1
            if i > last:
                self.tier_dropped += 1
                self.prio_of.pop(h, None)
                return
            t = tiers[i]
            t[h] = None
            if len(t) <= caps[i]:
                return
            h = next(iter(t))
            if self.hi_tiers and self._is_hi(h):
                for x in t:
                    if not self._is_hi(x):
                        h = x
                        break
            del t[h]
            i += 1

    def allocate(self, n: int) -> bool:
        if n <= self.free_uncached:
            self.free_uncached -= n
            return True
        if n > self.num_free():
            return False
        n -= self.free_uncached
        self.free_uncached = 0
        self.evictions += n
        cache = self.cache
        for _ in range(n):
            src = self.evictable if self.evictable else self.pinned
            h, _v = src.popitem(last=False)
            del cache[h]
            if self.tiered:
                self._demote(h)
            else:
                self.prio_of.pop(h, None)
        return True
