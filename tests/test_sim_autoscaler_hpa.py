"""The autoscaler's tolerance band and scale-down stabilization window, on a load whose
running count is known at every poll, against scale events counted by hand.

The load: 20 long requests at t = 0 (they run until ~600 s; the least-outstanding
router puts 10 on each of the 2 starting replicas) and, from t = 100 s, a short request
every 30 s (ten of them, at 100, 130, …, 370) that runs ~10 s, so a poll at 105, 135,
…, 375 s sees 21 requests running and every other poll before ~600 s sees 20. A late
request at 800 s keeps the autoscaler polling after the long ones end (0 running).
Polls every 15 s, metric ``running``, target 10 per replica, delays 0, bounds 1..4.

The HPA rule gives ``ceil(cur · mean / 10)`` = ``ceil(R / 10)``: 3 when R = 21, 2 when R = 20
— a count that sits on the boundary, where an autoscaler without tolerance flaps.
"""

from __future__ import annotations

import pytest

from servelab.catalog import RequestSpec
from servelab.errors import ConfigError
from servelab.sim import AutoscalerConfig, ReplicaSpec, SchedulerConfig, SimConfig, simulate
from servelab.sim.fakes import ConstantStepModel

SHORT = [100.0 + 30.0 * k for k in range(10)]


def _run(tolerance: float, window_s: float):
    reqs = [RequestSpec(id=f"long{i}", arrival_s=0.0, input_tokens=16, output_tokens=600) for i in range(20)]
    reqs += [RequestSpec(id=f"short{k}", arrival_s=t, input_tokens=16, output_tokens=10)
             for k, t in enumerate(SHORT)]
    reqs.append(RequestSpec(id="late", arrival_s=800.0, input_tokens=16, output_tokens=1))
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=10_000), step_model=ConstantStepModel(step_s=1.0),
                       count=2)
    auto = AutoscalerConfig(metric="running", target=10.0, poll_interval_s=15.0, cooldown_s=window_s,
                            tolerance=tolerance, min_replicas=1, max_replicas=4)
    res = simulate(SimConfig(replicas=(spec,), router="least_outstanding", autoscaler=auto), reqs)
    assert all(r.status == "ok" for r in res.records)
    ups = [t for t, kind, _ in res.events if kind == "scale_up"]
    downs = [t for t, kind, _ in res.events if kind == "scale_down"]
    end_long = max(r.finish_s for r in res.records if r.id.startswith("long"))
    return ups, downs, end_long


def _first_poll_after(t: float) -> float:
    return 15.0 * (int(t // 15.0) + 1)


def test_without_tolerance_or_window_the_autoscaler_flaps_on_every_poll():
    # tolerance 0, window 0 = the instantaneous rule: up at each poll with R = 21
    # (105, 135, …, 375: ten), down at each next poll with R = 20 (120, …, 390: ten),
    # and one more down to min 1 at the first poll after the long requests end.
    ups, downs, end_long = _run(tolerance=0.0, window_s=0.0)
    assert ups == [105.0 + 30.0 * k for k in range(10)]
    assert downs == [120.0 + 30.0 * k for k in range(10)] + [_first_poll_after(end_long)]
    assert len(ups) + len(downs) == 21


def test_window_alone_holds_the_replica_up_until_the_flapping_stops():
    # window 60 s, no tolerance: up at 105; a scale-down needs every recommendation of
    # (now − 60, now] at 2, first true at 435 (the last 3 was at 375, which 435 − 60 drops);
    # after the long requests end (recommendation 1) the polls at p, p + 15, p + 30 still
    # hold a 2 in the window, so down at p + 45.
    ups, downs, end_long = _run(tolerance=0.0, window_s=60.0)
    p = _first_poll_after(end_long)
    assert ups == [105.0]
    assert downs == [435.0, p + 45.0]


def test_tolerance_band_stops_the_flapping():
    # R = 21 on 2 replicas: ratio 21 / 20 = 1.05, inside the 10 % band -> keep 2. The only
    # event is the scale-down to 1 after the long requests end, at p + 45 (window 60 s).
    ups, downs, end_long = _run(tolerance=0.1, window_s=60.0)
    assert ups == []
    assert downs == [_first_poll_after(end_long) + 45.0]


def test_defaults_are_the_kubernetes_hpa_ones_and_bad_tolerance_is_refused():
    a = AutoscalerConfig()
    assert (a.tolerance, a.cooldown_s, a.poll_interval_s) == (0.1, 300.0, 15.0)
    with pytest.raises(ConfigError, match="tolerance must be >= 0"):
        AutoscalerConfig(tolerance=-0.1)


def test_scenario_tolerance_reaches_the_simulator():
    from servelab.scenario import build, resolve

    sc = resolve({"model": "llama-3.1-8b", "autoscaler": {"max_replicas": 4, "tolerance": 0.25, "cooldown_s": 60}})
    a = build.sim_config(sc).autoscaler
    assert (a.tolerance, a.cooldown_s) == (0.25, 60.0)
    assert build.sim_config(resolve({"model": "llama-3.1-8b", "autoscaler": {}})).autoscaler.tolerance == 0.1
