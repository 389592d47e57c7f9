"""The paged KV block pool (sim/kv.py) against a naive reference written from its
documented rules: plain lists for the LRU orders, a dict for refcounts, the tier
cascade spelled out one block at a time. Random operation sequences compare every
observable (return values, free counts, cached hashes, LRU orders, tier contents,
counters) after each operation. Plus the hash chain against its definition.
"""

from __future__ import annotations

import random

import pytest

from servelab.sim.kv import BlockPool, chain_hashes, owner_code


# ----------------------------------------------------------------------------- hash chain
def _naive_chain(n: int, bs: int, *, group: int, prefix: int, conv: int, own: int) -> list[int]:
    """h_b = hash((h_{b-1}, code_b)), h_{-1} = 0; code_b names the owner of block b's
    last token (b·bs + bs − 1): the group while inside the shared prefix, else the
    conversation, else the request. Owner code = ident·4 + kind (1 group, 2 conv, 3 own)."""
    out, h = [], 0
    for b in range(n):
        last = b * bs + bs - 1
        if group >= 0 and last < prefix:
            code = group * 4 + 1
        elif conv >= 0:
            code = conv * 4 + 2
        else:
            code = own * 4 + 3
        h = hash((h, code))
        out.append(h)
    return out


def test_owner_code_is_ident_times_four_plus_kind() -> None:
    assert owner_code(1, 0) == 1
    assert owner_code(2, 5) == 22
    assert owner_code(3, 7) == 31


@pytest.mark.parametrize("n, bs, group, prefix, conv, own", [
    (6, 4, 2, 10, -1, 9),        # blocks 0,1 (last tokens 3, 7) in the prefix; block 2 (last 11) not
    (5, 4, 3, 12, -1, 1),        # boundary: block 2's last token is 11 < 12 → still the group
    (5, 4, 3, 11, -1, 1),        # 11 < 11 false → block 2 is the request's
    (4, 8, -1, 0, 6, 2),         # conversation owns everything
    (4, 8, 0, 16, 0, 5),         # group 0 and conversation 0 are real owners (>= 0)
    (3, 2, -1, 0, -1, 0),        # request 0 alone
    (0, 4, 1, 8, -1, 1),
    (3, 4, -1, 8, -1, 4),        # prefix tokens without a group: no group owner
    (3, 4, -1, 8, 2, 4),
])
def test_chain_hashes_match_the_definition(n, bs, group, prefix, conv, own) -> None:
    want = _naive_chain(n, bs, group=group, prefix=prefix, conv=conv, own=own)
    got = chain_hashes(n, bs, prefix_group=group, prefix_tokens=prefix, conversation=conv, own=own)
    assert got == want
    # extending a computed prefix gives the same chain and keeps the prefix
    for k in range(n + 1):
        ext = chain_hashes(n, bs, prefix_group=group, prefix_tokens=prefix, conversation=conv,
                           own=own, start=want[:k])
        assert ext == want


def test_chain_hashes_differ_by_owner() -> None:
    a = chain_hashes(3, 4, prefix_group=-1, prefix_tokens=0, conversation=-1, own=1)
    b = chain_hashes(3, 4, prefix_group=-1, prefix_tokens=0, conversation=-1, own=2)
    c = chain_hashes(3, 4, prefix_group=-1, prefix_tokens=0, conversation=1, own=1)
    assert len({a[0], b[0], c[0]}) == 3


# ----------------------------------------------------------------------------- naive pool
class NaivePool:
    def __init__(self, num_blocks: int, tiers: list[int]) -> None:
        self.n = num_blocks
        self.free = num_blocks
        self.rc: dict[int, int] = {}
        self.lru: list[int] = []                 # refcount-0 cached hashes, oldest first
        self.caps = list(tiers)
        self.tiers: list[list[int]] = [[] for _ in tiers]
        self.tiered = any(c > 0 for c in tiers)
        self.evictions = self.dropped = self.superseded = 0
        self.tier_hits = [0] * len(tiers)

    def num_free(self) -> int:
        return self.free + len(self.lru)

    def allocate(self, n: int) -> bool:
        if n > self.free + len(self.lru):
            return False
        take = min(n, self.free)
        self.free -= take
        for _ in range(n - take):
            h = self.lru.pop(0)
            del self.rc[h]
            self.evictions += 1
            if self.tiered:
                self._offload(h)
        return True

    def _offload(self, h: int) -> None:
        for i in range(len(self.tiers)):
            self.tiers[i].append(h)
            if len(self.tiers[i]) <= self.caps[i]:
                return
            h = self.tiers[i].pop(0)
        self.dropped += 1

    def match(self, hashes: list[int], limit: int) -> int:
        m = 0
        while m < min(limit, len(hashes)) and hashes[m] in self.rc:
            m += 1
        return m

    def match_tiers(self, hashes: list[int], start: int, limit: int) -> list[int]:
        out = []
        for h in hashes[start:limit]:
            if h in self.rc:
                break
            found = [i for i, t in enumerate(self.tiers) if h in t]
            if not found:
                break
            out.append(found[0])
        return out

    def acquire(self, hashes: list[int]) -> None:
        for h in hashes:
            if self.rc[h] == 0:
                self.lru.remove(h)
            self.rc[h] += 1

    def register(self, h: int) -> bool:
        if h in self.rc:
            return False
        self.rc[h] = 1
        for t in self.tiers:
            if h in t:
                t.remove(h)
                self.superseded += 1
                break
        return True

    def release(self, shared: list[int], private: int) -> None:
        for h in shared[::-1]:
            self.rc[h] -= 1
            if self.rc[h] == 0:
                self.lru.append(h)
        self.free += private


def _same(p: BlockPool, q: NaivePool) -> None:
    assert p.num_free() == q.num_free()
    assert p.free_uncached == q.free
    assert p.usage() == pytest.approx(1.0 - q.num_free() / q.n, abs=1e-12)
    assert dict(p.cache) == q.rc
    assert list(p.evictable) == q.lru
    assert [list(t) for t in p.tiers] == q.tiers
    assert p.evictions == q.evictions
    assert p.tier_dropped == q.dropped
    assert p.tier_superseded == q.superseded
    assert p.offloaded() == sum(len(t) for t in q.tiers)
    assert p.tier_hit_tokens == q.tier_hits


@pytest.mark.parametrize("seed, blocks, tiers", [
    (1, 8, []), (2, 12, []), (3, 8, [3]), (4, 10, [2, 3]), (5, 6, [1, 1, 2]), (6, 9, [0, 2]),
    (7, 16, [4, 4]),
])
def test_block_pool_matches_a_naive_pool(seed, blocks, tiers) -> None:
    """Sequences of register (a private block turned cached) / acquire / release /
    allocate with eviction, each state compared with the naive pool."""
    rng = random.Random(seed)
    p = BlockPool(blocks, tiers=tiers)
    q = NaivePool(blocks, tiers)
    _same(p, q)
    held: list[list[int]] = []       # each: hashes a "sequence" holds a reference on
    for step in range(400):
        op = rng.random()
        if op < 0.35:                # allocate k private blocks, register some as cached
            k = rng.randint(1, 3)
            got = p.allocate(k)
            assert got == q.allocate(k)
            _same(p, q)
            if got:
                hs, private = [], k
                for _ in range(k):
                    h = rng.randint(1, 30)
                    if rng.random() < 0.7:
                        r1, r2 = p.register(h), q.register(h)
                        assert r1 == r2
                        if r1:
                            hs.append(h)
                            private -= 1
                held.append([hs, private])
        elif op < 0.55 and held:     # release one holder (shared tail first)
            hs, private = held.pop(rng.randrange(len(held)))
            p.release(hs, private)
            q.release(hs, private)
        elif op < 0.75:              # prefix hit: acquire a matched run of cached hashes
            cand = rng.sample(range(1, 31), 5)
            lim = rng.randint(0, 5)
            m = p.match(cand, lim)
            assert m == q.match(cand, lim)
            if m:
                p.acquire(cand[:m])
                q.acquire(cand[:m])
                held.append([cand[:m], 0])
        elif op < 0.9:               # tier lookup after a partial GPU match
            cand = rng.sample(range(1, 31), 6)
            start = p.match(cand, 6)
            lim = rng.randint(start, 6)
            assert p.match_tiers(cand, start, lim) == q.match_tiers(cand, start, lim)
        else:                        # a large private allocation, possibly impossible
            k = rng.randint(0, blocks + 2)
            got = p.allocate(k)
            assert got == q.allocate(k)
            if got:
                held.append([[], k])
        _same(p, q)


def test_allocate_takes_uncached_before_evicting_and_fails_cleanly() -> None:
    p = BlockPool(4)
    for h in (11, 12, 13):
        assert p.allocate(1)
        assert p.register(h)
    p.release([11, 12, 13], 0)          # tail first: 13, 12, 11 become evictable in that order
    assert list(p.evictable) == [13, 12, 11]
    assert p.num_free() == 4 and p.free_uncached == 1
    assert p.usage() == 0.0
    assert not p.allocate(5)             # more than free + evictable: nothing changes
    assert p.num_free() == 4 and p.evictions == 0 and len(p.cache) == 3
    assert p.allocate(1)                 # the uncached block first
    assert p.evictions == 0 and p.free_uncached == 0
    assert p.allocate(2)                 # then LRU: 13 and 12 go, 11 stays
    assert p.evictions == 2 and list(p.cache) == [11]
    assert p.usage() == pytest.approx(3 / 4)
    assert p.allocate(1) and p.num_free() == 0 and p.usage() == 1.0
    assert not p.allocate(1)
    assert p.allocate(0)


def test_tier_cascade_by_hand() -> None:
    """GPU 3 blocks, DRAM 1, NVMe 1: evicting 1, 2, 3 in turn sends 1 to DRAM, then
    1 to NVMe and 2 to DRAM, then 1 is dropped, 2 → NVMe, 3 → DRAM."""
    p = BlockPool(3, tiers=(1, 1))
    assert p.tiered
    for h in (1, 2, 3):
        p.allocate(1)
        p.register(h)
    p.release([3, 2, 1], 0)             # tail first → LRU order 1, 2, 3
    assert list(p.evictable) == [1, 2, 3]
    p.allocate(1)
    assert [list(t) for t in p.tiers] == [[1], []]
    p.allocate(1)
    assert [list(t) for t in p.tiers] == [[2], [1]]
    p.allocate(1)
    assert [list(t) for t in p.tiers] == [[3], [2]] and p.tier_dropped == 1
    assert p.offloaded() == 2
    # lookups: 3 in tier 0, 2 in tier 1, 1 nowhere → stops
    assert p.match_tiers([3, 2, 1, 3], 0, 4) == [0, 1]
    assert p.match_tiers([3, 2], 1, 2) == [1]
    assert p.match_tiers([3, 2], 0, 1) == [0]
    p.take_tiers([3, 2], [0, 1])
    assert p.offloaded() == 0
    p.untake_tiers([3, 2], [0, 1])
    assert [list(t) for t in p.tiers] == [[3], [2]]
    p.take_tiers([3, 2], [0, 1])
    p.load_tiers([3, 2], [0, 1], 16)
    assert p.cache == {3: 1, 2: 1} and p.tier_hit_tokens == [16, 16]
    # a GPU-held block stops the tier walk
    assert p.match_tiers([3, 2], 0, 2) == []


def test_tier_hit_tokens_add_up_per_tier() -> None:
    """Three blocks loaded from tier 0 in one call and one more later: 4 · 16 tokens."""
    p = BlockPool(8, tiers=(8,))
    p.allocate(3)
    for h in (1, 2, 3):
        p.register(h)
    p.release([1, 2, 3], 0)
    p.allocate(8)                                 # all three evicted to tier 0
    assert [list(t) for t in p.tiers] == [[3, 2, 1]]
    p.release([], 8)
    p.take_tiers([1, 2], [0, 0])
    p.load_tiers([1, 2], [0, 0], 16)
    assert p.tier_hit_tokens == [32]
    p.take_tiers([3], [0])
    p.load_tiers([3], [0], 16)
    assert p.tier_hit_tokens == [48] and p.cache == {1: 1, 2: 1, 3: 1}


def test_register_supersedes_an_offloaded_copy_once() -> None:
    p = BlockPool(1, cpu_blocks=2, tiers=(2,))   # cpu_blocks is one tier placed first
    assert p.tier_cap == [2, 2]
    p.allocate(1)
    p.register(7)
    p.release([7], 0)
    p.allocate(1)                                 # 7 evicted → tier 0
    assert [list(t) for t in p.tiers] == [[7], []]
    p.release([], 1)
    p.allocate(1)
    assert p.register(7)                          # recomputed: the offloaded copy goes
    assert p.tier_superseded == 1 and p.offloaded() == 0
    assert not p.register(7)                      # duplicate: stays private
    assert p.tier_superseded == 1


def test_untiered_pool_and_zero_capacity_tiers() -> None:
    assert not BlockPool(4).tiered and BlockPool(4).tier_cap == []
    assert not BlockPool(4, tiers=(0, 0)).tiered
    p = BlockPool(2, tiers=(0, 1))               # tier 0 holds nothing: passes straight down
    assert p.tiered
    p.allocate(1)
    p.register(5)
    p.release([5], 0)
    p.allocate(2)
    assert [list(t) for t in p.tiers] == [[], [5]] and p.tier_dropped == 0


def test_acquire_takes_blocks_off_the_lru_and_release_order() -> None:
    p = BlockPool(4)
    for h in (1, 2):
        p.allocate(1)
        p.register(h)
    p.acquire([1])                    # refcount 2 now
    assert p.cache == {1: 2, 2: 1}
    p.release([1, 2], 0)
    assert p.cache == {1: 1, 2: 0} and list(p.evictable) == [2]
    p.release([1], 0)
    assert list(p.evictable) == [2, 1]
    p.acquire([2])
    assert list(p.evictable) == [1] and p.cache[2] == 1
    p.release([], 2)
    assert p.free_uncached == 4


def test_hit_rate() -> None:
    p = BlockPool(2)
    assert p.hit_rate() == 0.0
    p.query_tokens, p.hit_tokens = 40, 10
    assert p.hit_rate() == 0.25


def test_match_respects_limit_and_stops_at_first_miss() -> None:
    p = BlockPool(4)
    for h in (1, 2, 3):
        p.allocate(1)
        p.register(h)
    assert p.match([1, 2, 3], 3) == 3
    assert p.match([1, 2, 3], 2) == 2
    assert p.match([1, 9, 3], 3) == 1
    assert p.match([9, 1], 2) == 0
    assert p.match([1, 2], 5) == 2
