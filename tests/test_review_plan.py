"""Review findings in the planner (each test failed before its fix)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from servelab.plan import recommend as recmod
from servelab.scenario import Scenario


class _Fleet(SimpleNamespace):
    def to_dict(self):
        return dict(vars(self))


def test_replicas_added_by_fleet_validation_are_active_not_spare(monkeypatch):
    # Sizing chose 4 active + 1 spare; the fleet of 5 misses the SLO in simulation, the
    # fleet of 6 meets it. The added replica is needed to carry the load, so the plan is
    # 5 active + 1 spare (the --spares policy), not "4 active + 2 spare"; utilization
    # (peak / (active × saturation)) follows the active count: 8 / (5 × 2) = 0.8.
    def fake_run_fleet(task):
        ok = task.replicas >= 6
        return _Fleet(slo_met=ok, ttft_p95_s=0.5 if ok else 3.0, tpot_p95_s=0.02, e2e_p95_s=5.0,
                      delivery=1.0, per_target={"ttft_p95": ok})
    monkeypatch.setattr(recmod, "run_fleet", fake_run_fleet)
    chosen = {"key": "h100-sxm/tp1/bf16/kv-bf16", "gpu": "h100-sxm", "tp": 1, "pp": 1, "ep": 1,
              "weight_dtype": "bf16", "kv_dtype": "bf16", "num_gpus": 1, "notes": [],
              "capacity_rps": 2.0, "ttft_p95_s": 0.4, "analytic": {"saturation_rps": 2.0},
              "cost": {"cost_per_hour_usd": 10.0},
              "sizing": {"replicas": 5, "active_replicas": 4, "spare_replicas": 1,
                         "utilization": 1.0, "warnings": []}}
    from servelab.scenario import Scenario
    req = SimpleNamespace(search=SimpleNamespace(min_delivery=0.99), fleet_duration_s=60.0,
                          node_sizes=(1, 2, 4, 8), sensitivity=False, headroom=1.0, spares=1)
    sc = Scenario(gpu="h100-sxm", duration_s=60.0, slo="ttft_p95=1s", prices={"gpu_hour_usd": 2.0})
    out = recmod.recommend(req=req, workload=None, slo="ttft_p95=1s", profile=SimpleNamespace(peak_rate_rps=8.0),
                           evaluated=[chosen], deps={chosen["key"]: None}, scenarios={chosen["key"]: sc},
                           schedulers={chosen["key"]: None}, rows=[chosen], runner=None,
                           tick=lambda *a: None, rate=8.0, out_tokens_per_s=1000.0, gpus={})
    rec = out["recommendation"]
    assert rec.replicas == 6
    assert rec.active_replicas == 5
    assert rec.spare_replicas == 1
    assert rec.utilization == pytest.approx(0.8)
    assert rec.gpus_total == 6 and rec.cost_per_hour == pytest.approx(12.0)


def test_kv_dtypes_default_skips_weight_only_precisions():
    # `--precisions int4` alone used to fail with "unknown KV dtype 'int4'" because the KV
    # list defaulted to the weight list verbatim; int4 is a weight format only (AWQ/GPTQ
    # checkpoints keep the KV cache in the model dtype, vLLM kv_cache_dtype "auto").
    from servelab.plan.planner import default_kv_dtypes
    assert default_kv_dtypes(("int4",)) == ("bf16",)
    assert default_kv_dtypes(("bf16", "fp8")) == ("bf16", "fp8")
    assert default_kv_dtypes(("int4", "fp8")) == ("fp8",)
    assert default_kv_dtypes(("int8", "int4")) == ("bf16",)


def test_plan_cli_precisions_int4_alone_is_not_a_kv_dtype_error():
    from typer.testing import CliRunner

    from servelab.cli import app
    res = CliRunner().invoke(app, ["plan", "--model", "llama-3.1-8b", "--gpus", "l40s", "--precisions", "int4",
                                   "--tp", "1", "--max-requests", "400", "--fleet-duration", "20",
                                   "--no-hetero", "--no-sensitivity", "--jobs", "1", "--json"])
    assert "unknown KV dtype" not in res.output
    assert res.exit_code in (0, 1), res.output


def test_plan_tables_say_when_rows_are_cut_and_show_capacity_to_three_digits():
    # The step 9-11 table listed the cheapest 20 candidates without saying so (the
    # llama-3.1-70b rag plan on h100-sxm,h200 has 24 that meet the SLO), and showed the
    # per-replica capacity to one decimal (0.2 for 0.236), so replicas = ceil(peak /
    # capacity × headroom) could not be checked from the table.
    import copy
    import io
    import json

    from rich.console import Console
    from typer.testing import CliRunner

    from servelab.cli import app
    from servelab.report.plan_text import print_plan as _print_plan
    out = CliRunner().invoke(app, ["plan", "--gpus", "l40s", "--precisions", "fp8", "--tp", "1",
                                   "--max-requests", "400", "--fleet-duration", "20", "--no-hetero",
                                   "--no-sensitivity", "--jobs", "1", "--json"]).output
    res = json.loads(out)
    sim = next(c for c in res["candidates"] if c["verdict"] in ("meets-slo", "recommended"))
    clones = []
    for i in range(25):
        c = copy.deepcopy(sim)
        c.update(key=f"{sim['key']}#{i:02d}", verdict="meets-slo", capacity_rps=0.2361)
        c["cost"]["cost_per_hour_usd"] += i
        clones.append(c)
    res["candidates"] = clones
    buf = io.StringIO()
    _print_plan(res, Console(file=buf, width=250))
    text = buf.getvalue()
    assert "cheapest 20 of 25 shown" in text
    assert "0.236" in text


def test_no_plan_reason_says_nothing_was_simulated_when_every_candidate_was_screened_out():
    # llama-3.1-405b on l40s: every candidate infeasible or hopeless, 0 simulations, yet
    # the plan said "no candidate meets the SLO at any simulated rate".
    rows = [{"key": "a", "verdict": "infeasible"}, {"key": "b", "verdict": "infeasible"},
            {"key": "c", "verdict": "hopeless"}]
    out = recmod.recommend(req=None, workload=None, slo=None, profile=None, evaluated=[], deps={},
                           scenarios={}, schedulers={}, rows=rows, runner=None, tick=lambda *a: None, rate=1.0,
                           out_tokens_per_s=1.0, gpus={})
    assert out["recommendation"] is None
    assert "simulated rate" not in out["reason"]
    assert "no candidate reached simulation" in out["reason"]
    assert "2 infeasible" in out["reason"] and "1 hopeless" in out["reason"]
    # when candidates were simulated and none met the SLO, the old reason stands
    rows2 = rows + [{"key": "d", "verdict": "no-capacity", "simulation": {}}]
    out2 = recmod.recommend(req=None, workload=None, slo=None, profile=None, evaluated=[], deps={},
                            scenarios={}, schedulers={}, rows=rows2, runner=None, tick=lambda *a: None, rate=1.0,
                            out_tokens_per_s=1.0, gpus={})
    assert out2["reason"] == "no candidate meets the SLO at any simulated rate"


def test_hetero_verdict_blames_spares_only_when_there_are_spares():
    # With --spares 0 the plan still explained a losing mix by "each pool needs its own
    # spare replica", which is false: no pool had a spare.
    from servelab.catalog import get_workload
    from servelab.plan.hetero import plan_heterogeneous

    class _Runner:
        def map(self, fn, tasks, on_done=None):
            # short pool: 10 req/s per replica; long pool: 1 req/s per replica
            return [SimpleNamespace(simulations=1, error="",
                                    capacity_rps=10.0 if t.key.startswith("short") else 1.0)
                    for t in tasks]

    single = {"key": "h100-sxm/tp1/bf16/kv-bf16", "gpu": "h100-sxm", "num_gpus": 1, "ttft_p95_s": 0.1,
              "analytic": {"saturation_rps": 10.0}, "cost": {"cost_per_hour_usd": 1.0}}
    gpu = SimpleNamespace(gpus_per_node=8, price_per_hour_usd=1.0)
    profile = SimpleNamespace(input_tokens=SimpleNamespace(p90=354.0), peak_rate_rps=9.0, mean_rate_rps=9.0)
    for spares, expect_spare_clause in ((0, False), (1, True)):
        req = SimpleNamespace(search=SimpleNamespace(seed=0), headroom=1.0, spares=spares, node_sizes=(1, 2, 4, 8))
        res = plan_heterogeneous(req=req, workload=get_workload("chat"), slo=None, profile=profile,
                                 evaluated=[single], deps={single["key"]: None}, gpus={"h100-sxm": gpu},
                                 runner=_Runner(), tick=lambda *a: None, schedulers={single["key"]: None},
                                 scenarios={single["key"]: Scenario(prices={"gpu_hour_usd": 1.0})})
        assert res["beats_single"] is False
        assert ("spare replica" in res["verdict"]) is expect_spare_clause, res["verdict"]
