"""Fleet-day planning: capacity mix against the marginal-hour rule, hourly demand against
hand integrals, sharded day simulation against unsharded runs, the plan-day command."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from servelab.catalog import ratecurve as rc
from servelab.cli import app
from servelab.errors import ConfigError
from servelab.plan import dayplan as dp
from servelab.plan.dayrun import run_shard, shard_tasks, simulate_day, split_count
from servelab.plan.fleetday import load_fleet_day
from servelab.scenario import build, resolve

runner = CliRunner()


# ------------------------------------------------------------------ capacity mix

def _marginal_rule(n: list[int], p_r: float, p_f: float) -> int:
    """Independent reference: add reserved unit R while it is busy in more than 24·p_r/p_f
    hours (its 24 h of reserved price beat the flexible hours it replaces)."""
    r = 0
    while sum(x >= r + 1 for x in n) * p_f > len(n) * p_r:
        r += 1
    return r


@pytest.mark.parametrize("n,p_r,p_f", [
    ([1] * 12 + [3] * 12, 0.6, 1.0),
    ([2, 2, 3, 5, 8, 8, 8, 7, 5, 3, 2, 2] * 2, 0.8, 1.0),
    ([4] * 24, 0.8, 0.67),
    ([0] * 20 + [9] * 4, 0.5, 1.0),
])
def test_best_reserved_follows_the_marginal_hour_rule(n, p_r, p_f):
    r, cost = dp.best_reserved(n, reserved_price=p_r, flex_price=p_f)
    assert r == _marginal_rule(n, p_r, p_f)
    assert cost == pytest.approx(24 * r * p_r + sum(max(0, x - r) for x in n) * p_f)


def test_best_reserved_hand_anchor():
    # 12 h at 1, 12 h at 3; reserved 0.6, on-demand 1: unit 1 busy 24 h > 14.4 → reserve;
    # unit 2 busy 12 h < 14.4 → on-demand. Cost 24·0.6 + 12·2 = 38.4
    assert dp.best_reserved([1] * 12 + [3] * 12, reserved_price=0.6, flex_price=1.0) == (1, pytest.approx(38.4))


def test_hourly_demand_wraps_the_day_and_widens_by_lead_and_cooldown():
    curve = rc.table([10.0] * 6 + [40.0] * 12 + [10.0] * 6, step_s=3600)
    d = dp.hourly_demand(curve, lead_s=600, cooldown_s=300)
    assert d.mean_rps[0] == pytest.approx(10.0) and d.requests[6] == pytest.approx(40 * 3600)
    # hour 5 ends at 06:00 but its replicas must carry 06:00–06:10 (lead): 40
    assert d.need_rps[5] == pytest.approx(40.0)
    # hour 18 starts at 18:00; 17:55–18:00 (cooldown) was still at 40
    assert d.need_rps[18] == pytest.approx(40.0)
    assert d.need_rps[19] == pytest.approx(10.0)
    # hour 23 wraps to 00:00–00:10 of the (periodic) next day: 10
    assert d.need_rps[23] == pytest.approx(10.0)
    assert dp.replicas_per_hour(d.need_rps, capacity_rps=10.0, headroom=1.1, spares=1)[:6] == [3, 3, 3, 3, 3, 6]


def test_growth_within_a_lead_time_on_a_linear_ramp():
    curve = rc.points([(0, 1.0), (86400, 2.0)])
    # λ(t + L)/λ(t) is largest at t = 0: 1 + L/86400 (past the end the periodic curve falls back)
    assert dp.growth_within(curve, 3600.0) == pytest.approx(1 + 3600 / 86400)


def test_morning_ramp_finds_the_longest_rise():
    n = [3, 3, 3, 4, 5, 6, 6, 6, 5, 4, 3, 3]
    assert dp.morning_ramp(n) == (3, 7)
    assert dp.morning_ramp([2] * 24) is None


def _pool(name, gpus, spot=False):
    return dp.PoolPlan(name=name, model="m", gpu="h100-sxm", shape="TP1", gpus_per_replica=1, priority=0,
                       spot=spot, capacity_rps=1.0, lead_time_s=0.0, growth_in_lead=1.0,
                       replicas_per_hour=gpus, gpus_per_hour=gpus, mean_rps=[0.0] * 24, requests_per_day=0.0,
                       output_tokens_per_day=0.0, on_demand_gpu_hour_usd=2.0, price_source="", reserved_replicas=0,
                       costs_per_day_usd={"mix": 2.0 * sum(gpus)},   # separately: all on demand (see below)
                       mix_detail={"reserved_gpus": 0}, autoscaler={}, gpu_hours_idle=0.0, ramp=None)


def test_sharing_reserved_gpus_between_pools_with_peaks_at_different_hours():
    a = _pool("a", [4] * 12 + [0] * 12)
    b = _pool("b", [0] * 12 + [4] * 12)
    # separately: each pool's GPUs are busy 12 h < 24·0.8 = 19.2 h → all on demand, 2 × 96 GPU-h × $2
    assert dp.best_reserved(a.gpus_per_hour, reserved_price=0.8, flex_price=1.0)[0] == 0
    s = dp.shared_reserved([a, b], reserved_fraction=0.8, spot_fraction=0.6)["h100-sxm"]
    # shared: 4 GPUs busy all day → reserve 4: 24 · 4 · 0.8 · $2 = $153.6 vs $192
    assert s["reserved_gpus"] == 4
    assert s["cost_per_day_usd"] == pytest.approx(153.6)
    assert s["separate_cost_per_day_usd"] == pytest.approx(192.0)
    assert s["sharing_wins"]


# ------------------------------------------------------------------ fleet-day files

_FLEET = """
name: tiny
prices: {{reserved_fraction: 0.8, spot_fraction: 0.6, source: "test prices"}}
autoscaler: {{poll_interval_s: 15, provisioning_delay_s: 60, model_load_delay_s: 30, cooldown_s: 120}}
pools:
  - name: chat
    scenario:
      model: llama-3.1-8b
      gpu: h100-sxm
      workload: chat
      slo: ttft_p95=2s,tpot_p95=50ms
      rate_curve: {{kind: table, rates_rps: {rates}, step_s: 3600}}
{extra}
"""


def _write(tmp_path, rates="[4, 8, 16, 8] ", extra=""):
    rates = "[" + ", ".join(["40"] * 6 + ["120"] * 12 + ["40"] * 6) + "]" if rates == "day" else rates
    p = tmp_path / "fleet.yaml"
    p.write_text(_FLEET.format(rates=rates, extra=extra))
    return p


def test_fleet_file_errors_name_the_pool_and_field(tmp_path):
    p = tmp_path / "f.yaml"
    p.write_text("prices: {reserved_fraction: 0.8, spot_fraction: 0.6, source: s}\n"
                 "pools: [{name: a, scenario: {model: llama-3.1-8b}}]\n")
    with pytest.raises(ConfigError, match="pool 'a'.*needs a rate_curve"):
        load_fleet_day(p)
    p.write_text("prices: {reserved_fraction: 1.5, spot_fraction: 0.6, source: s}\npools: []\n")
    with pytest.raises(ConfigError, match=r"prices.reserved_fraction.*less than or equal to 1"):
        load_fleet_day(p)
    p.write_text("prices: {reserved_fraction: 0.5, spot_fraction: 0.6, source: s}\n"
                 "pools: [{name: a, scenario: {model: llama-3.1-8b, rate_curve: {kind: table, rates_rps: [1]}}, "
                 "spt: true}]\n")
    with pytest.raises(ConfigError, match=r"pools\[0\].spt: unknown field"):
        load_fleet_day(p)


def test_example_fleet_day_file_loads():
    from pathlib import Path

    fleet, scs = load_fleet_day(Path(__file__).resolve().parents[1] / "examples" / "fleet-day" / "three-models.yaml")
    assert [p.name for p in fleet.pools] == ["chat-8b", "rag-70b", "code-moe"]
    for sc in scs:
        c = build.rate_curve(build.derive(sc, duration_s=86400))
        assert c.peak_rps() / (c.integral(0, 86400) / 86400) == pytest.approx(2 * 3 / (1 + 3), rel=1e-9)


# ------------------------------------------------------------------ sharded day simulation

def _pool_scenario(rate, replicas, seed):
    return resolve({"model": "llama-3.1-8b", "workload": "chat", "replicas": replicas, "seed": seed,
                    "router": "least-outstanding", "duration_s": 120,
                    "rate_curve": {"kind": "points", "points": [[0, rate / 2], [120, rate]]}})


def test_sharding_by_pool_is_exact():
    from servelab.sim import simulate

    pools = [("a", _pool_scenario(8.0, 1, 1)), ("b", _pool_scenario(12.0, 2, 2))]
    run = simulate_day(pools, jobs=1)
    for name, sc in pools:
        alone = simulate(build.sim_config(sc), build.requests(sc)).records
        mine = sorted((r for r in run.records if r.extra["pool"] == name), key=lambda r: r.id)
        alone = sorted(alone, key=lambda r: f"{name}/{r.id}")
        assert [r.id for r in mine] == [f"{name}/{r.id}" for r in alone]
        assert [(r.first_token_s, r.finish_s, r.status) for r in mine] == \
               [(r.first_token_s, r.finish_s, r.status) for r in alone]


def test_replica_groups_keep_every_request_once_and_split_replicas():
    assert [split_count(5, 2, k) for k in range(2)] == [3, 2]
    assert [split_count(7, 3, k) for k in range(3)] == [3, 2, 2]
    sc = _pool_scenario(20.0, 3, 4)
    whole = build.requests(sc)
    run = simulate_day([("p", sc)], groups=2, jobs=1)
    assert sorted(r.id for r in run.records) == sorted(f"p/{r.id}" for r in whole)
    assert {r.replica.split("/")[1] for r in run.records if r.replica} == {"g0", "g1"}
    assert [s.requests for s in run.shards] == [len(whole[0::2]), len(whole[1::2])]
    with pytest.raises(ConfigError, match="cannot be split into 4 groups"):
        run_shard(shard_tasks([("p", sc)], groups=4)[0])


def test_day_run_does_not_depend_on_the_number_of_workers():
    pools = [("a", _pool_scenario(6.0, 1, 7)), ("b", _pool_scenario(6.0, 1, 8))]
    one = simulate_day(pools, jobs=1)
    two = simulate_day(pools, jobs=2)
    assert [(r.id, r.finish_s) for r in one.records] == [(r.id, r.finish_s) for r in two.records]


def test_day_run_on_ray_matches_local():
    pytest.importorskip("ray", reason="ray is the optional 'dist' extra (pip install 'servelab[dist]')")
    pools = [("a", _pool_scenario(6.0, 1, 7))]
    local = simulate_day(pools, jobs=1)
    ray_run = simulate_day(pools, executor="ray", jobs=1)
    assert [(r.id, r.finish_s) for r in local.records] == [(r.id, r.finish_s) for r in ray_run.records]


# ------------------------------------------------------------------ plan-day end to end

def test_plan_day_costs_and_hourly_simulation(tmp_path):
    from servelab.plan.dayplanner import plan_day
    from servelab.plan.evaluate import SearchSettings

    fleet, scs = load_fleet_day(_write(tmp_path, rates="day"))
    res = plan_day(fleet, scs, settings=SearchSettings(max_requests=600, min_requests=200, max_evals=8),
                   sim_hours=0.25, sim_start_h=5, jobs=1)
    p = res.pools[0]
    n, price = p.replicas_per_hour, p.on_demand_gpu_hour_usd
    assert p.costs_per_day_usd["reserved_only"] == pytest.approx(24 * max(n) * 0.8 * price)
    assert p.costs_per_day_usd["on_demand_only"] == pytest.approx(sum(n) * price)
    # R = 0 and R = max(n) are both candidates of the mix
    assert p.costs_per_day_usd["mix"] <= min(p.costs_per_day_usd["reserved_only"],
                                             p.costs_per_day_usd["on_demand_only"]) + 1e-9
    assert p.requests_per_day == pytest.approx(3600 * (12 * 40 + 12 * 120))
    # replicas follow the step: more at 120 req/s than at 40 req/s (a replica carries ~40)
    assert n[10] > n[2] and n[5] == n[10]     # hour 5 already carries 06:00 + lead time
    assert p.autoscaler["min_replicas"] == max(1, p.reserved_replicas)
    assert p.autoscaler["max_replicas"] == max(n)
    # Little's law target: c_t · W with W > 0
    assert 0 < p.autoscaler["target"]
    for mode in ("autoscaler", "schedule"):
        h = p.hourly_sim[mode][0]
        assert h["hour"] == 5
        # 05:00–05:15 at 40 req/s: Λ = 36,000; Poisson sd 190
        assert abs(h["requests"] - 36_000) < 4 * 190, mode
    assert p.hourly_sim["schedule"][0]["replicas"] == n[5]


def test_plan_day_command_json_and_markdown(tmp_path):
    r = runner.invoke(app, ["plan-day", str(_write(tmp_path))])
    assert r.exit_code == 2 and "rate curve covers 14400 s" in r.output and "needs 86400 s" in r.output
    f = _write(tmp_path, rates="day")
    out = tmp_path / "plan.md"
    r = runner.invoke(app, ["plan-day", str(f), "--jobs", "1", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["pools"][0]["name"] == "chat" and len(d["pools"][0]["replicas_per_hour"]) == 24
    md = out.read_text()
    assert "| **fleet** |" in md and "reserved-only" in md
    assert json.loads(out.with_suffix(".json").read_text())["totals"]["mix"] == pytest.approx(d["totals"]["mix"])
    r = runner.invoke(app, ["plan-day", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 2 and "fleet-day file" in r.output and "cannot be read" in r.output


def test_simulate_day_command_writes_one_run(tmp_path):
    from servelab import recordio

    f = _write(tmp_path)
    out = tmp_path / "run"
    r = runner.invoke(app, ["simulate-day", str(f), "--hours", "0.02", "--jobs", "1", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    run = recordio.read_run(out)
    s = json.loads(r.output)
    assert len(run.records) == s["offered"] == s["pools"]["chat"]["offered"]
    assert all(rec.id.startswith("chat/") for rec in run.records)
    assert math.isclose(s["pools"]["chat"]["offered"], 4 * 72, rel_tol=0.5)


def test_pool_search_lets_the_planner_choose_the_configuration(tmp_path):
    from servelab.plan.dayplanner import plan_day
    from servelab.plan.evaluate import SearchSettings

    fast = SearchSettings(max_requests=600, min_requests=200, max_evals=8)
    extra = "    search: {gpus: [h100-sxm, l40s], tps: [1, 2], weight_dtypes: [bf16]}\n"
    fleet, scs = load_fleet_day(_write(tmp_path, rates="day", extra=extra))
    res = plan_day(fleet, scs, settings=fast, jobs=1)
    p = res.pools[0]
    assert p.gpu in ("h100-sxm", "l40s") and p.shape.split()[0] in ("TP1", "TP2")
    assert any("chosen by the planner at the peak 120 req/s" in n for n in p.notes)
    # the day plan with that configuration written into the scenario is the same plan
    fixed = (tmp_path / "fixed")
    fixed.mkdir()
    fleet2, scs2 = load_fleet_day(_write(fixed, rates="day"))
    scs2 = [build.derive(scs2[0], gpu=p.gpu, tp=p.gpus_per_replica)]
    q = plan_day(fleet2, scs2, settings=fast, jobs=1).pools[0]
    assert (q.capacity_rps, q.replicas_per_hour) == (p.capacity_rps, p.replicas_per_hour)


def test_simulate_day_runs_the_plan(tmp_path):
    f = _write(tmp_path, rates="day")
    md = tmp_path / "plan.md"
    assert runner.invoke(app, ["plan-day", str(f), "--jobs", "1", "--out", str(md)]).exit_code == 0
    plan = json.loads(md.with_suffix(".json").read_text())
    out = tmp_path / "run"
    r = runner.invoke(app, ["simulate-day", str(f), "--plan", str(md.with_suffix(".json")), "--hours", "0.05",
                            "--jobs", "1", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    from servelab import recordio
    meta = recordio.read_run(out).meta
    sc = meta.config["pools"]["chat"]
    assert sc["replicas"] == plan["pools"][0]["replicas_per_hour"][0]
    assert sc["autoscaler"]["target"] == pytest.approx(plan["pools"][0]["autoscaler"]["target"])
    r = runner.invoke(app, ["simulate-day", str(f), "--plan", str(f), "--hours", "0.05"])
    assert r.exit_code == 2 and "not a plan-day JSON" in r.output


# ------------------------------------------------------------------ streamed day runs (records on disk)

def _same_summary(a, b, path=""):
    """Summaries equal up to float summation order (records are grouped differently)."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _same_summary(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, float) and isinstance(b, float):
        assert b == pytest.approx(a, rel=1e-12, abs=1e-15), path
    else:
        assert a == b, path


def test_streamed_day_run_has_the_records_and_metrics_of_the_in_memory_run(tmp_path, monkeypatch):
    from servelab import recordio
    from servelab.metrics import summarize
    from servelab.plan import dayrun

    monkeypatch.setattr(dayrun, "_DRAIN_EVERY_S", 0.0)    # drain at every progress call: many row groups
    busy = resolve({"model": "llama-3.1-8b", "workload": "chat", "replicas": 2, "seed": 3,
                    "router": "least-outstanding", "duration_s": 120, "admission": {"max_queue": 4},
                    "rate_curve": {"kind": "points", "points": [[0, 30.0], [120, 60.0]]}})
    pools = [("a", _pool_scenario(8.0, 2, 1)), ("b", busy)]
    mem = simulate_day(pools, groups=2, jobs=1)
    seen = []
    disk = simulate_day(pools, groups=2, jobs=1, out=tmp_path / "run", on_progress=seen.append,
                        progress_every_s=0.01)
    run = recordio.read_run(tmp_path / "run")
    assert not (tmp_path / "run" / ".shards").exists()
    got = sorted(run.records, key=lambda r: (r.arrival_s, r.id))
    assert [r.to_dict() for r in got] == [r.to_dict() for r in mem.records]
    assert disk.records_written == len(mem.records) == len(run.records)
    assert {r.status for r in got} >= {"ok", "rejected"}          # the queue bound bit
    import pyarrow.parquet as pq
    assert pq.ParquetFile(tmp_path / "run" / "records.parquet").metadata.num_row_groups > len(disk.shards)
    # the summary from the streamed arrays is summarize() of the records
    want = summarize(mem.records, duration_s=mem.duration_s)
    want["pools"] = {name: summarize([r for r in mem.records if r.extra["pool"] == name], slo=build.slo(sc))
                     for name, sc in pools}
    got_summary = {k: v for k, v in run.summary.items() if k != "shards"}
    _same_summary(want, got_summary)
    assert disk.duration_s == mem.duration_s
    # the last progress report has every shard done
    last = {p.label: p for p in seen[-1]}
    assert set(last) == {"a-g0", "a-g1", "b-g0", "b-g1"}
    assert all(p.done == p.total > 0 and p.sim_s == p.horizon_s > 0 for p in last.values())


def test_columns_from_arrays_refuses_bad_input():
    import numpy as np
    from servelab.metrics import columns_from_arrays

    z = np.zeros(2)
    with pytest.raises(ValueError, match="status codes must be 0..4"):
        columns_from_arrays(status=np.array([0, 7]), arrival_s=z, dispatch_s=z, start_s=z, first_token_s=z,
                            finish_s=z, input_tokens=z, output_tokens=z, cached_tokens=z)
    with pytest.raises(ValueError, match="shape of status"):
        columns_from_arrays(status=np.array([0, 0]), arrival_s=np.zeros(3), dispatch_s=z, start_s=z,
                            first_token_s=z, finish_s=z, input_tokens=z, output_tokens=z, cached_tokens=z)


def test_selected_requests_are_the_full_lists_share():
    import dataclasses

    import numpy as np
    from servelab.catalog import generate_requests, get_workload

    starts = np.sort(np.random.default_rng(5).uniform(0.0, 300.0, 400))
    for turns in (1, 3):
        wl = dataclasses.replace(get_workload("chat"), turns=turns)
        full = generate_requests(wl, duration_s=300.0, seed=2, starts_s=starts)
        for k in range(3):
            mine = generate_requests(wl, duration_s=300.0, seed=2, starts_s=starts, select=(k, 3))
            want = [r for i, r in enumerate(full) if (r.conversation if r.conversation >= 0 else i) % 3 == k]
            assert mine == want and len(mine) > 0, (turns, k)
    sc = _pool_scenario(20.0, 3, 4)
    whole = build.requests(sc)
    assert build.requests(sc, select=(1, 2)) == whole[1::2]
    with pytest.raises(ConfigError, match="select must be"):
        generate_requests(wl, duration_s=300.0, starts_s=starts, select=(3, 3))


def test_groups_per_pool_from_the_command_line(tmp_path):
    from servelab.plan.dayrun import pool_groups

    pools = [("a", _pool_scenario(8.0, 2, 1)), ("b", _pool_scenario(8.0, 1, 2))]
    assert pool_groups(pools, {"a": 2}) == {"a": 2, "b": 1}
    assert [(t.pool, t.group, t.groups) for t in shard_tasks(pools, groups={"a": 2})] == \
           [("a", 0, 2), ("a", 1, 2), ("b", 0, 1)]
    with pytest.raises(ConfigError, match="unknown pools \\['c'\\]"):
        pool_groups(pools, {"c": 2})
    f = _write(tmp_path)
    r = runner.invoke(app, ["simulate-day", str(f), "--hours", "0.01", "--groups", "chat=x"])
    assert r.exit_code == 2 and "--groups 'chat=x'" in r.output
    r = runner.invoke(app, ["simulate-day", str(f), "--hours", "0.01", "--groups", "nope=2"])
    assert r.exit_code == 2 and "unknown pools ['nope']" in r.output


def test_groups_option_parses_counts_and_pool_pairs_and_names_bad_text():
    from servelab.errors import ConfigError
    from servelab.plan.dayrun import parse_groups

    assert parse_groups("2") == 2
    assert parse_groups(" chat-8b=2, rag-70b=1 ") == {"chat-8b": 2, "rag-70b": 1}
    with pytest.raises(ConfigError, match="'two'"):
        parse_groups("two")
    with pytest.raises(ConfigError, match="POOL=K"):
        parse_groups("chat-8b=x")
