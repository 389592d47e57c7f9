"""What a simulated run of a scenario reports beyond the simulator's own output.

:func:`simulation_summary` stamps the run's metadata with the full scenario, the engine
profile and the calibration, and summarizes it (``sim.summary.summarize_result``) over
the scenario's throughput window, under its SLO. With ``bands`` the same requests are
simulated again with every step time at the two 80 % edges of the perf model's error
band (``perf.band.confidence_factor``: fitted on held-out rows where they exist, the
default factor elsewhere), giving an interval for every latency and rate (3 runs).
"""

from __future__ import annotations

from typing import Any

from ..catalog import get_gpu
from ..perf import get_engine
from ..perf.band import confidence_factor, edge_bands
from ..sim import simulate
from ..sim.summary import summarize_result
from . import build
from .io import dump_scenario

__all__ = ["simulation_summary", "edge_runs"]


def simulation_summary(sc: Any, result: Any, *, cal: Any = None, warnings: list[str] | None = None,
                       exact: bool = False, bands: bool = False, slo: Any = None) -> dict[str, Any]:
    """The summary of ``result`` (a ``sim.simulate`` run of ``sc``, under ``slo``, default
    the scenario's); sets ``result.meta.config``."""
    profile = get_engine(sc.engine.profile)
    slo_obj = slo if slo is not None else build.slo(sc)
    result.meta.config = {"scenario": dump_scenario(sc, full=True),
                          "engine_profile": profile.to_dict(),
                          "calibration": cal.to_dict() if cal is not None else None,
                          **result.meta.config}
    summary = summarize_result(result, slo=slo_obj, window_s=build.throughput_window_s(result.meta.duration_s),
                               engine=profile.name)
    summary["engine"] = profile.name
    summary["efficiency_source"] = "calibration" if cal is not None else f"engine profile {profile.name}"
    summary["calibration"] = cal.to_dict() if cal is not None else None
    if warnings:
        summary["warnings"] = warnings
    if bands:
        summary["bands"], summary["band"] = edge_runs(sc, summary, slo_obj, exact=exact, engine=profile.name)
    return summary


def edge_runs(sc: Any, summary: dict[str, Any], slo_obj: Any, *, exact: bool, engine: str
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same scenario (same requests) simulated with step times at the band's two edges:
    the bands of ``summary``'s metrics and the band used."""
    moe = build.load_model(sc.model).moe is not None
    band = confidence_factor(get_gpu(sc.gpu), engine, moe=moe, confidence="expected")
    edges = []
    for f in (band["lo_factor"], band["hi_factor"]):
        esc = build.derive(sc, step_time_factor=sc.step_time_factor * f)
        cfg = build.sim_config(esc, exact=exact, record_token_times=False, dep=build.deployment(esc))
        r = simulate(cfg, build.requests(esc))
        edges.append(summarize_result(r, slo=slo_obj, window_s=build.throughput_window_s(r.meta.duration_s),
                                      engine=engine))
    return edge_bands(summary, edges[0], edges[1], band), band
