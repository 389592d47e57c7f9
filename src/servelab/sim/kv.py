"""Paged KV cache of one replica, with automatic prefix caching.

Model (after vLLM's v1 KV cache manager, docs "Automatic Prefix Caching"):

- The cache is ``num_blocks`` blocks of ``block_size`` tokens. A sequence whose KV
  cache holds ``n`` computed tokens holds exactly ``ceil(n / block_size)`` blocks.
- Only FULL blocks are hashed. The hash of block ``b`` is ``hash((h[b-1], owner_b))``
  — a chain, so a block matches only if every block before it matches too.
  Simulated tokens have no text: a token is identified by who owns it. Positions
  inside a request's shared prefix belong to its prefix group, the rest of a
  conversation's tokens to the conversation (turn t+1's prompt repeats turn t),
  every other token to the request itself. A block is named by the owner of its
  last token; the chain carries everything before it.
- A cached block has a reference count. At refcount 0 it stays cached and becomes
  evictable; eviction is LRU over evictable blocks (least recently freed first).
- Optional offload tiers below the GPU (``tiers``: capacities in blocks, fastest
  first — host DRAM, then NVMe, …). A cached block evicted from the GPU goes to the
  most-recent end of tier 0's LRU; a tier over capacity pushes its least recently
  used block down to the next tier, and the last tier drops it (cascade
  HBM → DRAM → NVMe → gone). A block is in at most one place: loading it back takes
  it out of its tier, and recomputing it on the GPU (``register``) drops any offloaded
  copy. A prefix lookup that stops on the GPU continues through the tiers (each next
  block in whichever tier holds it, up to the first block no tier has); those blocks
  are loaded back (the caller charges the transfer time) instead of being recomputed
  — the offloading of vLLM's KV connectors / LMCache, without their capacity details.
- Approximation: uncached free blocks are handed out before any cached block is
  evicted (vLLM takes the head of one free queue holding both kinds), so cached
  prefixes live a little longer here than in vLLM. Blocks have no identity here:
  the pool counts uncached free blocks and keeps cached ones by hash.

Units: blocks and tokens (integers).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["BlockPool", "owner_code", "chain_hashes"]

# Owner codes: an int per owner so that hashes are of ints only (stable, fast).
_GROUP, _CONV, _OWN = 1, 2, 3


def owner_code(kind: int, ident: int) -> int:
    """Integer naming the owner of a run of tokens (kind: 1 group, 2 conversation, 3 request)."""
    return (ident << 2) | kind


def chain_hashes(
    num_blocks: int,
    block_size: int,
    *,
    prefix_group: int,
    prefix_tokens: int,
    conversation: int,
    own: int,
    start: tuple[int, ...] | list[int] = (),
) -> list[int]:
    """Hash chain of the first ``num_blocks`` full blocks of a token sequence.

    ``start`` is an already computed prefix of the same chain (it is extended).
    """
    out = list(start)
    h = out[-1] if out else 0
    g_code = owner_code(_GROUP, prefix_group) if prefix_group >= 0 else -1
    tail_code = (
        owner_code(_CONV, conversation) if conversation >= 0 else owner_code(_OWN, own)
    )
    for b in range(len(out), num_blocks):
        last = b * block_size + block_size - 1
        code = g_code if (g_code >= 0 and last < prefix_tokens) else tail_code
        h = hash((h, code))
        out.append(h)
    return out


class BlockPool:
    """Block accounting with prefix caching; all operations O(blocks touched)."""

    __slots__ = ("num_blocks", "free_uncached", "cache", "evictable", "hit_tokens",
                 "query_tokens", "evictions", "tier_cap", "tiers", "tier_hit_tokens", "tiered",
                 "tier_dropped", "tier_superseded")

    def __init__(self, num_blocks: int, cpu_blocks: int = 0,
                 tiers: tuple[int, ...] | list[int] = ()) -> None:
        """``tiers``: offload tier capacities in blocks, fastest first; ``cpu_blocks``
        (older form) is one tier placed first."""
        self.num_blocks = num_blocks
        self.free_uncached = num_blocks
        self.cache: dict[int, int] = {}                 # hash -> refcount
        self.evictable: OrderedDict[int, None] = OrderedDict()  # refcount-0 hashes, LRU first
        self.hit_tokens = 0
        self.query_tokens = 0
        self.evictions = 0
        caps = ([cpu_blocks] if cpu_blocks else []) + [int(c) for c in tiers]
        self.tier_cap: list[int] = caps
        self.tiers: list[OrderedDict[int, None]] = [OrderedDict() for _ in caps]  # LRU first
        self.tier_hit_tokens: list[int] = [0] * len(caps)
        self.tiered = any(c > 0 for c in caps)
        self.tier_dropped = 0               # blocks pushed out of the last tier (gone)
        self.tier_superseded = 0            # offloaded copies dropped because the GPU recomputed them

    def num_free(self) -> int:
        """Blocks available to allocate (uncached free + evictable cached)."""
        return self.free_uncached + len(self.evictable)

    def usage(self) -> float:
        """Fraction of blocks in use (vLLM's ``kv_cache_usage_perc``: cached-free counts as free)."""
        return 1.0 - (self.free_uncached + len(self.evictable)) / self.num_blocks

    def allocate(self, n: int) -> bool:
        """Take ``n`` blocks, evicting LRU cached blocks if needed; False if impossible."""
        if n <= self.free_uncached:
            self.free_uncached -= n
            return True
        if n > self.free_uncached + len(self.evictable):
            return False
        n -= self.free_uncached
        self.free_uncached = 0
        ev = self.evictable
        cache = self.cache
        self.evictions += n
        if not self.tiered:
            for _ in range(n):
                h, _v = ev.popitem(last=False)
                del cache[h]
            return True
        tiers, caps = self.tiers, self.tier_cap
        last = len(tiers) - 1
        for _ in range(n):
            h, _v = ev.popitem(last=False)
            del cache[h]
            # cascade: h enters tier 0; each overfull tier passes its LRU block down
            i = 0
            while True:
                t = tiers[i]
                t[h] = None
                if len(t) <= caps[i]:
                    break
                h, _v = t.popitem(last=False)
                if i == last:
                    self.tier_dropped += 1
                    break
                i += 1
        return True

    def match(self, hashes: list[int], limit: int) -> int:
        """Number of leading blocks of ``hashes[:limit]`` present in the cache."""
        cache = self.cache
        m = 0
        for h in hashes[:limit]:
            if h not in cache:
                break
            m += 1
        return m

    def match_tiers(self, hashes: list[int], start: int, limit: int) -> list[int]:
        """Tier index of each of the blocks ``hashes[start:limit]`` found in a row in the
        offload tiers (stops at the first block no tier holds, or the GPU holds)."""
        tiers = self.tiers
        cache = self.cache
        where: list[int] = []
        for h in hashes[start:limit]:
            if h in cache:
                break
            for i, t in enumerate(tiers):
                if h in t:
                    where.append(i)
                    break
            else:
                break
        return where

    def take_tiers(self, hashes: list[int], where: list[int]) -> None:
        """Pin offloaded blocks that are about to be loaded (out of their tiers' LRUs)."""
        tiers = self.tiers
        for h, i in zip(hashes, where):
            del tiers[i][h]

    def untake_tiers(self, hashes: list[int], where: list[int]) -> None:
        """Undo :meth:`take_tiers` (the load did not happen)."""
        tiers = self.tiers
        for h, i in zip(hashes, where):
            tiers[i][h] = None

    def load_tiers(self, hashes: list[int], where: list[int], block_size: int) -> None:
        """Loaded blocks become GPU cached blocks held once (their GPU blocks were
        allocated); counts the hit tokens of each tier."""
        hits = self.tier_hit_tokens
        for h, i in zip(hashes, where):
            self.cache[h] = 1
            hits[i] += block_size

    def offloaded(self) -> int:
        """Blocks held in the offload tiers."""
        return sum(len(t) for t in self.tiers)

    def acquire(self, hashes: list[int]) -> None:
        """Take a reference on cached blocks (prefix hits)."""
        cache = self.cache
        ev = self.evictable
        for h in hashes:
            rc = cache[h]
            if rc == 0:
                del ev[h]
            cache[h] = rc + 1

    def register(self, h: int) -> bool:
        """Turn one of the caller's private blocks into cached block ``h`` (refcount 1).

        False when ``h`` is already cached (the caller's block then stays private,
        as in vLLM where a duplicate block is not deduplicated)."""
        if h in self.cache:
            return False
        self.cache[h] = 1
        if self.tiered:                     # the GPU copy supersedes an offloaded one
            for t in self.tiers:
                if h in t:
                    del t[h]
                    self.tier_superseded += 1
                    break
        return True

    def release(self, shared: list[int], num_private: int, priority: int = 0) -> None:
        """Drop a sequence's blocks: shared refs decrement (tail first), private ones free
        (``priority``: the releasing request's, used by :class:`~.tiering.PolicyBlockPool`)."""
        cache = self.cache
        ev = self.evictable
        for h in reversed(shared):
            rc = cache[h] - 1
            cache[h] = rc
            if rc == 0:
                ev[h] = None
        self.free_uncached += num_private

    def hit_rate(self) -> float:
        """Prefix-cache hit rate in tokens (hits / queried prompt tokens)."""
        return self.hit_tokens / self.query_tokens if self.query_tokens else 0.0
