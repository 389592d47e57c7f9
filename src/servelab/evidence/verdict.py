"""Verdict logic: a claim's comparison against a threshold, judged on an interval.

Given a metric estimate with a confidence interval ``[lo, hi]`` (percentile bootstrap
over requests, see ``metrics.bootstrap``) and a claim ``value ⋄ threshold`` with
⋄ ∈ {<, <=, >, >=}:

- **supported** when the whole interval lies on the claim's side of the threshold
  (``>=``: lo ≥ t; ``>``: lo > t; ``<=``: hi ≤ t; ``<``: hi < t);
- **rejected** when the whole interval lies on the other side
  (``>=``: hi < t; ``>``: hi ≤ t; ``<=``: lo > t; ``<``: lo ≥ t);
- **pending** otherwise (the interval straddles the threshold), and whenever the
  evidence is missing, too small, or the metric is undefined on it.

Margin = s · (value − threshold) with s = +1 for ``>``/``>=`` and −1 for ``<``/``<=``,
so a positive margin is on the claim's side; relative margin = margin / |threshold|.

Relative thresholds (``threshold = factor × baseline``) are judged jointly: the k-th
bootstrap draw of the claim's metric is paired with the k-th draw of the baseline's,
giving the distribution of the difference ``value − factor·baseline``; the verdict is
the rule above applied to that difference's interval against 0. The ratio
``value / baseline`` and its interval are reported too. Whether the two draws come
from the same resampled requests (paired design) or independent resamples is the
caller's choice (``decision.judge_claim`` pairs runs that hold the same requests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Estimate", "Verdict", "side_of", "margin_of", "judge_absolute", "judge_relative",
    "pending", "interval", "VERDICTS",
]

VERDICTS = ("supported", "rejected", "pending")


@dataclass(frozen=True, kw_only=True, eq=False)
class Estimate:
    """A metric on one run's evidence: point value, interval, and bootstrap draws."""
    value: float
    lo: float
    hi: float
    n: int                          # requests (or result rows) it rests on
    run_ids: tuple[str, ...]
    kind: str                       # simulate | bench | kernels
    draws: np.ndarray | None = None  # bootstrap distribution (None: not resampled)
    scenario: str = ""


@dataclass(frozen=True, kw_only=True)
class Verdict:
    claim_id: str
    verdict: str                    # supported | rejected | pending
    simulation_only: bool = False
    partly_simulated: bool = False
    value: float | None = None
    ci_lo: float | None = None
    ci_hi: float | None = None
    threshold: float | None = None
    margin: float | None = None
    margin_rel: float | None = None
    evidence_kind: str = ""
    run_ids: tuple[str, ...] = ()
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``supported (simulation only)`` etc., as printed."""
        if self.verdict == "pending":
            return "pending"
        if self.simulation_only:
            return f"{self.verdict} (simulation only)"
        if self.partly_simulated:
            return f"{self.verdict} (partly simulated)"
        return self.verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id, "verdict": self.verdict, "label": self.label,
            "simulation_only": self.simulation_only, "partly_simulated": self.partly_simulated,
            "value": _num(self.value), "ci_lo": _num(self.ci_lo), "ci_hi": _num(self.ci_hi),
            "threshold": _num(self.threshold), "margin": _num(self.margin),
            "margin_rel": _num(self.margin_rel), "evidence_kind": self.evidence_kind,
            "run_ids": list(self.run_ids), "reason": self.reason, "detail": self.detail,
        }


def _num(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of the finite draws; (nan, nan) when none is finite."""
    d = np.asarray(draws, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return (float("nan"), float("nan"))
    a = (1.0 - confidence) / 2.0
    lo, hi = np.percentile(d, [100.0 * a, 100.0 * (1.0 - a)])
    return float(lo), float(hi)


def side_of(comparison: str, lo: float, hi: float, threshold: float) -> str:
    """supported / rejected / pending for an interval against a threshold."""
    if not (np.isfinite(lo) and np.isfinite(hi) and np.isfinite(threshold)):
        return "pending"
    if comparison == ">=":
        return "supported" if lo >= threshold else "rejected" if hi < threshold else "pending"
    if comparison == ">":
        return "supported" if lo > threshold else "rejected" if hi <= threshold else "pending"
    if comparison == "<=":
        return "supported" if hi <= threshold else "rejected" if lo > threshold else "pending"
    if comparison == "<":
        return "supported" if hi < threshold else "rejected" if lo >= threshold else "pending"
    raise ValueError(f"unknown comparison {comparison!r}; valid: <, <=, >, >=")


def margin_of(comparison: str, value: float, threshold: float) -> tuple[float, float | None]:
    """(margin, relative margin); positive = on the claim's side."""
    sign = 1.0 if comparison in (">", ">=") else -1.0
    m = sign * (value - threshold)
    return m, (m / abs(threshold) if threshold != 0 and np.isfinite(threshold) else None)


def pending(claim_id: str, reason: str, **kw: Any) -> Verdict:
    return Verdict(claim_id=claim_id, verdict="pending", reason=reason, **kw)


def _kind_flags(kinds: list[str]) -> tuple[str, bool, bool]:
    uniq = sorted(set(kinds))
    sim = [k == "simulate" for k in kinds]
    return "+".join(uniq), all(sim), any(sim) and not all(sim)


def judge_absolute(claim_id: str, comparison: str, threshold: float, est: Estimate,
                   *, detail: dict[str, Any] | None = None) -> Verdict:
    """Verdict of ``est ⋄ threshold``."""
    kind, sim_only, partly = _kind_flags([est.kind])
    common = dict(evidence_kind=kind, run_ids=est.run_ids, simulation_only=sim_only,
                  partly_simulated=partly, threshold=threshold, detail=dict(detail or {}))
    if not np.isfinite(est.value):
        return pending(claim_id, "metric undefined on this evidence (no completed requests?)",
                       **common)
    verdict = side_of(comparison, est.lo, est.hi, threshold)
    margin, rel = margin_of(comparison, est.value, threshold)
    reason = "" if verdict != "pending" else "confidence interval straddles the threshold"
    return Verdict(claim_id=claim_id, verdict=verdict, value=est.value, ci_lo=est.lo,
                   ci_hi=est.hi, margin=margin, margin_rel=rel, reason=reason, **common)


def judge_relative(claim_id: str, comparison: str, factor: float, est: Estimate,
                   base: Estimate, *, confidence: float,
                   detail: dict[str, Any] | None = None) -> Verdict:
    """Verdict of ``est ⋄ factor × base``, bootstrapping both jointly (module doc)."""
    kind, sim_only, partly = _kind_flags([est.kind, base.kind])
    threshold = factor * base.value
    d = dict(detail or {})
    d.update(baseline_scenario=base.scenario, baseline_value=_num(base.value),
             baseline_ci=[_num(base.lo), _num(base.hi)], factor=factor,
             baseline_run_ids=list(base.run_ids), baseline_kind=base.kind)
    common = dict(evidence_kind=kind, run_ids=tuple(dict.fromkeys(est.run_ids + base.run_ids)),
                  simulation_only=sim_only, partly_simulated=partly, detail=d)
    if not (np.isfinite(est.value) and np.isfinite(base.value)):
        return pending(claim_id, "metric undefined on this evidence (no completed requests?)",
                       **common)
    if est.draws is None or base.draws is None:
        raise ValueError("relative claims need bootstrap draws on both sides")
    n = min(est.draws.size, base.draws.size)
    diff = est.draws[:n] - factor * base.draws[:n]
    dlo, dhi = interval(diff, confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = est.draws[:n] / base.draws[:n]
    rlo, rhi = interval(ratio, confidence)
    d.update(diff_ci=[_num(dlo), _num(dhi)], ratio=_num(est.value / base.value)
             if base.value else None, ratio_ci=[_num(rlo), _num(rhi)])
    verdict = side_of(comparison, dlo, dhi, 0.0)
    margin, rel = margin_of(comparison, est.value, threshold)
    reason = "" if verdict != "pending" else "joint interval of the difference straddles 0"
    return Verdict(claim_id=claim_id, verdict=verdict, value=est.value, ci_lo=est.lo,
                   ci_hi=est.hi, threshold=threshold, margin=margin, margin_rel=rel,
                   reason=reason, **common)
