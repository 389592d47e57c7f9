"""Re-running a planned day: each pool of a fleet-day file set up as a ``plan-day`` JSON
(``servelab plan-day --out x.md`` writes ``x.json``) planned it — the chosen GPU, TP, PP
and dtypes (read from the pool's ``shape``, e.g. ``TP2 … bf16/kv-fp8``), the plan's
hour-0 replicas and its autoscaler settings (``servelab simulate-day --plan``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..scenario import build
from .dayplanner import day_scenario

__all__ = ["pools_with_plan"]


def pools_with_plan(pools: list[tuple[str, Any]], plan_file: str) -> list[tuple[str, Any]]:
    """``(name, scenario)`` pools with the configuration of the plan-day JSON ``plan_file``
    (GPU, TP, PP, dtypes of the pool's shape), its hour-0 replicas and its autoscaler;
    ``ConfigError`` when the file is not a plan-day JSON or lacks a pool."""
    try:
        plan = json.loads(Path(plan_file).read_text("utf-8"))
        by_name = {p["name"]: p for p in plan["pools"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--plan {plan_file}: not a plan-day JSON ({exc})") from None
    out = []
    for name, sc in pools:
        if name not in by_name:
            raise ConfigError(f"--plan {plan_file} has no pool {name!r}; it has {', '.join(by_name)}")
        p = by_name[name]
        tp = int(p["shape"].split()[0].removeprefix("TP"))
        wd, kd = p["shape"].split()[-1].split("/kv-")
        sc = build.derive(sc, gpu=p["gpu"], tp=tp, pp=p["gpus_per_replica"] // tp, weight_dtype=wd, kv_dtype=kd)
        out.append((name, day_scenario(sc, start_h=0, hours=sc.duration_s / 3600.0,
                                       replicas=p["replicas_per_hour"][0], autoscaler=p["autoscaler"])))
    return out
