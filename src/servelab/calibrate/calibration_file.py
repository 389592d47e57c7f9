"""The calibration JSON: what a fit found, on what data, and how to load it back.

Layout (``schema`` = ``servelab.calibration/1``)::

    {"schema": "servelab.calibration/1", "created_at": ISO-8601 UTC,
     "efficiency": {every perf.Efficiency field: value},      # what load_calibration returns
     "fitted": {param: value}, "params": [...], "bounds": {param: [lo, hi]},
     "base_efficiency": {...}, "errors_mdape_pct": {before|after: {fit|holdout: {tpot, ttft, all}}},
     "objective_median_abs_log_error": {"before": x, "after": y},
     "counts": {...}, "notes": [...],
     "deployment": {"model", "gpu", "tp", "pp", "weight_dtype", "kv_dtype", ...},
     "provenance": {"runs": [{"run_id", "path", "kind", "records"}], "servelab": version},
     "kernel_bounds": {...} | null}

``load_calibration`` reads only ``efficiency`` (validated: known fields, efficiencies
in (0, 1], times >= 0) so the file stays loadable whatever else it carries.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError
from ..perf import Deployment, Efficiency

__all__ = ["SCHEMA", "calibration_dict", "deployment_dict", "load_calibration", "write_calibration"]

SCHEMA = "servelab.calibration/1"
_FIELDS = tuple(f.name for f in fields(Efficiency))


def deployment_dict(dep: Deployment) -> dict[str, Any]:
    """The deployment a calibration holds for (names, not the full specs)."""
    return {"model": dep.model.name, "gpu": dep.gpu.name, "tp": dep.tp, "pp": dep.pp, "ep": dep.ep,
            "weight_dtype": dep.weight_dtype, "kv_dtype": dep.kv_dtype,
            "max_num_seqs": dep.max_num_seqs, "max_num_batched_tokens": dep.max_num_batched_tokens}


def calibration_dict(*, result: Any | None = None, deployment: Deployment | None = None,
                     runs: list[dict[str, Any]] | None = None,
                     kernel_bounds: Any | None = None,
                     efficiency: Efficiency | None = None) -> dict[str, Any]:
    """The calibration JSON object for a fit ``result`` (``CalibrationResult``) and/or
    kernel bounds; ``efficiency`` defaults to the fit's, else the deployment's."""
    d: dict[str, Any] = {"schema": SCHEMA, "created_at": datetime.now(UTC).isoformat()}
    if result is not None:
        d.update(result.to_dict())
        d.pop("runs", None)
    eff = efficiency or (result.efficiency if result is not None else None) \
        or (deployment.efficiency if deployment is not None else None)
    if eff is not None:
        d["efficiency"] = {f: getattr(eff, f) for f in _FIELDS}
    d["deployment"] = deployment_dict(deployment) if deployment is not None else None
    d["provenance"] = {"runs": runs or [], "servelab": __version__}
    d["kernel_bounds"] = kernel_bounds.to_dict() if kernel_bounds is not None else None
    return d


def write_calibration(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write the calibration JSON atomically (temporary file, then rename)."""
    from .._files import atomic_write_text
    return atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")


def load_calibration(path: str | os.PathLike[str]) -> Efficiency:
    """The ``perf.Efficiency`` stored in a calibration JSON; ``ConfigError`` naming the
    problem when the file, its schema or a value is wrong."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"calibration file {str(p)!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"calibration file {str(p)!r} is not JSON: {e}") from None
    except OSError as e:
        raise ConfigError(f"calibration file {str(p)!r} cannot be read: {e.strerror or e}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"{str(p)!r}: schema {got!r}; expected {SCHEMA!r}")
    eff = data.get("efficiency")
    if not isinstance(eff, dict) or not eff:
        raise ConfigError(f"{str(p)!r} has no 'efficiency' object (a kernel-bounds-only file "
                          "gives bounds, not a model)")
    unknown = sorted(set(eff) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{str(p)!r}: unknown efficiency fields {unknown}; known: {', '.join(_FIELDS)}")
    for k, v in eff.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise ConfigError(f"{str(p)!r}: efficiency {k}={v!r} is not a finite number")
        if k.endswith("_s") and v < 0:
            raise ConfigError(f"{str(p)!r}: {k}={v} must be >= 0 seconds")
        if not k.endswith("_s") and not 0.0 < v <= 1.0:
            raise ConfigError(f"{str(p)!r}: {k}={v} must be a fraction of peak in (0, 1]")
    return Efficiency(**{k: float(v) for k, v in eff.items()})
