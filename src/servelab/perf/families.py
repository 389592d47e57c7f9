"""Kernel efficiencies per GPU family, fitted on published results with shrinkage.

The roofline's achieved fractions of peak (:class:`~servelab.perf.deployment.Efficiency`)
are properties of the kernels a GPU architecture runs: cuBLAS/CUTLASS on NVIDIA Ampere,
Ada, Hopper and Blackwell; hipBLASLt/CK/AITER on AMD CDNA3. One global set fitted on
NVIDIA tables says nothing about an MI300X, so each family gets its own values, read
from the catalog's ``architecture`` field (``catalog/data/gpus.yaml``).

**Fit** (``python benchmarks/calibrate_families.py``; data and roles in
``benchmarks/data/README.md``): starting from the global fit (``FIT_NOTE``), coordinate
descent over the same grids as the global fit minimises the mean |log(predicted /
published)| over the family's rows whose ``role`` is ``fit`` — never a ``validate`` row.
Each row is predicted with its own engine's runtime overheads (a vLLM row keeps vLLM's
fitted step overhead), so a family fit only moves kernel efficiencies and, on
TensorRT-LLM rows, the per-step and per-sequence overheads.

**Shrinkage**: with ``n`` fit rows the shipped value is

    θ_family = θ_global + n / (n + N0) · (θ_fit − θ_global),      N0 = 10 rows

so a family with few rows stays near the global fit (a family with 10 rows moves half
way). A family without fit rows (none today) uses the global values and is reported as
uncalibrated.

The fitted table ships as ``perf/data/families.json`` (written by the fit script, with
the data files' SHA-256 and the rows each family rests on).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..catalog.gpus import GPU
from ..errors import ConfigError
from .deployment import Efficiency

__all__ = ["FAMILIES", "SHRINK_ROWS", "FITTED_FIELDS", "FamilyFit", "family_of",
           "family_fit", "family_efficiency", "shrink", "load_table"]

FAMILIES = ("ampere", "ada", "hopper", "blackwell", "cdna3")
# Prior strength of the global fit, in rows (module docstring). A choice, not a measurement:
# 10 rows is one published table (e.g. one model on one GPU across the ten ISL/OSL pairs
# of TensorRT-LLM's perf overview).
SHRINK_ROWS = 10
# Efficiency fields a family fit may move (attention_compute and comm_latency_s are not
# identified by the published rows and stay at their priors, as in the global fit).
FITTED_FIELDS = ("compute", "memory", "attention_memory", "comm", "step_overhead_s", "seq_overhead_s")


@dataclass(frozen=True, kw_only=True)
class FamilyFit:
    """One family's shipped efficiencies and what they rest on."""
    family: str
    efficiency: Efficiency
    fit_rows: int                 # rows with role "fit" the family fit used
    raw: dict                     # the unshrunk fit (field -> value)
    weight: float                 # n / (n + SHRINK_ROWS)
    sources: tuple[str, ...]      # data sources of the fit rows

    @property
    def calibrated(self) -> bool:
        return self.fit_rows > 0


def shrink(global_eff: Efficiency, raw: dict, n: int, n0: int = SHRINK_ROWS) -> Efficiency:
    """``global + n/(n+n0)·(raw − global)`` for every fitted field."""
    w = n / (n + n0) if n > 0 else 0.0
    vals = {k: getattr(global_eff, k) + w * (raw[k] - getattr(global_eff, k)) for k in FITTED_FIELDS if k in raw}
    return dataclasses.replace(global_eff, **vals)


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
        return FamilyFit(family=family, efficiency=base, fit_rows=0, raw={}, weight=0.0, sources=())
    n = int(entry["fit_rows"])
    return FamilyFit(family=family, efficiency=shrink(base, entry["raw"], n), fit_rows=n,
                     raw=dict(entry["raw"]), weight=n / (n + SHRINK_ROWS),
                     sources=tuple(entry.get("sources", ())))


def family_fit(gpu: GPU) -> FamilyFit:
    """The shipped fit of ``gpu``'s family."""
    return _fit_for(family_of(gpu))


def family_efficiency(gpu: GPU) -> Efficiency:
    """Kernel efficiencies (and TensorRT-LLM-style overheads) for ``gpu``'s family."""
    return family_fit(gpu).efficiency
