"""A calibration file applied to a deployment (``--calibration FILE``; scenario field ``calibration``).

A calibration file (``servelab calibrate``, docs/calibration.md) holds a fitted
``perf.Efficiency`` and the deployment it was fitted on. With the option, that
efficiency replaces the engine profile's (kernel efficiencies, step/sequence/request
overheads); the engine profile still supplies the KV memory rule. Outputs record the
file's path and sha256. The efficiencies are per (engine, GPU, model, parallelism,
precision): where the deployment differs from the calibrated one, a warning says in
what.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .calibration_file import load_calibration
from ..errors import ConfigError
from ..perf import Deployment, Efficiency

__all__ = ["COMPARED_FIELDS", "Calibration", "load_applied"]

# Deployment properties the efficiencies depend on (what a mismatch warning names).
COMPARED_FIELDS = ("model", "gpu", "tp", "pp", "ep", "weight_dtype", "kv_dtype")


@dataclass(frozen=True, kw_only=True)
class Calibration:
    path: str
    sha256: str
    efficiency: Efficiency
    deployment: dict[str, Any] | None      # what it was fitted on (None: not recorded)

    @property
    def gpu(self) -> str | None:
        return (self.deployment or {}).get("gpu")

    def differences(self, dep: Deployment) -> list[str]:
        """``field: calibrated → used`` for each compared field that differs."""
        if not self.deployment:
            return ["the calibration file does not name its deployment"]
        used = {"model": dep.model.name, "gpu": dep.gpu.name, "tp": dep.tp, "pp": dep.pp,
                "ep": dep.ep, "weight_dtype": dep.weight_dtype, "kv_dtype": dep.kv_dtype}
        out = []
        for f in COMPARED_FIELDS:
            cal = self.deployment.get(f)
            if cal is not None and cal != used[f]:
                out.append(f"{f}: {cal} → {used[f]}")
        return out

    def apply(self, dep: Deployment) -> Deployment:
        return dataclasses.replace(dep, efficiency=self.efficiency)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "deployment": self.deployment,
                "efficiency": dataclasses.asdict(self.efficiency)}


def load_applied(path: str) -> Calibration:
    """Read ``path`` (``ConfigError`` naming the problem, as ``load_calibration``)."""
    eff = load_calibration(path)
    raw = Path(path).read_bytes()
    try:
        dep = json.loads(raw).get("deployment")
    except (ValueError, AttributeError):   # load_calibration already validated the JSON
        dep = None
    if dep is not None and not isinstance(dep, dict):
        raise ConfigError(f"{path!r}: 'deployment' must be an object, got {type(dep).__name__}")
    return Calibration(path=str(path), sha256=hashlib.sha256(raw).hexdigest(), efficiency=eff,
                       deployment=dep)
