"""Observations and provenance from run folders (``recordio.write_run`` layout).

Each run's concurrency is computed from its own records (clocks of different runs are
not comparable), then the runs are merged. The deployment a run measured is named in
``RunMeta.config`` when its producer knew it (``model``, ``gpu``, ``tp``, ``dtype`` …);
:func:`deployment_hints` collects those so a caller can fill what the user left out.
An imported result whose send times are unknown (all arrivals 0) is refused unless it
was a burst (``request_rate`` inf): the overlaps would otherwise be invented.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..recordio import read_run
from .observations import Observations, merge_observations, observations_from_records

__all__ = ["deployment_hints", "observations_from_runs"]

_HINT_KEYS = {"model": ("model", "model_id"), "gpu": ("gpu",), "tp": ("tp", "tensor_parallel_size"),
              "weight_dtype": ("dtype", "weight_dtype"), "kv_dtype": ("kv_dtype", "kv_cache_dtype")}

# vLLM's spellings of --dtype / --kv-cache-dtype (EngineArgs) -> servelab's; "auto" means
# "the model's dtype" and is dropped so the caller's default applies.
_DTYPE_SPELLINGS = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16",
                    "fp8_e4m3": "fp8", "fp8_e5m2": "fp8", "fp8_inc": "fp8", "auto": None}


def observations_from_runs(paths: Sequence[str | os.PathLike[str]], *, use_start: bool = True
                           ) -> tuple[Observations, list[dict[str, Any]], list[dict[str, Any]]]:
    """(merged observations, provenance per run, each run's meta.config)."""
    if not paths:
        raise ConfigError("no run folders given; pass at least one RUN_DIR written by "
                          "`servelab bench`, `servelab simulate --out` or an importer")
    parts, prov, configs = [], [], []
    for path in paths:
        try:
            run = read_run(path)
        except FileNotFoundError as e:
            raise ConfigError(str(e)) from None
        except (ValueError, TypeError, OSError) as e:     # broken meta.json / summary.json
            raise ConfigError(f"run folder {str(path)!r} cannot be read: {e}") from None
        rid = run.meta.run_id or Path(path).name
        _check_arrivals_known(run.meta.notes, run.meta.config or {}, str(path))
        parts.append(observations_from_records(run.records, run=rid, use_start=use_start))
        prov.append({"run_id": rid, "path": str(Path(path).resolve()), "kind": run.meta.kind,
                     "started_at": run.meta.started_at, "records": len(run.records),
                     "skipped_lines": run.skipped_lines})
        configs.append(dict(run.meta.config or {}))
    return merge_observations(parts), prov, configs


def _check_arrivals_known(notes: str, config: dict[str, Any], path: str) -> None:
    """An import without send times puts every arrival at 0; unless every request really
    was sent at once (request rate inf), the overlaps that give each request's batch are
    then fiction, so such a run is refused."""
    if "arrival times unknown" not in (notes or ""):
        return
    rate = config.get("request_rate")
    try:
        burst = rate is not None and math.isinf(float(rate))
    except (TypeError, ValueError):
        burst = False
    if not burst:
        raise ConfigError(
            f"run {path!r}: arrival times unknown (all set to 0) at request_rate={rate!r}, so the "
            "batch each request decoded in cannot be reconstructed; re-run `vllm bench serve` "
            "with a version that saves start_times, or use `servelab bench`")


def deployment_hints(configs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Deployment fields the runs agree on (``model``, ``gpu``, ``tp``, ``weight_dtype``,
    ``kv_dtype``; vLLM's dtype spellings normalised, "auto" left to the default); a field
    the runs disagree on raises ``ConfigError``."""
    out: dict[str, Any] = {}
    for field, keys in _HINT_KEYS.items():
        vals = {str(c[k]) for c in configs for k in keys[:1] if c.get(k) not in (None, "")} or \
               {str(c[k]) for c in configs for k in keys[1:] if c.get(k) not in (None, "")}
        if field.endswith("dtype"):
            vals = {_DTYPE_SPELLINGS.get(v.lower(), v.lower()) for v in vals} - {None}
        if len(vals) > 1:
            raise ConfigError(f"runs disagree on {field}: {', '.join(sorted(vals))}; calibrate "
                              "runs of one deployment together, or pass it explicitly")
        if vals:
            out[field] = vals.pop()
    return out
