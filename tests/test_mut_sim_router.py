"""Routers against naive re-implementations of their documented rules (sim/router.py
docstring, sgl-router's cache-aware policy), over random request streams and loads.
The naive prefix router keeps each replica's view as a plain list (LRU first) and
builds block chains from the hash-chain definition, not from the code's helpers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from servelab.catalog import RequestSpec
from servelab.sim.router import Router, shared_chain


@dataclass
class _Pool:
    used: float
    num_blocks: int

    def usage(self) -> float:
        return self.used


@dataclass
class _Eng:
    pool: _Pool
    load: int
    bs: int

    def outstanding(self) -> int:
        return self.load


@dataclass
class _Rep:
    name: str
    engine: _Eng


def _chain(nb: int, bs: int, code: int) -> list[int]:
    """h_b = hash((h_{b-1}, owner code)), h_{-1} = 0: every block of a shared part has the
    same owner (group: ident·4 + 1, conversation: ident·4 + 2)."""
    out, h = [], 0
    for _ in range(nb):
        h = hash((h, code))
        out.append(h)
    return out


def _naive_shared(spec: RequestSpec, bs: int) -> list[int]:
    if spec.conversation >= 0:
        return _chain(spec.input_tokens // bs, bs, spec.conversation * 4 + 2)
    if spec.prefix_group >= 0:
        return _chain(min(spec.input_tokens, spec.prefix_tokens) // bs, bs, spec.prefix_group * 4 + 1)
    return []


class NaivePrefixRouter:
    def __init__(self) -> None:
        self.views: dict[str, list[int]] = {}

    def pick(self, spec: RequestSpec, reps: list[_Rep]) -> int:
        loads = [r.engine.outstanding() for r in reps]
        bs = reps[0].engine.bs
        chain = _naive_shared(spec, bs)
        lo, hi = min(loads), max(loads)
        if hi - lo > 32 and hi > 1.0001 * lo:
            i = loads.index(lo)
        else:
            scored = []
            for j, r in enumerate(reps):
                view = self.views.get(r.name, [])
                if not view:
                    continue
                m = 0
                while m < len(chain) and chain[m] in view:
                    m += 1
                scored.append((m, j))
            best_m = max((m for m, _ in scored), default=0)
            if scored and best_m * bs > 0.5 * spec.input_tokens:
                # longest match; ties: lower load, then lower index
                i = min((j for m, j in scored if m == best_m), key=lambda j: (loads[j], j))
            else:
                keys = [(len(self.views.get(r.name, [])), loads[j]) for j, r in enumerate(reps)]
                i = keys.index(min(keys))
        if chain:
            view = self.views.setdefault(reps[i].name, [])
            for h in chain:
                if h in view:
                    view.remove(h)
                view.append(h)
            cap = reps[i].engine.pool.num_blocks
            del view[:max(0, len(view) - cap)]
        return i


def _spec(rng: random.Random, k: int, bs: int) -> RequestSpec:
    kind = rng.random()
    n_in = rng.randint(1, 8 * bs)
    if kind < 0.45:
        g = rng.randint(0, 3)
        return RequestSpec(id=f"r{k}", arrival_s=0.0, input_tokens=n_in, output_tokens=1,
                           prefix_group=g, prefix_tokens=rng.choice([bs, 2 * bs, 3 * bs + 5, 6 * bs]))
    if kind < 0.8:
        return RequestSpec(id=f"r{k}", arrival_s=0.0, input_tokens=n_in, output_tokens=1,
                           conversation=rng.randint(0, 3))
    return RequestSpec(id=f"r{k}", arrival_s=0.0, input_tokens=n_in, output_tokens=1)


@pytest.mark.parametrize("seed, n_rep, cap", [(1, 3, 6), (2, 2, 3), (3, 4, 12), (4, 3, 1), (5, 1, 4)])
def test_prefix_router_matches_the_naive_rule(seed, n_rep, cap) -> None:
    rng = random.Random(seed)
    bs = 4
    router, naive = Router("prefix", {}), NaivePrefixRouter()
    names = [f"rep{i}" for i in range(n_rep)]
    for k in range(600):
        # loads: mostly close (cache decides), sometimes far apart (balance decides),
        # including the 32-apart edge and a zero minimum
        base = rng.randint(0, 40)
        spread = rng.choice([0, 1, 5, 32, 33, 60])
        loads = [base + rng.randint(0, spread) for _ in range(n_rep)]
        if rng.random() < 0.1:
            loads = [0] + [33] * (n_rep - 1)
        reps = [_Rep(n, _Eng(_Pool(0.0, cap), ld, bs)) for n, ld in zip(names, loads)]
        # a replica leaves now and then (its view is forgotten) and comes back empty
        if rng.random() < 0.03:
            gone = rng.choice(names)
            router.forget(gone)
            naive.views.pop(gone, None)
        spec = _spec(rng, k, bs)
        assert router.pick(spec, reps) == naive.pick(spec, reps), (k, loads, spec)
        for n in names:
            assert list(router.trees.get(n, ())) == naive.views.get(n, []), (k, n)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_least_outstanding_and_round_robin_match_naive_rules(seed) -> None:
    rng = random.Random(seed)
    lo, rr = Router("least_outstanding", {}), Router("round_robin", {})
    turn = 0
    for _ in range(300):
        n = rng.randint(1, 5)
        loads = [rng.randint(0, 4) for _ in range(n)]
        reps = [_Rep(f"r{i}", _Eng(_Pool(0.0, 8), ld, 4)) for i, ld in enumerate(loads)]
        spec = RequestSpec(id="x", arrival_s=0.0, input_tokens=8, output_tokens=1)
        assert lo.pick(spec, reps) == loads.index(min(loads))
        want = 0 if n == 1 else turn % n     # a lone replica takes it without a turn
        if n > 1:
            turn += 1
        assert rr.pick(spec, reps) == want


def test_shared_chain_matches_the_definition_and_extends() -> None:
    chains: dict = {}
    g = RequestSpec(id="g", arrival_s=0.0, input_tokens=50, output_tokens=1, prefix_group=2,
                    prefix_tokens=24)
    assert shared_chain(g, 4, chains) == _chain(6, 4, 9)
    longer = RequestSpec(id="g2", arrival_s=0.0, input_tokens=50, output_tokens=1, prefix_group=2,
                         prefix_tokens=40)
    assert shared_chain(longer, 4, chains) == _chain(10, 4, 9)       # extends the cached chain
    assert shared_chain(g, 4, chains) == _chain(6, 4, 9)             # shorter: a prefix of it
    short_prompt = RequestSpec(id="g3", arrival_s=0.0, input_tokens=9, output_tokens=1, prefix_group=2,
                               prefix_tokens=40)
    assert shared_chain(short_prompt, 4, chains) == _chain(2, 4, 9)  # min(9, 40) // 4
    c = RequestSpec(id="c", arrival_s=0.0, input_tokens=13, output_tokens=1, conversation=0,
                    prefix_group=1, prefix_tokens=8)
    # a conversation's history is its own owner... but a group prefix inside it keeps the group
    want = []
    h = 0
    for b in range(3):
        code = 1 * 4 + 1 if b * 4 + 3 < 8 else 0 * 4 + 2
        h = hash((h, code))
        want.append(h)
    assert shared_chain(c, 4, {}) == want
