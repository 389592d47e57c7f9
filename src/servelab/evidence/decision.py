"""Running a decision: experiments that are missing, then a verdict for every claim.

Order of work for ``run_decision``:

1. For each scenario and experiment, a fingerprint (``runner.fingerprint``) finds a
   complete run in the ledger to reuse; otherwise (or with ``rerun``) the experiment
   runs: the run is inserted as ``running`` first, its records stored, then marked
   ``complete`` (``failed`` with the error if the runner raised; nothing is stored as
   evidence for a runner that is not available — the experiment stays pending).
2. Each claim is judged on the runs of its scenario(s) whose kind the claim accepts
   (``evidence.kinds``) and that offered at least ``evidence.min_requests`` requests:
   a measured run (``bench``/imports) outranks a simulated one; when both exist, the
   simulated value is computed too and the pair is reported and stored as calibration
   data (relative difference = (measured − simulated) / |simulated|; they *disagree*
   when their intervals do not overlap or their verdicts differ).
3. The verdict is appended to the ledger's history.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..errors import LedgerError, ServelabError
from .estimates import RunEvidence, estimate, kernel_estimate, matching_kernel_rows
from .ledger import Ledger
from ..scenario import build
from .runner import RunnerUnavailable, experiment_kind, fingerprint, run_experiment
from .schema import Claim, Decision, RelativeThreshold, Scenario
from .verdict import Estimate, Verdict, judge_absolute, judge_relative, pending, side_of

__all__ = ["ExperimentStatus", "DecisionResult", "run_decision", "judge_claim",
           "KERNEL_ALIASES", "MEASURED_KINDS"]

MEASURED_KINDS = ("bench", "import-vllm", "import-guidellm")
# Claim metric aliases over kernel-lab metrics: pct_of_peak = 100 × fraction of measured peak.
KERNEL_ALIASES = {"pct_of_peak": (("frac_copy_bw", "frac_matmul_peak"), 100.0)}


@dataclass(kw_only=True)
class ExperimentStatus:
    scenario: str
    kind: str
    status: str                 # reused | ran | failed | pending
    run_id: str | None = None
    message: str = ""


@dataclass(kw_only=True)
class DecisionResult:
    decision: Decision
    experiments: list[ExperimentStatus] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    evidence: dict[str, list[RunEvidence]] = field(default_factory=dict)


def _evidence_kind(run_kind: str) -> str:
    return "bench" if run_kind in MEASURED_KINDS else run_kind


def _load(ledger: Ledger, run: dict[str, Any], sc_name: str, sc: Scenario) -> RunEvidence:
    kind = _evidence_kind(run["kind"])
    if kind == "kernels":
        return RunEvidence(run_id=run["id"], kind=kind, scenario=sc_name,
                           rows=ledger.load_rows(run["id"]))
    return RunEvidence(run_id=run["id"], kind=kind, scenario=sc_name,
                       records=ledger.load_records(run["id"]), duration_s=run["duration_s"],
                       slo=build.slo(sc), fleet_usd_per_hour=build.fleet_usd_per_hour(sc))


def _execute(ledger: Ledger, sc_name: str, sc: Scenario, exp: Any, base_dir: Path,
             rerun: bool) -> ExperimentStatus:
    kind = experiment_kind(exp)
    fp = fingerprint(sc, exp, base_dir)
    if not rerun:
        found = ledger.find_complete_run(fp)
        if found is not None:
            return ExperimentStatus(scenario=sc_name, kind=kind, status="reused",
                                    run_id=found["id"])
    config = {"scenario": sc.model_dump(mode="json", exclude={"experiments"}),
              "experiment": exp.model_dump(mode="json", by_alias=True)}
    run_id = ledger.start_run(kind=kind, config=config, fingerprint=fp, scenario=sc_name)
    try:
        out = run_experiment(sc, exp, base_dir=base_dir)
    except RunnerUnavailable as exc:
        ledger.finish_run(run_id, status="incomplete", error=f"runner unavailable: {exc}")
        return ExperimentStatus(scenario=sc_name, kind=kind, status="pending", run_id=run_id,
                                message=f"pending (runner unavailable: {exc})")
    except (ServelabError, ValueError, OSError) as exc:
        ledger.finish_run(run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        return ExperimentStatus(scenario=sc_name, kind=kind, status="failed", run_id=run_id,
                                message=str(exc))
    except KeyboardInterrupt:
        ledger.finish_run(run_id, status="incomplete", error="interrupted")
        raise
    if kind == "kernels":
        ledger.store_rows(run_id, out.rows)
        n = len(out.rows)
    else:
        ledger.store_records(run_id, out.records,
                             meta={"timeseries": out.timeseries} if out.timeseries else None)
        n = len(out.records)
    ledger.finish_run(run_id, status="complete" if out.complete else "incomplete",
                      duration_s=out.duration_s, n_records=n, error=out.notes)
    ledger.set_run_info(run_id, gpu=out.gpu, engine_version=out.engine_version)
    return ExperimentStatus(scenario=sc_name, kind=kind, status="ran", run_id=run_id)


def _pick(evs: list[RunEvidence], claim: Claim, kind: str) -> tuple[RunEvidence | None, str]:
    """Latest run of ``kind`` with enough requests, or None and why."""
    runs = [e for e in evs if e.kind == kind]
    if not runs:
        return None, f"no {kind} evidence"
    enough = [e for e in runs if e.n >= claim.evidence.min_requests]
    if not enough:
        e = runs[-1]
        return None, (f"too few requests in {kind} run {e.run_id}: {e.n} < "
                      f"min_requests {claim.evidence.min_requests}")
    return enough[-1], ""


def _choose(claim: Claim, sc_name: str, evs: list[RunEvidence]
            ) -> tuple[RunEvidence | None, RunEvidence | None, str]:
    """(deciding run, simulated run when a measured one decides, pending reason)."""
    measured = sim = None
    why: list[str] = []
    if "bench" in claim.evidence.kinds:
        measured, r = _pick(evs, claim, "bench")
        why += [r] if r else []
    if "simulate" in claim.evidence.kinds:
        sim, r = _pick(evs, claim, "simulate")
        why += [r] if r else []
    if measured is not None:
        return measured, sim, ""
    if sim is not None:
        return sim, None, ""
    return None, None, f"scenario {sc_name}: " + "; ".join(why or ["no evidence"])


def _same_requests(a: RunEvidence, b: RunEvidence) -> bool:
    """True when both runs hold the same offered request ids (a paired design)."""
    return len(a.records) == len(b.records) and \
        sorted(r.id for r in a.records) == sorted(r.id for r in b.records)


def _by_id(e: RunEvidence) -> RunEvidence:
    return replace(e, records=sorted(e.records, key=lambda r: r.id))


def _kernel_side(claim: Claim, sc_name: str, evs: list[RunEvidence]) -> tuple[Estimate | None, str]:
    assert claim.kernel is not None
    runs = [e for e in evs if e.kind == "kernels"]
    if not runs:
        return None, f"scenario {sc_name}: no kernels evidence"
    names, scale = KERNEL_ALIASES.get(claim.metric, ((claim.metric,), 1.0))
    k = claim.kernel
    for e in reversed(runs):
        rows = [r for name in names for r in matching_kernel_rows(
            e.rows, name, kernel=k.kernel, provider=k.provider, dtype=k.dtype, shape=k.shape)]
        if rows:
            scaled = [{**r, **{q: r[q] * scale for q in ("p50", "p95", "p99")
                               if r.get(q) is not None}} for r in rows]
            return kernel_estimate(e.run_id, sc_name, scaled), ""
    return None, (f"scenario {sc_name}: no kernel-lab row with metric {claim.metric!r} for "
                  f"{k.model_dump(exclude_none=True)}")


def _calibration(claim: Claim, primary: Estimate, sim: Estimate, threshold: float | None
                 ) -> dict[str, Any]:
    rel = (primary.value - sim.value) / abs(sim.value) if sim.value else None
    overlap = not (primary.hi < sim.lo or sim.hi < primary.lo)
    sim_side = side_of(claim.comparison, sim.lo, sim.hi, threshold) if threshold is not None \
        else None
    meas_side = side_of(claim.comparison, primary.lo, primary.hi, threshold) \
        if threshold is not None else None
    return {"scenario": primary.scenario, "metric": claim.metric,
            "measured_value": primary.value, "measured_ci": [primary.lo, primary.hi],
            "measured_run": primary.run_ids[0], "simulated_value": sim.value,
            "simulated_ci": [sim.lo, sim.hi], "simulated_run": sim.run_ids[0],
            "rel_diff": rel, "simulated_verdict": sim_side,
            "disagree": (not overlap) or (sim_side is not None and sim_side != meas_side)}


def judge_claim(claim: Claim, evidence: dict[str, list[RunEvidence]], *,
                confidence: float | None = None, n_resamples: int = 1000, seed: int = 0) -> Verdict:
    """Judge one claim on loaded evidence (pure: no ledger access).

    Relative claims whose two runs hold the same offered requests (same seed and
    workload) are bootstrapped *paired*: both record lists are put in request-id order
    and resampled with the same indices, so each resample compares the two
    configurations on the same requests. Otherwise the two runs are resampled
    independently. ``detail.paired`` says which.
    """
    conf = confidence or claim.confidence

    def est(e: RunEvidence, s: int) -> Estimate:
        return estimate(e, claim.metric, confidence=conf, n_resamples=n_resamples, seed=s)

    if claim.kernel is not None:
        kest, why = _kernel_side(claim, claim.scenario, evidence.get(claim.scenario, []))
        if kest is None:
            return pending(claim.id, why)
        assert not isinstance(claim.threshold, RelativeThreshold)
        return judge_absolute(claim.id, claim.comparison, float(claim.threshold), kest)
    pe, se, why = _choose(claim, claim.scenario, evidence.get(claim.scenario, []))
    if pe is None:
        return pending(claim.id, why)
    cal = []
    if isinstance(claim.threshold, RelativeThreshold):
        base_name = claim.threshold.scenario
        be, bse, why = _choose(claim, base_name, evidence.get(base_name, []))
        if be is None:
            primary = est(pe, seed)
            return pending(claim.id, why, value=primary.value, ci_lo=primary.lo,
                           ci_hi=primary.hi, run_ids=primary.run_ids)
        paired = _same_requests(pe, be)
        if paired:
            pe, be = _by_id(pe), _by_id(be)
        base_seed = seed if paired else seed + 1
        primary, base = est(pe, seed), est(be, base_seed)
        if se is not None:
            cal.append(_calibration(claim, primary, est(se, seed), None))
        if bse is not None:
            cal.append(_calibration(claim, base, est(bse, base_seed), None))
        v = judge_relative(claim.id, claim.comparison, claim.threshold.factor, primary, base,
                           confidence=conf)
        v.detail["paired"] = paired
    else:
        threshold = float(claim.threshold)
        primary = est(pe, seed)
        if se is not None:
            cal.append(_calibration(claim, primary, est(se, seed), threshold))
        v = judge_absolute(claim.id, claim.comparison, threshold, primary)
    if cal:
        v.detail["calibration"] = cal
    v.detail["n_requests"] = primary.n
    return v


def _with_experiment_notes(v: Verdict, claim: Claim, exps: list[ExperimentStatus]) -> Verdict:
    """Say why evidence is missing when an experiment of the claim's scenarios did not finish."""
    scenarios = {claim.scenario}
    if isinstance(claim.threshold, RelativeThreshold):
        scenarios.add(claim.threshold.scenario)
    notes = [f"{e.scenario} {e.kind}: {e.message or e.status}" for e in exps
             if e.scenario in scenarios and e.status in ("pending", "failed")]
    if not notes:
        return v
    return replace(v, reason=f"{v.reason}; " + "; ".join(notes))


def run_decision(
    decision: Decision, ledger: Ledger, *, base_dir: str | Path = ".", rerun: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> DecisionResult:
    """Run missing experiments and judge every claim (see the module docstring)."""
    base = Path(base_dir)
    for claim in decision.claims:              # before any experiment runs
        ledger.check_claim_owner(claim.id, decision.name)
    result = DecisionResult(decision=decision)
    for sc_name, sc in decision.scenarios.items():
        evs: list[RunEvidence] = []
        for exp in sc.experiments:
            if on_progress:
                on_progress(f"{sc_name}: {experiment_kind(exp)}")
            st = _execute(ledger, sc_name, sc, exp, base, rerun)
            result.experiments.append(st)
            if st.status in ("ran", "reused") and st.run_id:
                run = ledger.run(st.run_id)
                if run["status"] != "complete":
                    st.message = f"run {run['status']}: {run.get('error') or ''}".strip()
                    continue
                try:
                    evs.append(_load(ledger, run, sc_name, sc))
                except LedgerError as exc:
                    st.status, st.message = "failed", str(exc)
        result.evidence[sc_name] = evs
    for claim in decision.claims:
        if on_progress:
            on_progress(f"judging {claim.id}")
        v = judge_claim(claim, result.evidence, n_resamples=decision.bootstrap_resamples,
                        seed=decision.seed)
        if v.verdict == "pending" and v.value is None:
            v = _with_experiment_notes(v, claim, result.experiments)
        if "cost" in claim.metric:       # name the instances and prices behind every cost
            rel = getattr(claim.threshold, "scenario", None)      # a relative claim's baseline
            names = [claim.scenario] + ([rel] if rel else [])
            v.detail["price_source"] = {
                n: build.fleet_cost(decision.scenarios[n], output_tokens_per_s=0.0).price_source
                for n in names if n in decision.scenarios}
        ledger.upsert_claim(claim.id, spec=claim.model_dump(mode="json", by_alias=True),
                            decision=decision.name, text=claim.text)
        ledger.add_verdict(claim.id, v.to_dict())
        for c in v.detail.get("calibration", []):
            ledger.add_calibration(
                claim_id=claim.id, scenario=c["scenario"], metric=c["metric"],
                measured_value=c["measured_value"], simulated_value=c["simulated_value"],
                rel_diff=c["rel_diff"], measured_run=c["measured_run"],
                simulated_run=c["simulated_run"])
        result.verdicts.append(v)
    return result
