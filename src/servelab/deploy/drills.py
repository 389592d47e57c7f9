"""A decision file of drills for a fleet (``servelab decide`` judges it).

Scenarios, all the fleet of the target with its own rate, duration and seed:

* ``planned`` — as planned;
* ``burst-3x`` — a 3× arrival burst over the middle third of the window;
* ``replica-lost`` — one replica killed a third into the window, its in-flight
  requests retried (what a node failure does behind a retrying gateway);
* ``cold-start`` — the fleet starts at the autoscaler's floor (at least one replica)
  and must scale to the load through the scenario's provisioning and model-load delays;
* ``spot-reclaim`` — ``spot_replicas`` replicas (default 1) reclaimed at the same moment
  a third into the window, in-flight requests retried.

Claims for every drill: each SLO target met (``<metric>_p<q> <= threshold``) and
delivery ≥ 0.99, on simulated evidence (``min_requests`` 100).
"""

from __future__ import annotations

from typing import Any

from ._source import Target

__all__ = ["drill_file", "DRILLS"]

DRILLS = ("planned", "burst-3x", "replica-lost", "cold-start", "spot-reclaim")


def drill_file(t: Target, *, spot_replicas: int = 1) -> dict[str, Any]:
    """The decision file as a mapping (write it as YAML)."""
    from ..scenario import build

    sc = t.scenario
    base = sc.model_dump(mode="json", exclude_defaults=True)
    d = sc.duration_s
    third = round(d / 3.0, 3)
    auto = sc.autoscaler
    scen: dict[str, dict[str, Any]] = {}
    scen["planned"] = dict(base)
    scen["burst-3x"] = {**base, "burst": {"factor": 3.0, "start_s": third, "duration_s": third}}
    scen["replica-lost"] = {**base, "faults": [{"at_s": third, "replica": 0, "in_flight": "retry"}]}
    if auto is not None:
        floor = max(1, auto.min_replicas)
        scen["cold-start"] = {**base, "replicas": floor, "autoscaler": auto.model_dump(mode="json")}
    else:
        scen["cold-start"] = {**base, "replicas": 1,
                              "autoscaler": {"min_replicas": 1, "max_replicas": max(1, sc.replicas)}}
    k = max(1, min(spot_replicas, sc.replicas))
    scen["spot-reclaim"] = {**base, "faults": [{"at_s": third, "replica": i, "in_flight": "retry"}
                                               for i in range(k)]}
    for s in scen.values():
        s["experiments"] = [{"kind": "simulate"}]
    claims: list[dict[str, Any]] = []
    slo = build.slo(sc)
    for name in scen:
        for tg in slo.targets:
            metric = f"{tg.metric}_p{tg.percentile:g}"
            claims.append({"id": f"{name}-{metric}", "scenario": name, "metric": metric, "comparison": "<=",
                           "threshold": tg.threshold_s,
                           "text": f"{name}: p{tg.percentile:g} {tg.metric.upper()} within the SLO {tg.threshold_s:g} s",
                           "evidence": {"kinds": ["simulate"], "min_requests": 100}})
        claims.append({"id": f"{name}-delivery", "scenario": name, "metric": "delivery", "comparison": ">=",
                       "threshold": 0.99, "text": f"{name}: at least 99% of requests delivered",
                       "evidence": {"kinds": ["simulate"], "min_requests": 100}})
    cold = ""
    if auto is not None:
        cold = (f" Cold start: provisioning {auto.provisioning_delay_s:g} s + model load "
                f"{auto.model_load_delay_s:g} s.")
    return {"name": f"drills-{t.name}",
            "description": f"Drills for the fleet of {t.source}: {sc.replicas} × {sc.gpu} (tp{sc.tp} pp{sc.pp}) at "
                           f"{build.rate_rps(sc):g} req/s for {d:g} s.{cold}",
            "scenarios": scen, "claims": claims}
