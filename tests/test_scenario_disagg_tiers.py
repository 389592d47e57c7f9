"""Scenario fields `kv_policy`, `disagg`, `priorities`/`priority_by_prefix`: what the
builder makes of them, their costs, and the command-line flags."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from servelab.catalog import get_gpu
from servelab.cli import app
from servelab.errors import ConfigError
from servelab.perf import memory_budget
from servelab.scenario import build, resolve

runner = CliRunner()


def _sc(**kw):
    return resolve({"duration_s": 20, "rate_rps": 5, **kw}, source="test")


def test_disagg_scenario_builds_two_pools_with_their_own_deployments() -> None:
    sc = _sc(tp=1, disagg={"prefill": {"replicas": 2, "tp": 2}, "decode": {"replicas": 3, "gpu": "h200", "kv_dtype": "fp8"},
                           "link": "nvlink", "max_transfers": 2})
    cfg = build.sim_config(sc)
    p, d = cfg.replicas
    assert (p.name, p.count, p.deployment.tp, p.deployment.gpu.name) == ("prefill", 2, 2, get_gpu("h100-sxm").name)
    assert (d.name, d.count, d.deployment.tp, d.deployment.kv_dtype) == ("decode", 3, 1, "fp8")
    assert d.deployment.gpu.name == get_gpu("h200").name
    assert cfg.disagg.link.bytes_per_s == get_gpu("h100-sxm").interconnect_bytes_per_s   # the prefill GPU's NVLink
    assert cfg.disagg.max_transfers == 2
    # cost: each pool on its price-book instances — 2 x TP2 H100 on one 4-GPU Lambda instance
    # (4 x $4.09), 3 x H200 on three 1-GPU Spheron rentals (3 x $4.54)
    usd = build.fleet_usd_per_hour(sc)
    assert usd == pytest.approx(4 * 4.09 + 3 * 4.54)
    # with a per-GPU price given, both pools at that price, packed into nodes
    flat = build.derive(sc, prices={"gpu_hour_usd": 2.5})
    assert build.fleet_usd_per_hour(flat) == pytest.approx((4 + 3) * 2.5)


def test_disagg_link_overrides_and_autoscaled_pools() -> None:
    sc = _sc(disagg={"prefill": {"replicas": 1}, "decode": {"replicas": 1}, "link": "roce-200",
                     "link_gb_s": 12.5, "link_latency_ms": 2.0})
    link = build.sim_config(sc).disagg.link
    assert (link.bytes_per_s, link.latency_s) == (12.5e9, 2e-3)
    # each pool autoscaled with the scenario's autoscaler settings (docs/sim.md)
    auto = build.sim_config(_sc(disagg={"prefill": {"replicas": 1}, "decode": {"replicas": 1}},
                                autoscaler={"max_replicas": 2, "cooldown_s": 60})).autoscaler
    assert (auto.max_replicas, auto.cooldown_s, auto.min_replicas) == (2, 60, 1)
    with pytest.raises(ConfigError, match="min_replicas must be >= 1, got 0"):
        _sc(disagg={"prefill": {"replicas": 1}, "decode": {"replicas": 1}},
            autoscaler={"max_replicas": 2, "min_replicas": 0})
    with pytest.raises(ConfigError, match="link"):
        _sc(disagg={"prefill": {"replicas": 1}, "decode": {"replicas": 1}, "link": "wifi"})


def test_kv_policy_pin_fraction_and_prefetch_need() -> None:
    sc = _sc(kv_tiers=[{"name": "dram", "gib": 10}], kv_policy={"policy": "priority", "pin_fraction": 0.25})
    dep = build.deployment(sc)
    pol = build.replica_settings(sc, dep).kv_policy
    assert pol.policy == "priority" and pol.pin_blocks == int(0.25 * memory_budget(dep).kv_blocks)
    assert build.replica_settings(_sc(kv_policy={"policy": "lru"}), dep).kv_policy is None
    with pytest.raises(ConfigError, match="prefetch needs at least two kv_tiers"):
        bad = _sc(kv_tiers=[{"name": "dram", "gib": 10}], kv_policy={"prefetch": True})
        build.replica_settings(bad, build.deployment(bad))


def test_priority_by_prefix_gives_each_group_its_tenants_class() -> None:
    # 10 groups, shares 0.2 / 0.8: groups 0-1 belong to class 0, groups 2-9 to class 1.
    sc = _sc(workload="agentic", prefix={"num_groups": 10, "prefix_tokens": 64, "fraction": 0.5},
             priorities={0: 1, 1: 4}, priority_by_prefix=True, duration_s=60)
    reqs = build.requests(sc)
    grouped = [r for r in reqs if r.prefix_group >= 0]
    assert grouped and len(grouped) < len(reqs)
    for r in grouped:
        assert r.priority == (0 if r.prefix_group < 2 else 1)
    assert {r.priority for r in reqs if r.prefix_group < 0} <= {0, 1}


def test_cli_simulate_disaggregated_and_tier_policy_flags() -> None:
    res = runner.invoke(app, ["simulate", "--duration", "10", "--rate", "5", "--prefill-replicas", "1",
                              "--decode-replicas", "2", "--kv-link", "ib-ndr", "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["completed"] == s["offered"] > 20
    assert set(s["sim"]["replicas"]) == {"prefill-0", "decode-0", "decode-1"}
    res = runner.invoke(app, ["simulate", "--duration", "10", "--rate", "2", "--workload", "rag",
                              "--cpu-kv-gib", "8", "--nvme-kv-gib", "64", "--kv-policy", "cost",
                              "--kv-prefetch", "--json"])
    assert res.exit_code == 0, res.output
    assert "kv_prefetched_blocks" in json.loads(res.output)["sim"]["replicas"]["replica-0"]
    res = runner.invoke(app, ["simulate", "--duration", "5", "--kv-policy", "fifo", "--json"])
    assert res.exit_code == 2 and "lru" in res.output and "cost" in res.output
    res = runner.invoke(app, ["simulate", "--duration", "5", "--decode-replicas", "2", "--json"])
    assert res.exit_code == 2 and "disagg.prefill" in res.output


def test_plan_and_estimate_refuse_disaggregated_scenarios(tmp_path) -> None:
    f = tmp_path / "pd.yaml"
    f.write_text("disagg: {prefill: {replicas: 1}, decode: {replicas: 1}}\n")
    res = runner.invoke(app, ["estimate", "--scenario", str(f)])
    assert res.exit_code == 2 and "simulate" in res.output
    res = runner.invoke(app, ["plan", "--scenario", str(f), "--gpus", "h100-sxm", "--json"])
    assert res.exit_code == 2 and "disaggregated" in res.output
    res = runner.invoke(app, ["estimate", "--prefill-replicas", "1", "--decode-replicas", "1"])
    assert res.exit_code == 2 and "aggregated replica" in res.output
    res = runner.invoke(app, ["plan", "--prefill-replicas", "1", "--decode-replicas", "1", "--json"])
    assert res.exit_code == 2 and "disaggregated" in res.output


def test_priorities_flag() -> None:
    res = runner.invoke(app, ["simulate", "--duration", "10", "--rate", "5", "--workload", "agentic",
                              "--priorities", "0:1,1:3", "--priority-by-prefix", "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["simulate", "--duration", "5", "--priorities", "high", "--json"])
    assert res.exit_code == 2 and "CLASS:SHARE" in res.output


def test_plan_disagg_lists_both_kinds_and_picks_the_cheapest_for_the_rate() -> None:
    res = runner.invoke(app, ["plan", "--gpus", "h100-sxm", "--precisions", "bf16", "--tp", "1", "--workload", "chat",
                              "--input-tokens", "4096", "--output-tokens", "256", "--slo", "ttft_p90=2s,tpot_p90=20ms",
                              "--rate", "20", "--no-hetero", "--no-sensitivity", "--disagg",
                              "--gpu-hour-usd", str(get_gpu("h100-sxm").price_per_hour_usd), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)["disagg"]
    names = [c["name"] for c in d["candidates"]]
    assert {"aggregated x2", "1P+1D", "1P+2D", "2P+1D", "1P+3D", "1P+1D (decode TP2)"} <= set(names)
    price = get_gpu("h100-sxm").price_per_hour_usd
    for c in d["candidates"]:
        gpus = c["replicas"] * c["tp"] or (c["prefill"] * c["tp"] + c["decode"] * c["decode_tp"])
        assert c["gpus"] == gpus and c["usd_per_hour"] == pytest.approx(gpus * price)
        if c["goodput_rps"] > 0:
            assert c["copies"] * c["goodput_rps"] >= 20 - 1e-9 > (c["copies"] - 1) * c["goodput_rps"]
    costs = {c["name"]: c["usd_per_hour_for_target"] for c in d["candidates"] if c["copies"]}
    assert costs[d["best"]] == min(costs.values())
    # long prompts, 20 ms TPOT: a split wins (docs/sim.md crossover) and the reason says why
    assert "P+" in d["best"] and "decode step" in d["reason"]


def test_compare_pd_needs_ttft_and_tpot_targets() -> None:
    from servelab.plan.pd import compare_pd
    with pytest.raises(ConfigError, match="needs a TTFT and a TPOT target"):
        compare_pd(_sc(slo="ttft_p95=2s"))


def test_deploy_refuses_a_disaggregated_scenario(tmp_path) -> None:
    f = tmp_path / "pd.yaml"
    f.write_text("disagg: {prefill: {replicas: 1}, decode: {replicas: 2}}\n")
    res = runner.invoke(app, ["deploy", "render", str(f), "--target", "kubernetes", "--out", str(tmp_path / "out")])
    assert res.exit_code != 0 and "disagg" in res.output
