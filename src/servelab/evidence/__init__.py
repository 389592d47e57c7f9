"""The evidence ledger: claims judged supported / rejected / pending, with provenance.

A decision file (YAML, :mod:`.schema`) names scenarios, the experiments that produce
records for them (simulate, bench, imports, kernel-lab results) and claims about
metrics. :func:`run_decision` runs what is missing, judges every claim on bootstrap
intervals (:mod:`.verdict`) and stores runs, records, claims and the verdict history
in an SQLite ledger (:class:`Ledger`). See docs/evidence.md.
"""

from __future__ import annotations

from ._scrub import scrub
from .decision import DecisionResult, ExperimentStatus, judge_claim, run_decision
from .estimates import RunEvidence, estimate, kernel_estimate
from .ledger import INLINE_MAX_RECORDS, Ledger, default_ledger_path
from .runner import RunnerUnavailable
from .schema import Claim, Decision, Scenario, load_decision, parse_decision
from .verdict import Estimate, Verdict, judge_absolute, judge_relative, side_of

__all__ = [
    "Ledger", "default_ledger_path", "INLINE_MAX_RECORDS", "scrub",
    "Decision", "Scenario", "Claim", "load_decision", "parse_decision",
    "Estimate", "Verdict", "judge_absolute", "judge_relative", "side_of",
    "RunEvidence", "estimate", "kernel_estimate",
    "DecisionResult", "ExperimentStatus", "run_decision", "judge_claim",
    "RunnerUnavailable",
]
