"""The simulator's sampled gauges as the ``server`` section of a run's time series.

``SimResult.timeseries`` samples the fleet every ``timeseries_interval_s``: requests
running and waiting (summed over live replicas), KV-cache usage (mean fraction of
blocks in use over live replicas, 0–1) and ready replicas. ``server_section_of``
renames nothing and drops the per-replica detail, so a simulated run's
``timeseries.json`` has the same ``server`` series names as a measured one
(``servelab.load.scrape.server_series``): ``running``, ``waiting``, ``kv_usage``,
plus ``replicas``.
"""

from __future__ import annotations

from typing import Any

from ..metrics import server_section

__all__ = ["server_section_of"]

_GAUGES = ("running", "waiting", "kv_usage", "replicas")


def server_section_of(ts: dict[str, Any] | None) -> dict[str, Any] | None:
    """``server`` section from ``SimResult.timeseries``; None when it has no samples."""
    if not ts or not ts.get("t_s"):
        return None
    return server_section("simulator", ts["t_s"], {k: ts[k] for k in _GAUGES if k in ts})
