"""Per-request columns: the records turned into numpy arrays once.

Every metric (point estimate or bootstrap resample) is computed from these
columns, so a record list is walked in Python exactly once.

Per request i (NaN where a time is unknown or the metric does not apply):

- ``ttft_s``  = first_token_s − arrival_s                       (status ok only)
- ``e2e_s``   = finish_s − arrival_s                            (status ok only)
- ``tpot_s``  = (e2e_s − ttft_s) / (output_tokens − 1)          (ok and output_tokens > 1)
- ``queue_s`` = start_s − arrival_s                             (ok and start_s known)
- ``dispatch_lateness_s`` = dispatch_s − arrival_s              (any status, dispatch_s known)

ITL samples are pooled over requests as in ``vllm bench serve``: the gaps between
consecutive ``token_times_s`` of each ok request (weight 1 each); a request whose
token times are absent contributes its TPOT with weight ``output_tokens − 1``
(the same number of gaps, each at the request's mean gap), so the pooled mean ITL
equals Σ(e2e − ttft) / Σ(out − 1) either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Iterable

import numpy as np

from ..records import STATUSES, RequestRecord

__all__ = ["Columns", "columns", "columns_from_arrays", "LATENCY_BASES", "STATUS_CODES"]

# The per-request latency metrics a name like ``ttft_p95`` may refer to.
LATENCY_BASES: tuple[str, ...] = ("ttft", "tpot", "itl", "e2e", "queue", "dispatch_lateness")

_NAN = float("nan")
_STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}
STATUS_CODES: dict[str, int] = dict(_STATUS_CODE)   # status -> int8 code of ``Columns.status``


@dataclass(frozen=True, kw_only=True, slots=True)
class Columns:
    """Column view of a record list (length n); see the module docstring."""
    n: int
    status: np.ndarray          # int8 index into records.STATUSES
    ok: np.ndarray              # bool
    arrival_s: np.ndarray
    dispatch_s: np.ndarray
    start_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    input_tokens: np.ndarray    # float64 (token counts, exact up to 2**53)
    output_tokens: np.ndarray
    cached_tokens: np.ndarray
    reached_replica: np.ndarray  # bool: ok, or start_s known (prefix cache consulted)
    ttft_s: np.ndarray
    e2e_s: np.ndarray
    tpot_s: np.ndarray
    queue_s: np.ndarray
    dispatch_lateness_s: np.ndarray
    itl_values_s: np.ndarray    # pooled ITL samples
    itl_weights: np.ndarray     # float64 multiplicity of each sample
    itl_request: np.ndarray     # int64 index of the request each sample belongs to

    def latency(self, base: str) -> np.ndarray:
        """Per-request array of a latency base (not ``itl``, which is pooled)."""
        return getattr(self, f"{base}_s")


def _opt(values: list[float | None]) -> np.ndarray:
    return np.array([_NAN if v is None else v for v in values], dtype=np.float64)


def columns(records: Iterable[RequestRecord] | Columns) -> Columns:
    """Build the column view (idempotent on a ``Columns``)."""
    if isinstance(records, Columns):
        return records
    recs = list(records)
    n = len(recs)
    try:
        status = np.array([_STATUS_CODE[r.status] for r in recs], dtype=np.int8)
    except KeyError as exc:
        raise ValueError(f"unknown record status {exc.args[0]!r}; known: {', '.join(STATUSES)}") from None
    arrival = np.array([r.arrival_s for r in recs], dtype=np.float64)
    dispatch = _opt([r.dispatch_s for r in recs])
    start = _opt([r.start_s for r in recs])
    first = _opt([r.first_token_s for r in recs])
    finish = _opt([r.finish_s for r in recs])
    inp = np.array([r.input_tokens for r in recs], dtype=np.float64)
    out = np.array([r.output_tokens for r in recs], dtype=np.float64)
    cached = np.array([r.cached_tokens for r in recs], dtype=np.float64)
    with_times = [i for i, r in enumerate(recs)
                  if status[i] == _OK and r.token_times_s is not None and len(r.token_times_s) >= 2]
    return _derive(status, arrival, dispatch, start, first, finish, inp, out, cached,
                   with_times, [recs[i].token_times_s for i in with_times])


def columns_from_arrays(*, status: np.ndarray, arrival_s: np.ndarray, dispatch_s: np.ndarray,
                        start_s: np.ndarray, first_token_s: np.ndarray, finish_s: np.ndarray,
                        input_tokens: np.ndarray, output_tokens: np.ndarray,
                        cached_tokens: np.ndarray) -> Columns:
    """The column view of records given as arrays (status as ``STATUS_CODES``, unknown times
    NaN), without token times: what a run too large to hold as records is summarized from.
    Equal to ``columns(records)`` of the same records with ``token_times_s`` None."""
    status = np.asarray(status, dtype=np.int8)
    if status.size and (status.min() < 0 or status.max() >= len(STATUSES)):
        raise ValueError(f"status codes must be 0..{len(STATUSES) - 1} ({', '.join(STATUSES)})")
    f64 = [np.asarray(a, dtype=np.float64) for a in (arrival_s, dispatch_s, start_s, first_token_s, finish_s,
                                                     input_tokens, output_tokens, cached_tokens)]
    if any(a.shape != status.shape for a in f64):
        raise ValueError(f"every column must have the shape of status {status.shape}, got {[a.shape for a in f64]}")
    return _derive(status, *f64, [], [])


_OK = _STATUS_CODE["ok"]


def _derive(status: np.ndarray, arrival: np.ndarray, dispatch: np.ndarray, start: np.ndarray,
            first: np.ndarray, finish: np.ndarray, inp: np.ndarray, out: np.ndarray, cached: np.ndarray,
            with_times: list[int], times: list[list[float]]) -> Columns:
    n = status.size
    ok = status == _OK
    nan = np.full(n, _NAN)
    ttft = np.where(ok, first - arrival, nan)
    e2e = np.where(ok, finish - arrival, nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = np.where(ok & (out > 1), (e2e - ttft) / (out - 1), nan)
    queue = np.where(ok, start - arrival, nan)
    lateness = dispatch - arrival

    # Pooled ITL: gaps of materialized token times, else TPOT × (out − 1).
    if with_times:
        lens = np.array([len(t) for t in times], dtype=np.int64)
        flat = np.fromiter(chain.from_iterable(times),
                           dtype=np.float64, count=int(lens.sum()))
        gaps = np.diff(flat)
        boundaries = np.cumsum(lens)[:-1] - 1          # gap index that spans two requests
        keep = np.ones(gaps.size, dtype=bool)
        keep[boundaries] = False
        t_vals = gaps[keep]
        t_req = np.repeat(np.array(with_times, dtype=np.int64), lens - 1)
        t_w = np.ones(t_vals.size)
    else:
        t_vals = t_w = np.empty(0)
        t_req = np.empty(0, dtype=np.int64)
    has_times = np.zeros(n, dtype=bool)
    has_times[with_times] = True
    fb = np.flatnonzero(~has_times & np.isfinite(tpot))
    itl_vals = np.concatenate([t_vals, tpot[fb]])
    itl_w = np.concatenate([t_w, out[fb] - 1])
    itl_req = np.concatenate([t_req, fb.astype(np.int64)])
    finite = np.isfinite(itl_vals)
    return Columns(
        n=n, status=status, ok=ok, arrival_s=arrival, dispatch_s=dispatch, start_s=start,
        first_token_s=first, finish_s=finish, input_tokens=inp, output_tokens=out,
        cached_tokens=cached, reached_replica=ok | np.isfinite(start),
        ttft_s=ttft, e2e_s=e2e, tpot_s=tpot, queue_s=queue, dispatch_lateness_s=lateness,
        itl_values_s=itl_vals[finite], itl_weights=itl_w[finite], itl_request=itl_req[finite],
    )
