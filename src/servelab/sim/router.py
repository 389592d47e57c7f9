"""Request routing over a fleet's ready replicas.

Policies:
- ``round_robin``: replicas in turn.
- ``least_outstanding``: fewest requests waiting + running (ties: lowest index).
- ``least_kv``: lowest KV cache usage (ties: fewest outstanding, lowest index).
- ``prefix``: cache-aware routing as in SGLang's router (sgl-router, "cache-aware load
  balancing"): the router keeps, per replica, an approximate view of what that
  replica has cached (here: the block-hash chains of the shared prefixes it routed
  there, LRU-bounded by the replica's KV blocks). If the fleet is imbalanced —
  ``max_load - min_load > balance_abs_threshold`` and ``max_load > balance_rel_threshold
  * min_load`` — it routes to the least loaded replica. Otherwise it routes to the
  replica with the longest prefix match if ``match_tokens / input_tokens >
  cache_threshold``, else to the replica with the smallest cache view (most room).
  Defaults 0.5 / 32 / 1.0001 are sgl-router's. Load = outstanding requests.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..catalog.workloads import RequestSpec
from .kv import chain_hashes

__all__ = ["Router", "shared_chain"]

CACHE_THRESHOLD = 0.5          # sgl-router default --cache-threshold
BALANCE_ABS_THRESHOLD = 32     # sgl-router default --balance-abs-threshold
BALANCE_REL_THRESHOLD = 1.0001  # sgl-router default --balance-rel-threshold


def shared_chain(spec: RequestSpec, block_size: int, chains: dict) -> list[int]:
    """Block hashes of the part of a prompt other requests can share (group prefix /
    conversation history); [] for a request that shares nothing."""
    if spec.conversation >= 0:
        nb = spec.input_tokens // block_size
        key: Any = ("c", spec.conversation)
    elif spec.prefix_group >= 0:
        nb = min(spec.input_tokens, spec.prefix_tokens) // block_size
        key = ("g", spec.prefix_group)
    else:
        return []
    base = chains.get(key, ())
    if len(base) < nb:
        base = chain_hashes(nb, block_size, prefix_group=spec.prefix_group,
                            prefix_tokens=spec.prefix_tokens, conversation=spec.conversation,
                            own=0, start=base)
        chains[key] = base
    return base[:nb]


class Router:
    """Stateful router; ``pick`` returns an index into the ready list it is given."""

    def __init__(self, policy: str, chains: dict) -> None:
        self.policy = policy
        self.chains = chains
        self._rr = 0
        self.trees: dict[str, OrderedDict[int, None]] = {}

    def pick(self, spec: RequestSpec, ready: list[Any]) -> int:
        """``ready``: replicas with ``.name`` and ``.engine`` (a ReplicaEngine)."""
        n = len(ready)
        if n == 1 and self.policy != "prefix":
            return 0
        p = self.policy
        if p == "round_robin":
            i = self._rr % n
            self._rr += 1
            return i
        if p == "least_outstanding":
            return _argmin([x.engine.outstanding() for x in ready])
        if p == "least_kv":
            return _argmin([(x.engine.pool.usage(), x.engine.outstanding()) for x in ready])
        return self._prefix(spec, ready)

    def _prefix(self, spec: RequestSpec, ready: list[Any]) -> int:
        loads = [x.engine.outstanding() for x in ready]
        bs = ready[0].engine.bs
        chain = shared_chain(spec, bs, self.chains)
        lo, hi = min(loads), max(loads)
        if hi - lo > BALANCE_ABS_THRESHOLD and hi > BALANCE_REL_THRESHOLD * lo:
            i = _argmin(loads)
        else:
            best, best_m = -1, 0
            for j, x in enumerate(ready):
                tree = self.trees.get(x.name)
                if not tree:
                    continue
                m = 0
                for h in chain:
                    if h not in tree:
                        break
                    m += 1
                if m > best_m or (m == best_m and m and loads[j] < loads[best]):
                    best, best_m = j, m
            if best >= 0 and best_m * bs > CACHE_THRESHOLD * spec.input_tokens:
                i = best
            else:
                i = _argmin([(len(self.trees.get(x.name, ())), loads[j])
                             for j, x in enumerate(ready)])
        if chain:
            rep = ready[i]
            tree = self.trees.setdefault(rep.name, OrderedDict())
            for h in chain:
                tree[h] = None
                tree.move_to_end(h)
            cap = rep.engine.pool.num_blocks
            while len(tree) > cap:
                tree.popitem(last=False)
        return i

    def forget(self, name: str) -> None:
        """Drop the cache view of a replica that left the fleet."""
        self.trees.pop(name, None)


def _argmin(values: list[Any]) -> int:
    best = 0
    for i in range(1, len(values)):
        if values[i] < values[best]:
            best = i
    return best
