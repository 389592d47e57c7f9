"""Measured per-request facts a calibration fit can be matched against (docs/calibration.md).

From the records of one run (any producer: load client, importer, simulator) this
extracts two kinds of observation, each self-contained and independent of the model:

**Decode observations** (one per ok request with ``output_tokens >= 2``). Request *i*
decodes during ``(f_i, e_i]`` (first token → finish). Every ok request *j* is taken to
be in the running batch during its own ``(f_j, e_j]``; the interval of *i* is cut at
every ``f_j``/``e_j`` inside it into segments *s* of constant batch ``B_s`` (including
*i*). On a segment, sequence *j*'s context grows linearly from ``in_j + 1`` at ``f_j`` to
``in_j + out_j`` at ``e_j``; ``C_s`` is the sum of contexts at the segment's midpoint.
With ``w_s`` = segment length / ``(e_i − f_i)``::

    TPOT_i (measured) = (e_i − f_i) / (out_i − 1)
    TPOT_i (model)    = Σ_s w_s · (t0(B_s) + t1 · C_s) + Σ_{j: f_j ∈ (f_i, e_i]} Δ_j / (out_i − 1)

where ``t0, t1 = StepModel.decode_affine(B)`` and ``Δ_j`` is the extra time of the step(s)
that carried *j*'s prefill next to the ``B_j`` sequences decoding just before ``f_j``
(:class:`PrefillJoin`). Steps are allotted to segments in proportion to their length.

**Prefill observations** (TTFT). The prefill interval of *i* starts at ``start_s`` when
the producer knows it (the simulator does: the step that first schedules *i*; queueing
before it is thus excluded), else at ``dispatch_s`` or ``arrival_s`` (a load client: the
request was sent then). Only *lone* prefills are kept: no other request's prefill
interval overlaps it, so *i* never queued behind another prompt; without ``start_s``
nothing may be decoding either (else *i* waits for a running step, an unknown part of a
step). Sequences decoding in the prefill's steps (only with ``start_s``) run with it::

    TTFT_i (model) = Σ_chunks step_time(prefill chunk, B decodes with context sum C)

Chunks are ``max_num_batched_tokens − B`` tokens (vLLM chunked prefill); prefix-cached
tokens (``cached_tokens``) are context, not work.

Units: seconds and tokens. Requests that are not ok, lack times or token counts are
counted in ``excluded`` by reason, never silently dropped.
"""

from __future__ import annotations

import bisect
import math
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..records import RequestRecord

__all__ = [
    "DecodeObs",
    "Observations",
    "PrefillJoin",
    "PrefillObs",
    "is_holdout",
    "merge_observations",
    "observations_from_records",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class PrefillJoin:
    """A prompt that was prefilled while others decoded: ``new_tokens`` after
    ``cached_tokens`` of context, next to ``num_decode`` sequences of context sum ``context_sum``."""
    new_tokens: int
    cached_tokens: int
    num_decode: int
    context_sum: int


@dataclass(frozen=True, kw_only=True, slots=True)
class DecodeObs:
    id: str
    run: str
    tpot_s: float                              # measured (e − f) / (out − 1)
    steps: int                                 # out − 1
    batch_weights: tuple[tuple[int, float], ...]   # (B, fraction of the interval)
    mean_context_sum: float                    # Σ_s w_s C_s [tokens]
    joins: tuple[int, ...]                     # indices into Observations.joins
    mean_batch: float


@dataclass(frozen=True, kw_only=True, slots=True)
class PrefillObs:
    id: str
    run: str
    ttft_s: float                              # measured, from start/dispatch/arrival
    new_tokens: int
    cached_tokens: int
    num_decode: int                            # sequences decoding in the same steps
    context_sum: int
    from_start: bool                           # measured from start_s (queue excluded)


@dataclass(frozen=True, kw_only=True)
class Observations:
    decode: tuple[DecodeObs, ...] = ()
    prefill: tuple[PrefillObs, ...] = ()
    joins: tuple[PrefillJoin, ...] = ()
    runs: tuple[str, ...] = ()
    num_records: int = 0
    num_ok: int = 0
    excluded: dict[str, int] = field(default_factory=dict)


def is_holdout(obs_id: str, run: str, fraction: float) -> bool:
    """Deterministic split: CRC32 of ``run/id`` below ``fraction`` of 2**32 is held out."""
    return zlib.crc32(f"{run}/{obs_id}".encode()) < fraction * 2**32


def _ok_times(r: RequestRecord) -> tuple[float, float] | None:
    f, e = r.first_token_s, r.finish_s
    if f is None or e is None or math.isnan(f) or math.isnan(e) or e < f:
        return None
    return f, e


def _context_at(r: RequestRecord, f: float, e: float, t: float) -> float:
    """Tokens in r's KV cache at time t within (f, e]: in + 1 → in + out, linear."""
    if e <= f:
        return float(r.input_tokens + r.output_tokens)
    frac = min(1.0, max(0.0, (t - f) / (e - f)))
    return r.input_tokens + 1 + (r.output_tokens - 1) * frac


def observations_from_records(records: Iterable[RequestRecord], *, run: str = "run",
                              use_start: bool = True) -> Observations:
    """Decode and prefill observations of one run's records (see the module docstring).

    Raises ``ConfigError`` when nothing usable is there: no records, no ok request,
    no token counts, no timestamps.
    """
    recs = list(records)
    if not recs:
        raise ConfigError(f"run {run!r} has no records; calibration needs ok requests with "
                          "input/output token counts, first-token and finish times")
    excluded: Counter[str] = Counter()
    ok: list[tuple[RequestRecord, float, float]] = []
    for r in recs:
        if r.status != "ok":
            excluded[f"status {r.status}"] += 1
        elif r.input_tokens <= 0 or r.output_tokens <= 0:
            excluded["no token counts"] += 1
        elif (fe := _ok_times(r)) is None:
            excluded["no first-token/finish time"] += 1
        else:
            ok.append((r, *fe))
    num_ok = sum(1 for r in recs if r.status == "ok")
    if not ok:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(excluded.items()))
        raise ConfigError(f"run {run!r}: none of its {len(recs)} records is usable for calibration "
                          f"({reasons}); needed: status ok, input_tokens and output_tokens > 0, "
                          "first_token_s and finish_s")
    ok.sort(key=lambda x: x[1])
    firsts = [f for _, f, _ in ok]
    max_dur = max(e - f for _, f, e in ok)   # bounds the look-back of the sweeps below

    # decoding state just before each request's first token (for joins and prefills)
    def decoding_at(t: float, skip: RequestRecord | None) -> tuple[int, int]:
        hi = bisect.bisect_left(firsts, t)
        lo = bisect.bisect_left(firsts, t - max_dur)   # earlier ones finished before t
        b = c = 0
        for r, f, e in ok[lo:hi]:
            if r is not skip and f < t <= e:
                b += 1
                c += _context_at(r, f, e, t)
        return b, int(round(c))

    joins: list[PrefillJoin] = []
    join_of: dict[int, int] = {}
    for k, (r, f, _e) in enumerate(ok):
        b, c = decoding_at(f, r)
        if b:
            join_of[k] = len(joins)
            joins.append(PrefillJoin(new_tokens=max(1, r.input_tokens - r.cached_tokens),
                                     cached_tokens=r.cached_tokens, num_decode=b, context_sum=c))

    decode: list[DecodeObs] = []
    for k, (r, f, e) in enumerate(ok):
        if r.output_tokens < 2:
            excluded["single output token (no TPOT)"] += 1
            continue
        if e <= f:
            excluded["zero decode time"] += 1
            continue
        hi = bisect.bisect_right(firsts, e)
        lo = bisect.bisect_left(firsts, f - max_dur)
        others = [(rj, fj, ej) for rj, fj, ej in ok[lo:hi] if ej > f]
        cuts = sorted({f, e, *(x for _, fj, ej in others for x in (fj, ej) if f < x < e)})
        weights: Counter[int] = Counter()
        ctx = 0.0
        dur = e - f
        for a, b in zip(cuts, cuts[1:]):
            mid = 0.5 * (a + b)
            active = [(rj, fj, ej) for rj, fj, ej in others if fj < mid <= ej]
            w = (b - a) / dur
            weights[len(active)] += w
            ctx += w * sum(_context_at(rj, fj, ej, mid) for rj, fj, ej in active)
        js = tuple(join_of[kk] for kk in range(bisect.bisect_right(firsts, f), hi) if kk in join_of)
        decode.append(DecodeObs(
            id=r.id, run=run, tpot_s=dur / (r.output_tokens - 1), steps=r.output_tokens - 1,
            batch_weights=tuple(sorted(weights.items())), mean_context_sum=ctx, joins=js,
            mean_batch=sum(b * w for b, w in weights.items())))

    prefill = _prefills(ok, run, use_start, decoding_at, excluded)
    return Observations(decode=tuple(decode), prefill=tuple(prefill), joins=tuple(joins),
                        runs=(run,), num_records=len(recs), num_ok=num_ok, excluded=dict(excluded))


def _prefills(ok: Sequence[tuple[RequestRecord, float, float]], run: str, use_start: bool,
              decoding_at, excluded: Counter[str]) -> list[PrefillObs]:
    def begin(r: RequestRecord) -> tuple[float, bool]:
        if use_start and r.start_s is not None and not math.isnan(r.start_s):
            return r.start_s, True
        return (r.dispatch_s if r.dispatch_s is not None else r.arrival_s), False

    spans = sorted(((begin(r)[0], f, idx) for idx, (r, f, _e) in enumerate(ok)))
    out: list[PrefillObs] = []
    max_f_before = float("-inf")   # spans are sorted by start: overlap = earlier end > s or next start < f
    for pos, (s, f, idx) in enumerate(spans):
        r = ok[idx][0]
        from_start = begin(r)[1]
        lone = max_f_before <= s and (pos + 1 == len(spans) or spans[pos + 1][0] >= f)
        max_f_before = max(max_f_before, f)
        if f <= s:
            excluded["first token not after prefill start"] += 1
            continue
        if not lone:
            excluded["prefill overlapped another prefill (TTFT)"] += 1
            continue
        b, c = decoding_at(f, r)   # sequences that got a token from the step ending at f
        if not from_start and (b or decoding_at(s, r)[0]):
            excluded["sent while a batch was decoding, start unknown (TTFT)"] += 1
            continue
        out.append(PrefillObs(
            id=r.id, run=run, ttft_s=f - s, new_tokens=max(1, r.input_tokens - r.cached_tokens),
            cached_tokens=r.cached_tokens, num_decode=b, context_sum=c, from_start=from_start))
    return out


def merge_observations(parts: Sequence[Observations]) -> Observations:
    """Observations of several runs as one set (join indices renumbered)."""
    if not parts:
        raise ConfigError("no runs given; calibration needs at least one run")
    decode, prefill, joins, runs = [], [], [], []
    excluded: Counter[str] = Counter()
    for p in parts:
        off = len(joins)
        joins.extend(p.joins)
        decode.extend(DecodeObs(**{**{k: getattr(d, k) for k in DecodeObs.__slots__},
                                   "joins": tuple(j + off for j in d.joins)}) for d in p.decode)
        prefill.extend(p.prefill)
        runs.extend(p.runs)
        excluded.update(p.excluded)
    return Observations(decode=tuple(decode), prefill=tuple(prefill), joins=tuple(joins),
                        runs=tuple(runs), num_records=sum(p.num_records for p in parts),
                        num_ok=sum(p.num_ok for p in parts), excluded=dict(excluded))
