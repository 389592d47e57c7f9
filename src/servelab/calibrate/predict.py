"""Model predictions for measured observations, and their errors (docs/calibration.md).

Predictions come from :class:`servelab.perf.StepModel` only (equations in
:mod:`servelab.calibrate.observations`):

* TPOT: ``Σ_B w_B · t0(B) + t1 · C̄ + Σ_joins Δ_j / steps``, with
  ``Δ_j = Σ_chunks [step(chunk + B_j decodes) − step(B_j decodes)]``;
* TTFT: ``Σ_chunks step(chunk + B decodes)``, plus ``request_overhead_s`` (tokenising,
  HTTP, first-token detokenising) when measured from dispatch/arrival rather than ``start_s``.

Errors: ``e = ln(predicted / measured)``; the fit minimises the median ``|e|`` per
kind (TTFT, TPOT), averaged over the kinds present; reports give the median absolute
percentage error MdAPE = median ``|predicted/measured − 1|`` × 100.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from ..perf import Deployment, StepBatch, StepModel
from .observations import Observations, PrefillObs

__all__ = ["Predictions", "log_errors", "mdape_pct", "objective", "predict"]


@dataclass(frozen=True, kw_only=True)
class Predictions:
    tpot_s: tuple[float, ...]      # aligned with Observations.decode
    ttft_s: tuple[float, ...]      # aligned with Observations.prefill


def _chunked_prefill_s(sm: StepModel, budget: int, new_tokens: int, cached: int,
                       num_decode: int, context_sum: int) -> tuple[float, int]:
    """(seconds of the steps that carry the prompt, number of those steps)."""
    chunk = max(1, budget - num_decode)
    done, total, steps = 0, 0.0, 0
    while done < new_tokens:
        n = min(chunk, new_tokens - done)
        total += sm.step_time_s(StepBatch(prefill_chunks=((n, cached + done),),
                                          num_decode=num_decode, decode_context_sum=context_sum))
        done += n
        steps += 1
    return total, steps


def _ttft_s(sm: StepModel, budget: int, o: PrefillObs) -> float:
    return _chunked_prefill_s(sm, budget, o.new_tokens, o.cached_tokens, o.num_decode,
                              o.context_sum)[0]


def predict(dep: Deployment, obs: Observations) -> Predictions:
    """Predicted TPOT and TTFT of every observation under ``dep``."""
    sm = StepModel(dep)
    budget = dep.max_num_batched_tokens
    extra: dict[int, float] = {}
    for k in sorted({k for d in obs.decode for k in d.joins}):   # only joins in use
        j = obs.joins[k]
        t, steps = _chunked_prefill_s(sm, budget, j.new_tokens, j.cached_tokens, j.num_decode,
                                      j.context_sum)
        t0, t1 = sm.decode_affine(j.num_decode)
        extra[k] = max(0.0, t - steps * (t0 + t1 * j.context_sum))
    t1 = sm.decode_affine(1)[1]
    tpot = []
    for d in obs.decode:
        t = sum(w * sm.decode_affine(b)[0] for b, w in d.batch_weights) + t1 * d.mean_context_sum
        t += sum(extra[k] for k in d.joins) / d.steps
        tpot.append(t)
    req_s = getattr(dep.efficiency, "request_overhead_s", 0.0)   # outside the steps: client view only
    ttft = [_ttft_s(sm, budget, o) + (0.0 if o.from_start else req_s) for o in obs.prefill]
    return Predictions(tpot_s=tuple(tpot), ttft_s=tuple(ttft))


def log_errors(pred: Predictions, obs: Observations) -> dict[str, list[float]]:
    """``ln(pred/measured)`` per kind; a non-positive value gives ±inf."""
    def e(p: float, m: float) -> float:
        if p <= 0 or m <= 0:
            return math.inf
        return math.log(p / m)
    return {"tpot": [e(p, d.tpot_s) for p, d in zip(pred.tpot_s, obs.decode)],
            "ttft": [e(p, o.ttft_s) for p, o in zip(pred.ttft_s, obs.prefill)]}


def mdape_pct(errors: list[float]) -> float | None:
    """Median |exp(e) − 1| × 100, None without observations."""
    if not errors:
        return None
    return 100.0 * statistics.median(abs(math.expm1(x)) if math.isfinite(x) else math.inf
                                     for x in errors)


def _trimmed_mean_abs(v: list[float], keep: float) -> float:
    a = sorted(abs(x) for x in v)
    n = max(1, int(math.ceil(keep * len(a))))
    return sum(a[:n]) / n


def objective(errors: dict[str, list[float]], *, loss: str = "median") -> float:
    """Mean over kinds present of the median |log error| (``loss="median"``), or of the
    mean of the smallest 75 % of |log error| (``loss="trimmed"``: as robust to a quarter
    of outliers, but smooth enough to follow narrow valleys in a line search)."""
    if loss == "median":
        vals = [statistics.median(abs(x) for x in v) for v in errors.values() if v]
    elif loss == "trimmed":
        vals = [_trimmed_mean_abs(v, 0.75) for v in errors.values() if v]
    else:
        raise ValueError(f"unknown loss {loss!r}; known: median, trimmed")
    return sum(vals) / len(vals) if vals else math.inf
