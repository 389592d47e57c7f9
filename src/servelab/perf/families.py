"""Kernel efficiencies per GPU family, fitted on published results with shrinkage.

The roofline's achieved fractions of peak (:class:`~servelab.perf.deployment.Efficiency`)
are properties of the kernels a GPU architecture runs: cuBLAS/CUTLASS on NVIDIA Ampere,
Ada, Hopper and Blackwell; hipBLASLt/CK/AITER on AMD CDNA3. One global set fitted on
NVIDIA tables says nothing about an MI300X, so each family gets its own values, read
from the catalog's ``architecture`` field (``catalog/data/gpus.yaml``).

**Fit** (``python benchmarks/calibrate_families.py``; data and roles in
``benchmarks/data/README.md``): starting from the global fit (``FIT_NOTE``), coordinate
descent over grids minimises, over the family's rows whose ``role`` is ``fit`` (never a
``validate`` row),

    Σ_rows |ln(predicted / published)|  +  PRIOR_ROWS · Σ_θ d(θ, θ_global)

with ``d = |ln(θ/θ_global)|`` for the efficiencies (fractions of peak) and the all-reduce
latency, and ``d = |θ − θ_global| / scale`` for the overheads whose global value is 0
(scales in ``TIME_SCALES_S``).

**Shrinkage**: the penalty is a Laplace prior centred on the global fit, worth
``PRIOR_ROWS`` rows per unit of log deviation. The data term grows with the number of
rows and the penalty does not, so a family with few rows stays near the global fit and
moves a parameter only when many rows agree, and a parameter its rows do not identify
(e.g. all-reduce latency on single-GPU rows) stays at the global value. Each row is
predicted with its own engine's runtime overheads (a vLLM row keeps vLLM's fitted step
overhead). A family without fit rows uses the global values and is reported as
uncalibrated.

The fitted table ships as ``perf/data/families.json`` (written by the fit script, with
the data files' SHA-256 and the rows each family rests on).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..catalog.gpus import GPU
from ..errors import ConfigError
from .deployment import Efficiency

__all__ = ["FAMILIES", "PRIOR_ROWS", "FITTED_FIELDS", "TIME_SCALES_S", "FamilyFit", "family_of",
           "family_fit", "family_efficiency", "prior_penalty", "load_table"]

FAMILIES = ("ampere", "ada", "hopper", "blackwell", "cdna3")
# Prior strength of the global fit (module docstring). A choice, not a measurement: a
# parameter moves by a factor e only if that gains more than 2 rows' worth of |log error|
# in total, i.e. a handful of rows must agree before a family leaves the global fit.
PRIOR_ROWS = 2.0
# Scale of the overheads whose global value is 0 (no log distance): 1 ms per step (vLLM's
# fitted step overhead is 2.19 ms), 10 us per sequence per step. Every other field,
# all-reduce latency included, is positive and measured in log distance.
TIME_SCALES_S = {"step_overhead_s": 1e-3, "seq_overhead_s": 10e-6}
# Efficiency fields a family fit may move (attention_compute is not identified by any
# published row and stays at its prior, as in the global fit).
FITTED_FIELDS = ("compute", "memory", "attention_memory", "comm", "comm_latency_s",
                 "step_overhead_s", "seq_overhead_s")


@dataclass(frozen=True, kw_only=True)
class FamilyFit:
    """One family's shipped efficiencies and what they rest on."""
    family: str
    efficiency: Efficiency
    fit_rows: int                 # rows with role "fit" the family fit used
    raw: dict                     # the fitted fields (field -> value)
    sources: tuple[str, ...]      # data sources of the fit rows

    @property
    def calibrated(self) -> bool:
        return self.fit_rows > 0


def prior_penalty(eff: Efficiency, global_eff: Efficiency, rows: float = PRIOR_ROWS) -> float:
    """``rows · Σ d(θ, θ_global)`` over the fitted fields (module docstring)."""
    total = 0.0
    for k in FITTED_FIELDS:
        a, b = getattr(eff, k), getattr(global_eff, k)
        total += abs(a - b) / TIME_SCALES_S[k] if k in TIME_SCALES_S else abs(math.log(a / b))
    return rows * total


@lru_cache(maxsize=1)
def load_table() -> dict:
    """The shipped fit table (``perf/data/families.json``)."""
    text = resources.files("servelab.perf").joinpath("data", "families.json").read_text("utf-8")
    return json.loads(text)


def family_of(gpu: GPU) -> str:
    """The GPU's family (its catalog architecture)."""
    if gpu.architecture not in FAMILIES:
        raise ConfigError(f"GPU {gpu.name!r} has architecture {gpu.architecture!r}; "
                          f"known families: {', '.join(FAMILIES)}")
    return gpu.architecture


@lru_cache(maxsize=None)
def _fit_for(family: str) -> FamilyFit:
    table = load_table()
    entry = table["families"].get(family)
    base = Efficiency()
    if not entry or entry["fit_rows"] <= 0:
        return FamilyFit(family=family, efficiency=base, fit_rows=0, raw={}, sources=())
    return FamilyFit(family=family, efficiency=dataclasses.replace(base, **entry["raw"]),
                     fit_rows=int(entry["fit_rows"]), raw=dict(entry["raw"]),
                     sources=tuple(entry.get("sources", ())))


def family_fit(gpu: GPU) -> FamilyFit:
    """The shipped fit of ``gpu``'s family."""
    return _fit_for(family_of(gpu))


def family_efficiency(gpu: GPU) -> Efficiency:
    """Kernel efficiencies (and TensorRT-LLM-style overheads) for ``gpu``'s family."""
    return family_fit(gpu).efficiency
