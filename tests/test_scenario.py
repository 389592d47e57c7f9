"""The Scenario layer: one description of a deployment for every command, files that
round-trip, plans that re-run exactly, one cost model and one throughput window."""

from __future__ import annotations

import json

import pytest
import typer
import yaml
from typer.testing import CliRunner

from servelab.cli import app
from servelab.errors import ConfigError
from servelab.scenario import Scenario, build, field_paths, json_schema, resolve, write_scenario

runner = CliRunner()

SCENARIO_COMMANDS = ("estimate", "simulate", "emulate", "calibrate", "plan")


def _run(*args: str) -> dict:
    r = runner.invoke(app, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


# ----------------------------------------------------------------- plan -> simulate round trip

ROUND_TRIPS = {
    "tp2": ("--gpus", "h100-sxm", "--tp", "2", "--precisions", "bf16"),
    "pp2": ("--gpus", "h100-sxm", "--tp", "1", "--pp", "2", "--precisions", "bf16"),
    "fp8": ("--gpus", "h200", "--tp", "1", "--precisions", "fp8"),
    "lora-spec": ("--gpus", "h100-sxm", "--tp", "1", "--precisions", "bf16", "--lora-adapters", "8",
                  "--max-loras", "4", "--lora-load-s", "0.005", "--num-speculative-tokens", "3",
                  "--spec-acceptance-rate", "0.7", "--spec-draft-cost", "0.1"),
}


@pytest.mark.parametrize("name", list(ROUND_TRIPS))
def test_plan_exported_scenario_reproduces_the_fleet_simulation(tmp_path, name):
    f = tmp_path / f"{name}.yaml"
    res = _run("plan", *ROUND_TRIPS[name], "--request-rate", "6", "--seed", "3", "--no-hetero",
               "--no-sensitivity", "--max-requests", "500", "--fleet-duration", "30",
               "--export-scenario", str(f), "--json")
    rec = res["recommendation"]
    assert rec is not None
    data = yaml.safe_load(f.read_text())
    # the file says what was chosen, in the scenario's own names
    assert data["gpu"] == rec["gpu"] and data["tp"] == rec["tp"] and data["pp"] == rec["pp"]
    assert data["weight_dtype"] == rec["weight_dtype"] and data["replicas"] == rec["replicas"]
    assert data["seed"] == 3 and data["duration_s"] == 30.0
    if name == "lora-spec":
        assert data["lora"]["adapters"] == 8 and data["speculative"]["num_tokens"] == 3
    sim = _run("simulate", "--scenario", str(f), "--seed", "3", "--json")
    assert sim["ttft_s"]["p95"] == rec["ttft_p95_s"]
    assert sim["tpot_s"]["p95"] == rec["tpot_p95_s"]
    assert sim["delivery"] == rec["delivery"]


def test_lora_and_speculation_change_the_simulation():
    # The LoRA/spec settings reach the simulator: with one adapter slot for 8 adapters
    # some requests must load an adapter; with speculation fewer decode steps run.
    base = Scenario(duration_s=20.0, rate_rps=4.0, seed=1)
    lora = build.derive(base, lora={"adapters": 8, "max_loras": 1, "load_s": 0.05})
    reqs = build.requests(lora)
    assert {r.adapter for r in reqs} <= {f"adapter-{k}" for k in range(8)} and len({r.adapter for r in reqs}) == 8
    from servelab.sim import simulate

    res = simulate(build.sim_config(lora), reqs)
    assert sum(st["lora_loads"] for st in res.replica_stats.values()) > 8
    spec = build.derive(base, speculative={"num_tokens": 3, "acceptance_rate": 0.8})
    assert build.sim_config(spec).replicas[0].scheduler.spec_tokens_per_step == pytest.approx(
        (1 - 0.8 ** 4) / (1 - 0.8))   # Leviathan et al. 2023, expected tokens per step


# ----------------------------------------------------------------- one set of scenario options

def _scenario_roots(cmd_name: str) -> tuple[set[str], set[str]]:
    from servelab.scenario.flags import COMBINED, FLAGS

    click_cmd = typer.main.get_command(app).commands[cmd_name]
    opts = {o for p in click_cmd.params for o in getattr(p, "opts", [])}
    roots = set()
    for f in FLAGS:
        if f.names[0].split("/")[0] in opts:
            roots.add((f.path or COMBINED[f.param]).split(".")[0])
    if cmd_name == "plan":
        from servelab.plan.from_scenario import SEARCHED
        roots |= set(SEARCHED)
    return roots, opts


def test_every_scenario_field_is_reachable_from_every_command():
    fields = set(Scenario.model_fields)
    for name in SCENARIO_COMMANDS:
        roots, opts = _scenario_roots(name)
        assert roots == fields, (name, sorted(fields - roots))
        assert {"--scenario", "--set"} <= opts, name


def test_flags_override_the_file_and_set_overrides_any_field(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("tp: 2\nengine: {max_num_seqs: 64}\nmodel: llama-3.1-70b\n")
    r = _run("estimate", "--scenario", str(f), "--tp", "4", "--set", "engine.max_num_batched_tokens=4096",
             "--json")
    assert (r["model"], r["tp"], r["max_num_seqs"], r["max_num_batched_tokens"]) == ("llama-3.1-70b", 4, 64, 4096)


def test_bad_scenario_files_name_the_field_and_the_valid_ones(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("tp: 0\nengine: {max_num_sqs: 8}\nrouter: random\n")
    r = runner.invoke(app, ["simulate", "--scenario", str(f)])
    assert r.exit_code == 2
    assert "tp: Input should be greater than or equal to 1 (got 0)" in r.output
    assert "engine.max_num_sqs: unknown field; valid fields: profile, max_num_seqs" in r.output
    assert "round-robin" in r.output
    f.write_text("- just a list\n")
    r = runner.invoke(app, ["simulate", "--scenario", str(f)])
    assert r.exit_code == 2 and "expected a mapping" in r.output
    r = runner.invoke(app, ["simulate", "--set", "nope=1"])
    assert r.exit_code == 2 and "unknown field 'nope'" in r.output


def test_scenario_file_round_trip(tmp_path):
    sc = resolve({"model": "llama-3.1-70b", "tp": 4, "weight_dtype": "FP8", "engine": "trtllm",
                  "kv_tiers": [{"name": "dram", "gib": 64}], "router": "least_kv",
                  "autoscaler": {"max_replicas": 4}, "faults": [{"at_s": 10}], "prices": {"node_sizes": [8, 1]}})
    assert sc.weight_dtype == "fp8" and sc.router == "least-kv" and sc.prices.node_sizes == (1, 8)
    for suffix in ("yaml", "json"):
        p = write_scenario(sc, tmp_path / f"s.{suffix}")
        from servelab.scenario import load_scenario_data
        assert resolve(load_scenario_data(p)) == sc


def test_json_schema_covers_every_field():
    schema = json_schema()
    assert set(schema["properties"]) == set(Scenario.model_fields)
    assert schema["properties"]["weight_dtype"]["enum"] == ["bf16", "fp16", "fp8", "int8", "int4", "fp4"]
    assert "engine.max_num_seqs" in field_paths() and "kv_tiers" in field_paths()


def test_decision_scenarios_are_scenarios():
    from servelab.evidence.schema import Scenario as DecisionScenario
    assert issubclass(DecisionScenario, Scenario)
    # legacy top-level admission spellings are still read
    d = DecisionScenario.model_validate({"model": "llama-3.1-8b", "gpu": "h100-sxm", "rate_rps": 1,
                                         "timeout_s": 30, "rate_limit_burst": 4})
    assert d.admission.timeout_s == 30 and d.admission.burst == 4


# ----------------------------------------------------------------- one cost model

def test_tp2_x3_fleet_costs_the_same_in_plans_and_decisions():
    # 3 replicas of 2 GPUs on the price book's H100 instances (Lambda: 1x $4.29, 2x $4.19,
    # 4x $4.09, 8x $3.99 per GPU-hour): one 4-GPU and one 2-GPU instance,
    # 4·4.09 + 2·4.19 = $24.74/h; in 8-GPU instances only, one instance, 8 GPUs billed.
    from servelab.catalog import get_gpu

    price = get_gpu("h100-sxm").price_per_hour_usd
    sc = Scenario(gpu="h100-sxm", tp=2, replicas=3)
    assert build.fleet_usd_per_hour(sc) == pytest.approx(4 * 4.09 + 2 * 4.19)
    assert "lambda 4x NVIDIA H100 SXM" in build.fleet_cost(sc, output_tokens_per_s=1.0).price_source
    whole = build.derive(sc, prices={"node_sizes": [8]})
    assert build.fleet_usd_per_hour(whole) == pytest.approx(8 * price)
    assert build.fleet_usd_per_hour(build.derive(sc, prices={"gpu_hour_usd": 2.5})) == pytest.approx(15.0)


def test_decision_cost_metric_uses_the_packed_fleet(tmp_path):
    # cost_per_million_tokens = fleet $/h / 3600 / (output tokens / makespan) × 1e6 with the
    # fleet billed as packed instances (8 GPUs for TP2 × 3 in 8-GPU nodes), computed here by hand
    # from the stored records.
    from servelab.evidence import Ledger

    dec = {"name": "cost", "scenarios": {"a": {"model": "llama-3.1-8b", "gpu": "h100-sxm", "tp": 2,
                                               "replicas": 3, "rate_rps": 4, "duration_s": 30,
                                               "prices": {"gpu_hour_usd": 3.0, "node_sizes": [8]}}},
           "claims": [{"id": "c", "scenario": "a", "metric": "cost_per_million_tokens", "comparison": "<",
                       "threshold": 1000.0, "evidence": {"kinds": ["simulate"], "min_requests": 50}}]}
    f = tmp_path / "d.yaml"
    f.write_text(yaml.safe_dump(dec))
    led = tmp_path / "l.sqlite"
    out = _run("decide", str(f), "--ledger", str(led), "--json")
    (v,) = out["verdicts"]
    with Ledger(led) as lg:
        recs = lg.load_records(v["run_ids"][0])
    makespan = max(r.finish_s for r in recs if r.finish_s is not None)
    tokens = sum(r.output_tokens for r in recs if r.status == "ok")
    expect = 8 * 3.0 / 3600 / (tokens / makespan) * 1e6
    assert v["value"] == pytest.approx(expect, rel=1e-9)


def test_throughput_window_is_the_makespan():
    from servelab.records import RequestRecord

    recs = [RequestRecord(id="a", arrival_s=1.0, status="ok", input_tokens=1, output_tokens=1, finish_s=4.0),
            RequestRecord(id="b", arrival_s=2.0, status="ok", input_tokens=1, output_tokens=1, finish_s=9.0)]
    assert build.throughput_window_s(12.5, recs) == 12.5          # the run's own makespan
    assert build.throughput_window_s(None, recs) == 8.0           # else first arrival -> last end


def test_invalid_candidates_are_config_errors():
    with pytest.raises(ConfigError, match="valid tp"):
        build.deployment(Scenario(tp=3))
    with pytest.raises(ConfigError, match="replicas 0 needs an autoscaler"):
        resolve({"replicas": 0})


def test_published_schema_matches_the_model():
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    published = json.loads((root / "docs" / "schema" / "scenario.schema.json").read_text())
    assert published == json.loads(json.dumps(json_schema(), sort_keys=True)), (
        "docs/schema/scenario.schema.json is stale: regenerate it (docs/scenario.md says how)")


@pytest.mark.parametrize("name", ["llama70b-fp8-h100.yaml", "multi-lora-spec.yaml"])
def test_example_scenarios_run(name):
    from pathlib import Path
    f = Path(__file__).resolve().parents[1] / "examples" / "scenarios" / name
    s = _run("simulate", "--scenario", str(f), "--duration", "20", "--json")
    assert s["offered"] > 0 and s["completed"] + s["rejected"] + s["timed_out"] + s["failed"] == s["offered"]
    e = _run("estimate", "--scenario", str(f), "--json")
    assert e["feasible"]
