"""Fit :class:`servelab.perf.Efficiency` parameters to measured observations.

Search (dependency-free, bounded, deterministic), in the box of bounds normalised to
``[0, 1]^k``:

1. a coarse joint grid (``grid_points`` values per parameter, cell centres; skipped
   above ``max_grid_evals`` points);
2. Nelder–Mead from the best grid point, restarted from its own result with a smaller
   simplex until a restart gains less than ``tol``, then a golden-section line search
   per coordinate (coordinate-descent polish) — all on a smooth robust surrogate: the
   mean of the smallest 75 % of ``|ln(pred/meas)|`` per kind;
3. the same refinement on the target objective, the median ``|ln(pred/meas)|`` per
   kind averaged over kinds (TTFT, TPOT), started from step 2's optimum and kept only
   where it lowers that median.

Why the surrogate: small-batch TPOT ≈ ``W/(memory·BW) + step_overhead_s`` makes a
valley a few percent wide along which the TTFT terms decide; the median is piecewise
flat there and trapped a coordinate descent (measured: memory 0.45 / overhead 1.2 ms for
a simulated truth of 0.55 / 3 ms, docs/calibration.md); the trimmed mean does not.

A deterministic split keeps ``holdout_fraction`` of the observations (CRC32 of
run/id) out of the fit; errors are reported on both splits.

Bounds keep the parameters physical: efficiencies in [0.05, 1.0] (fractions of a
datasheet peak); overheads in [0, hi] with ``hi`` the smallest measured TPOT (a fixed
per-step cost cannot exceed a whole step) for ``step_overhead_s`` and
``comm_latency_s``, that over the largest observed batch for ``seq_overhead_s``, the
smallest TTFT for ``request_overhead_s``; ``upper_bounds`` (kernel bounds) tighten them.

Identifiability (see docs/calibration.md): small-batch TPOT measures
``W/(memory·BW) + step_overhead_s`` only — one number for two parameters; TTFT of
prompts of several lengths in the compute-bound regime adds ``n·F/(compute·P) +
step_overhead_s``, whose intercept separates the overhead. Parameters without any
informative observation kind are left at their base value and listed in ``notes``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import ConfigError
from ..perf import Deployment, Efficiency
from .observations import Observations, is_holdout
from .predict import log_errors, mdape_pct, objective, predict

__all__ = [
    "DEFAULT_PARAMS",
    "EFFICIENCY_FIELDS",
    "CalibrationResult",
    "evaluate",
    "fit_efficiency",
    "split_observations",
]

EFFICIENCY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Efficiency))
DEFAULT_PARAMS: tuple[str, ...] = ("memory", "compute", "step_overhead_s")
EFF_LO, EFF_HI = 0.05, 1.0        # physical: a fraction of the datasheet peak
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
# which observation kinds inform which parameter (prefill also reads weights once per step)
_INFORMED_BY = {"compute": ("ttft",), "attention_compute": ("ttft",),
                "memory": ("tpot", "ttft"), "attention_memory": ("tpot",), "comm": ("tpot", "ttft"),
                "comm_latency_s": ("tpot", "ttft"), "step_overhead_s": ("tpot", "ttft"),
                "seq_overhead_s": ("tpot",), "request_overhead_s": ("ttft",)}


@dataclass(frozen=True, kw_only=True)
class CalibrationResult:
    efficiency: Efficiency                   # base with the fitted values put in
    base_efficiency: Efficiency
    params: tuple[str, ...]                  # parameters actually fitted
    fitted: dict[str, float]
    bounds: dict[str, tuple[float, float]]
    errors: dict[str, dict[str, dict[str, float | None]]]   # before|after → fit|holdout → kind → MdAPE %
    objective_before: float
    objective_after: float
    counts: dict[str, Any]
    evaluations: int
    notes: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "efficiency": {f: getattr(self.efficiency, f) for f in EFFICIENCY_FIELDS},
            "base_efficiency": {f: getattr(self.base_efficiency, f) for f in EFFICIENCY_FIELDS},
            "params": list(self.params), "fitted": dict(self.fitted),
            "bounds": {k: list(v) for k, v in self.bounds.items()},
            "errors_mdape_pct": self.errors,
            "objective_median_abs_log_error": {"before": self.objective_before,
                                               "after": self.objective_after},
            "counts": self.counts, "evaluations": self.evaluations, "notes": list(self.notes),
            "runs": list(self.runs),
        }


def split_observations(obs: Observations, holdout_fraction: float) -> tuple[Observations, Observations]:
    """(fit, holdout) by a deterministic hash of run/id; joins stay shared."""
    if not 0.0 <= holdout_fraction < 1.0:
        raise ConfigError(f"holdout_fraction={holdout_fraction} must be in [0, 1)")
    def part(keep: bool) -> Observations:
        return replace(obs, decode=tuple(d for d in obs.decode
                                         if is_holdout(d.id, d.run, holdout_fraction) != keep),
                       prefill=tuple(p for p in obs.prefill
                                     if is_holdout(p.id, p.run, holdout_fraction) != keep))
    return part(True), part(False)


def evaluate(dep: Deployment, obs: Observations) -> tuple[float, dict[str, float | None]]:
    """(objective, MdAPE % per kind and over all) of ``dep`` on ``obs``."""
    errs = log_errors(predict(dep, obs), obs)
    md = {k: mdape_pct(v) for k, v in errs.items()}
    md["all"] = mdape_pct(errs["tpot"] + errs["ttft"])
    return objective(errs), md


def _bounds(param: str, obs: Observations) -> tuple[float, float]:
    if param not in EFFICIENCY_FIELDS:
        raise ConfigError(f"unknown efficiency parameter {param!r}; known: {', '.join(EFFICIENCY_FIELDS)}")
    if not param.endswith("_s"):
        return EFF_LO, EFF_HI
    times = [d.tpot_s for d in obs.decode] or [p.ttft_s for p in obs.prefill]
    if param == "request_overhead_s":   # a per-request cost cannot exceed a whole TTFT
        times = [p.ttft_s for p in obs.prefill] or times
    hi = min(times)
    if param == "seq_overhead_s":
        hi /= max([max(b for b, _ in d.batch_weights) for d in obs.decode] or [1])
    return 0.0, hi


def _operating_points(obs: Observations) -> int:
    """Distinct measured conditions: TPOT by (batch, context sum), TTFT by (prompt, cached,
    decodes alongside). Identical requests repeat one equation; they do not add one."""
    decode = {(round(d.mean_batch, 2), round(d.mean_context_sum, -1)) for d in obs.decode}
    prefill = {(p.new_tokens, p.cached_tokens, p.num_decode) for p in obs.prefill}
    return len(decode) + len(prefill)


def _thin(items: tuple, cap: int) -> tuple:
    """At most ``cap`` items, evenly spaced (deterministic)."""
    if cap <= 0 or len(items) <= cap:
        return items
    step = len(items) / cap
    return tuple(items[int(i * step)] for i in range(cap))


def _golden(f: Callable[[float], float], lo: float, hi: float, iters: int) -> tuple[float, float]:
    a, b = lo, hi
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = f(d)
    return (c, fc) if fc <= fd else (d, fd)


def _nelder_mead(f: Callable[[list[float]], float], u0: list[float], step: float, *,
                 max_evals: int, tol: float) -> tuple[list[float], float]:
    """Nelder–Mead simplex (Nelder & Mead 1965; standard coefficients 1, 2, ½, ½) in the
    box [0, 1]^k, points clipped to the box. Adapts its shape to narrow curved valleys
    such as memory efficiency vs step overhead."""
    k = len(u0)
    clip = lambda v: [min(1.0, max(0.0, c)) for c in v]
    simplex = [clip(u0)]
    for i in range(k):
        v = list(u0)
        v[i] = v[i] + step if v[i] + step <= 1.0 else v[i] - step
        simplex.append(clip(v))
    vals = [f(v) for v in simplex]
    evals = len(vals)
    while evals < max_evals:
        order = sorted(range(k + 1), key=lambda i: vals[i])
        simplex, vals = [simplex[i] for i in order], [vals[i] for i in order]
        size = max(max(abs(a - b) for a, b in zip(v, simplex[0])) for v in simplex[1:])
        if vals[-1] - vals[0] <= tol and size < 1e-6 or size < 1e-9:
            break
        centroid = [sum(v[j] for v in simplex[:-1]) / k for j in range(k)]
        worst = simplex[-1]
        def towards(t: float) -> list[float]:
            return clip([c + t * (c - w) for c, w in zip(centroid, worst)])
        xr = towards(1.0); fr = f(xr); evals += 1
        if fr < vals[0]:
            xe = towards(2.0); fe = f(xe); evals += 1
            simplex[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            simplex[-1], vals[-1] = xr, fr
        else:
            xc = towards(0.5) if fr < vals[-1] else towards(-0.5)
            fc = f(xc); evals += 1
            if fc < min(fr, vals[-1]):
                simplex[-1], vals[-1] = xc, fc
            else:   # shrink towards the best
                b = simplex[0]
                simplex = [b] + [[bj + 0.5 * (vj - bj) for bj, vj in zip(b, v)] for v in simplex[1:]]
                vals = [vals[0]] + [f(v) for v in simplex[1:]]
                evals += k
    i = min(range(k + 1), key=lambda i: vals[i])
    return simplex[i], vals[i]


def _descend(f: Callable[[dict[str, float]], float], x: dict[str, float], best: float,
             names: Sequence[str], bounds: dict[str, tuple[float, float]], *, radius: float,
             rounds: int, golden_iters: int, tol: float) -> dict[str, float]:
    """Local refinement in the box normalised to [0, 1]^k: Nelder–Mead restarted from its
    own result (``rounds`` times at most, with a simplex of half the previous size,
    until a restart gains less than ``tol``), then one golden-section line search per
    coordinate over the trust radius (coordinate descent polish)."""
    span = [bounds[p][1] - bounds[p][0] for p in names]
    lo = [bounds[p][0] for p in names]
    u = [(x[p] - l) / s if s > 0 else 0.0 for p, l, s in zip(names, lo, span)]

    def point(v: Sequence[float]) -> dict[str, float]:
        return {p: l + s * min(1.0, max(0.0, c)) for p, l, s, c in zip(names, lo, span, v)}

    def fu(v: list[float]) -> float:
        return f(point(v))

    step = radius
    for _ in range(rounds):
        v, fv = _nelder_mead(fu, u, step, max_evals=150 * len(names), tol=tol)
        gain = best - fv
        if fv < best:
            best, u = fv, v
        if gain < tol:
            break
        step = max(step * 0.5, 1e-3)
    for i in range(len(names)):
        a, b = max(0.0, u[i] - radius), min(1.0, u[i] + radius)
        t, ft = _golden(lambda c, i=i, u=u: fu(u[:i] + [c] + u[i + 1:]), a, b, golden_iters)
        if ft < best:
            best, u = ft, u[:i] + [t] + u[i + 1:]
    return point(u)


def fit_efficiency(
    observations: Observations,
    base_deployment: Deployment,
    *,
    params: Sequence[str] = DEFAULT_PARAMS,
    holdout_fraction: float = 0.25,
    grid_points: int = 6,
    max_grid_evals: int = 400,
    rounds: int = 12,
    golden_iters: int = 18,
    tol: float = 1e-7,
    upper_bounds: dict[str, float] | None = None,
    max_search_observations: int = 600,
) -> CalibrationResult:
    """Fit ``params`` of ``base_deployment.efficiency`` to ``observations`` (module docstring).

    ``max_search_observations`` caps each kind's observations the search evaluates (an
    evenly spaced subset, for speed on long runs); reported errors use the whole split.
    ``upper_bounds`` tightens the physical bounds (e.g. ``{"memory": 0.89}`` from the
    kernel lab's copy bandwidth). Raises ``ConfigError`` without usable observations,
    for an unknown parameter, or when no requested parameter is informed by the data.
    """
    obs = observations
    if not obs.decode and not obs.prefill:
        raise ConfigError(
            "no usable observations: need ok requests with >= 2 output tokens (TPOT) or lone "
            f"prefills (TTFT); excluded: {obs.excluded or 'nothing'}")
    params = tuple(dict.fromkeys(params))
    if not params:
        raise ConfigError(f"no parameters to fit; choose from {', '.join(EFFICIENCY_FIELDS)}")
    fit_obs, hold_obs = split_observations(obs, holdout_fraction)
    if not fit_obs.decode and not fit_obs.prefill:
        fit_obs, hold_obs = obs, replace(obs, decode=(), prefill=())
    search_obs = replace(fit_obs, decode=_thin(fit_obs.decode, max_search_observations),
                         prefill=_thin(fit_obs.prefill, max_search_observations))
    kinds = {k for k, v in (("tpot", fit_obs.decode), ("ttft", fit_obs.prefill)) if v}
    notes: list[str] = []
    fitted_params = []
    for p in params:
        _bounds(p, obs)  # validates the name
        if kinds & set(_INFORMED_BY.get(p, ('tpot', 'ttft'))):
            fitted_params.append(p)
        else:
            notes.append(f"{p} not fitted: needs {' or '.join(k.upper() for k in _INFORMED_BY.get(p, ('tpot', 'ttft')))} "
                         "observations, none in the fit split")
    if not fitted_params:
        raise ConfigError("; ".join(notes))
    points = _operating_points(fit_obs)
    if points < len(fitted_params):
        notes.append(f"underdetermined: {len(fitted_params)} parameters fitted from {points} distinct "
                     "operating point(s) (prompt length, batch, context); many values fit equally "
                     "well — measure several prompt lengths and batch sizes")
    bounds = {p: _bounds(p, obs) for p in fitted_params}
    for p, hi in (upper_bounds or {}).items():   # e.g. kernel-measured peaks (kernel_bounds.py)
        if p in bounds:
            lo = bounds[p][0]
            if hi <= lo:
                raise ConfigError(f"upper bound {p}={hi} is not above its lower bound {lo}")
            bounds[p] = (lo, min(bounds[p][1], hi))
    base = base_deployment.efficiency
    evals = 0
    caches: dict[str, dict[tuple[float, ...], float]] = {"trimmed": {}, "median": {}}

    def make_f(loss: str) -> Callable[[dict[str, float]], float]:
        cache = caches[loss]
        def f(x: dict[str, float]) -> float:
            nonlocal evals
            key = tuple(x[p] for p in fitted_params)
            if key not in cache:
                evals += 1
                dep = replace(base_deployment, efficiency=replace(base, **x))
                cache[key] = objective(log_errors(predict(dep, search_obs), search_obs), loss=loss)
            return cache[key]
        return f

    surrogate, target = make_f("trimmed"), make_f("median")
    x = {p: min(max(getattr(base, p), bounds[p][0]), bounds[p][1]) for p in fitted_params}
    best = surrogate(x)
    grids = {p: [lo + (hi - lo) * (i + 0.5) / grid_points for i in range(grid_points)]
             for p, (lo, hi) in bounds.items()}
    if grid_points ** len(fitted_params) <= max_grid_evals:
        for combo in itertools.product(*(grids[p] for p in fitted_params)):
            cand = dict(zip(fitted_params, combo))
            if (v := surrogate(cand)) < best:
                best, x = v, cand
    kw = {"rounds": rounds, "golden_iters": golden_iters, "tol": tol}
    x = _descend(surrogate, x, surrogate(x), fitted_params, bounds, radius=1.0 / grid_points, **kw)
    polished = _descend(target, x, target(x), fitted_params, bounds, radius=0.25 / grid_points, **kw)
    if target(polished) < target(x):
        x = polished
    fitted_dep = replace(base_deployment, efficiency=replace(base, **x))
    errors: dict[str, dict[str, dict[str, float | None]]] = {"before": {}, "after": {}}
    for label, dep in (("before", base_deployment), ("after", fitted_dep)):
        for split, o in (("fit", fit_obs), ("holdout", hold_obs)):
            errors[label][split] = evaluate(dep, o)[1]
    counts = {"records": obs.num_records, "ok": obs.num_ok,
              "tpot_fit": len(fit_obs.decode), "ttft_fit": len(fit_obs.prefill),
              "tpot_holdout": len(hold_obs.decode), "ttft_holdout": len(hold_obs.prefill),
              "tpot_search": len(search_obs.decode), "ttft_search": len(search_obs.prefill),
              "excluded": dict(sorted(obs.excluded.items()))}
    return CalibrationResult(
        efficiency=fitted_dep.efficiency, base_efficiency=base, params=tuple(fitted_params),
        fitted=dict(x), bounds=bounds, errors=errors, objective_before=evaluate(base_deployment, fit_obs)[0],
        objective_after=evaluate(fitted_dep, fit_obs)[0], counts=counts, evaluations=evals, notes=tuple(notes), runs=obs.runs)
