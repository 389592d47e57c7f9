"""Request lists from a workload: arrivals, lengths, prefixes, conversations, classes.

Arrivals (as ``vllm bench serve``): the first request at t = 0, then inter-arrival
gaps drawn from

* ``constant``: ``1/r``;
* ``poisson``: exponential with mean ``1/r`` (coefficient of variation CV = 1);
* ``gamma``: shape ``k`` = burstiness, scale ``1/(r·k)`` -> mean ``1/r``,
  CV = ``1/sqrt(k)`` (``k < 1`` burstier than Poisson, ``k = 1`` is Poisson).
``r = inf`` sends everything at t = 0 (offline batch).

Multi-turn (``turns > 1``): each arrival starts a conversation, at rate ``r/turns``
so the *request* rate stays ``r``. Turn ``j`` arrives after turn ``j-1`` plus an
exponential think time of mean ``think_time_s`` (an open-loop approximation: a
closed-loop consumer may hold turn ``j`` until turn ``j-1`` finished, using
``conversation``/``turn``). Turn ``j``'s prompt is the whole history (inputs and
outputs of turns ``< j``, ``history_tokens``) followed by a new user message drawn
from ``input_len``.

Prefix sharing: a request (a whole conversation, for multi-turn) carries a shared
prefix with probability ``fraction``; its group is uniform over ``num_groups``. The
prefix is prepended to the request's own tokens drawn from ``input_len``, so
``input_tokens = prefix_tokens + history_tokens + new tokens``. Priorities and
adapters are drawn by their shares (per conversation).

Determinism: one ``numpy.random.SeedSequence(seed)`` spawns an independent stream per
aspect (arrivals, input lengths, output lengths, prefixes, priorities, adapters, think
times), so changing e.g. the priority shares leaves arrival times unchanged. Request
ids ``r0, r1, ...`` follow arrival order (ties: conversation, then turn).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._limits import check_request_count
from ..errors import ConfigError
from ._workload_types import ArrivalSpec, RequestSpec, Workload

__all__ = ["generate_requests", "interarrival_times"]


def interarrival_times(arrival: ArrivalSpec, rng: np.random.Generator, n: int,
                       rate_rps: float | None = None) -> np.ndarray:
    """``n`` gaps (seconds) between consecutive arrivals for ``arrival`` at ``rate_rps``."""
    rate = arrival.rate_rps if rate_rps is None else rate_rps
    if not rate > 0:
        raise ConfigError(f"arrival rate must be > 0 requests/s, got {rate!r}")
    if math.isinf(rate):
        return np.zeros(n)
    if arrival.kind == "constant":
        return np.full(n, 1.0 / rate)
    if arrival.kind == "poisson":
        return rng.exponential(1.0 / rate, size=n)
    if arrival.kind == "gamma":
        k = arrival.burstiness
        if not k > 0:
            raise ConfigError(f"gamma burstiness must be > 0, got {k!r}")
        return rng.gamma(shape=k, scale=1.0 / (rate * k), size=n)
    raise ConfigError(f"unknown arrival process {arrival.kind!r}; known: constant, poisson, gamma")


def _choose(rng: np.random.Generator, shares: tuple[tuple[object, float], ...], n: int,
            what: str) -> list[object] | None:
    if not shares:
        return None
    labels = [s[0] for s in shares]
    weights = np.asarray([s[1] for s in shares], dtype=np.float64)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError(f"{what} shares must be >= 0 and not all zero, got {list(weights)}")
    idx = rng.choice(len(labels), size=n, p=weights / weights.sum())
    return [labels[i] for i in idx]


def _draw(w: Workload, seed: int, n_c: int, conv_rate: float,
          starts: np.ndarray | None = None) -> dict[str, Any]:
    """All random draws for ``n_c`` conversations, one independent stream per aspect
    (``starts``: given conversation start times instead of drawn gaps)."""
    rng_arr, rng_in, rng_out, rng_pre, rng_pri, rng_ada, rng_think = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7))
    turns = w.turns
    if starts is None:
        gaps = interarrival_times(w.arrival, rng_arr, n_c, conv_rate)
        starts = np.concatenate(([0.0], np.cumsum(gaps[:-1])))
    if turns > 1 and w.think_time_s > 0:
        think = rng_think.exponential(w.think_time_s, size=(n_c, turns - 1))
    else:
        think = np.zeros((n_c, turns - 1))
    offsets = np.concatenate((np.zeros((n_c, 1)), np.cumsum(think, axis=1)), axis=1)
    p = w.prefix
    if p.num_groups > 0 and p.prefix_tokens > 0:
        has = rng_pre.random(n_c) < p.fraction
        groups = np.where(has, rng_pre.integers(0, p.num_groups, size=n_c), -1)
    else:
        groups = np.full(n_c, -1)
    return {
        "starts": starts,
        "times": starts[:, None] + offsets,  # (conversation, turn)
        "new_in": w.input_len.sample(rng_in, n_c * turns).reshape(n_c, turns),
        "out": w.output_len.sample(rng_out, n_c * turns).reshape(n_c, turns),
        "groups": groups,
        "prios": _choose(rng_pri, tuple(w.priorities), n_c, "priority"),
        "adapters": _choose(rng_ada, tuple(w.adapters), n_c, "adapter"),
    }


def generate_requests(
    workload: Workload,
    *,
    rate_rps: float | None = None,
    duration_s: float | None = None,
    num_requests: int | None = None,
    seed: int = 0,
    starts_s: np.ndarray | None = None,
    select: tuple[int, int] | None = None,
) -> list[RequestSpec]:
    """Deterministic request list for a seed: arrivals until ``duration_s`` or ``num_requests``.

    ``starts_s``: sorted conversation start times (e.g. from a rate curve,
    :mod:`.ratecurve`) instead of gaps drawn from the workload's arrival process.
    ``select=(k, K)`` (with ``starts_s``): only the requests of conversations ``c`` with
    ``c mod K == k`` — exactly those of the full list, same ids, built without the others
    (a shard of a large day needs only its share in memory)."""
    w = workload
    if select is not None:
        k, K = select
        if not (isinstance(K, int) and isinstance(k, int) and K >= 1 and 0 <= k < K):
            raise ConfigError(f"select must be (k, K) with 0 <= k < K, got {select!r}")
        if starts_s is None:
            raise ConfigError("select needs starts_s (conversation start times)")
    if starts_s is not None:
        return _from_starts(w, np.asarray(starts_s, dtype=np.float64), duration_s, seed, select)
    rate = w.arrival.rate_rps if rate_rps is None else float(rate_rps)
    if not rate > 0:
        raise ConfigError(f"rate_rps must be > 0 (or inf for offline), got {rate!r}")
    if num_requests is None and duration_s is None:
        if w.num_requests <= 0:
            raise ConfigError(f"workload {w.name!r}: give duration_s or num_requests")
        num_requests = w.num_requests
    if num_requests is not None and num_requests < 0:
        raise ConfigError(f"num_requests must be >= 0, got {num_requests}")
    if duration_s is not None and not duration_s > 0:
        raise ConfigError(f"duration_s must be > 0, got {duration_s}")
    if duration_s is not None and num_requests is None and math.isinf(rate):
        raise ConfigError("an infinite rate (offline batch) needs num_requests, not only duration_s")
    if num_requests is not None:
        check_request_count(num_requests, f"num_requests {num_requests}")
    elif duration_s is not None:
        check_request_count(rate * duration_s, f"rate {rate:g} req/s for {duration_s:g} s")
    if w.turns < 1:
        raise ConfigError(f"workload {w.name!r}: turns must be >= 1, got {w.turns}")
    if num_requests == 0:
        return []

    turns = w.turns
    conv_rate = rate / turns
    n_conv = max(1, math.ceil((num_requests or 0) / turns))
    if duration_s is not None and math.isfinite(conv_rate):
        n_conv = max(n_conv, math.ceil(duration_s * conv_rate * 1.1) + 8)
    while True:
        draw = _draw(w, seed, n_conv, conv_rate)
        times = draw["times"]
        if math.isinf(conv_rate):
            break  # every conversation starts at t = 0: n_conv covers num_requests
        # Conversations not drawn yet start after the last start, so every request
        # up to that horizon is present once these hold:
        horizon = float(draw["starts"][-1])
        enough_dur = duration_s is not None and horizon >= duration_s
        enough_num = num_requests is not None and int((times <= horizon).sum()) >= num_requests
        if enough_dur or enough_num:
            break
        n_conv *= 2

    return _rows(w, draw, n_conv, duration_s, num_requests)


def _from_starts(w: Workload, starts: np.ndarray, duration_s: float | None, seed: int,
                 select: tuple[int, int] | None = None) -> list[RequestSpec]:
    if starts.size and not (np.diff(starts) >= 0).all():
        raise ConfigError("conversation start times must be sorted")
    if starts.size == 0:
        return []
    return _rows(w, _draw(w, seed, int(starts.size), 1.0, starts=starts), int(starts.size), duration_s, None,
                 select)


def _rows(w: Workload, draw: dict[str, Any], n_conv: int, duration_s: float | None,
          num_requests: int | None, select: tuple[int, int] | None = None) -> list[RequestSpec]:
    """Requests in arrival order (ties: conversation, then turn), ids ``r0, r1, …``; each
    RequestSpec is built once, from plain Python numbers. ``select=(k, K)``: only those of
    conversations ``c mod K == k``, with the ids they have in the full list."""
    k_sel, n_sel = select if select is not None else (0, 1)
    turns = w.turns
    times = draw["times"]
    new_in, out, groups = draw["new_in"], draw["out"], draw["groups"]
    prios, adapters = draw["prios"], draw["adapters"]
    pre_tok = w.prefix.prefix_tokens
    if turns == 1:
        # starts are sorted, so conversation order is arrival order (ties keep conversation order)
        t = times[:, 0]
        n = int(np.searchsorted(t, duration_s, side="left")) if duration_s is not None else n_conv
        if num_requests is not None:
            n = min(n, num_requests)
        ts, ins, outs, gs = t[:n].tolist(), new_in[:n, 0].tolist(), out[:n, 0].tolist(), groups[:n].tolist()
        return [RequestSpec(id=f"r{c}", arrival_s=ts[c], input_tokens=(pre_tok if gs[c] >= 0 else 0) + ins[c],
                            output_tokens=outs[c], prefix_group=gs[c], prefix_tokens=pre_tok if gs[c] >= 0 else 0,
                            conversation=-1, turn=0,
                            priority=int(prios[c]) if prios else 0,  # type: ignore[call-overload]
                            adapter=str(adapters[c]) if adapters else None, history_tokens=0)
                for c in range(k_sel, n, n_sel)]
    rows: list[tuple[float, int, int, int, int, int]] = []   # (t, conversation, turn, input, output, history)
    for c in range(n_conv):
        pre = pre_tok if groups[c] >= 0 else 0
        history = 0
        for j in range(turns):
            t_cj = float(times[c, j])
            if duration_s is not None and t_cj >= duration_s:
                break
            rows.append((t_cj, c, j, pre + history + int(new_in[c, j]), int(out[c, j]), history))
            history += int(new_in[c, j]) + int(out[c, j])
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    if num_requests is not None:
        rows = rows[:num_requests]
    return [RequestSpec(id=f"r{i}", arrival_s=t_cj, input_tokens=inp, output_tokens=o, prefix_group=int(groups[c]),
                        prefix_tokens=pre_tok if groups[c] >= 0 else 0, conversation=c, turn=j,
                        priority=int(prios[c]) if prios else 0,  # type: ignore[call-overload]
                        adapter=str(adapters[c]) if adapters else None, history_tokens=hist)
            for i, (t_cj, c, j, inp, o, hist) in enumerate(rows) if c % n_sel == k_sel]
