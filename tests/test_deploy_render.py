"""`servelab deploy render`: manifests validated against the Kubernetes OpenAPI schemas
(kubernetes-validate) and the KEDA/Karpenter CRD schemas (tests/data/crds, see SOURCE.md),
rules checked and unit-tested by promtool, drills judged by `servelab decide`, and
nothing half-written on error."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from servelab.cli import app
from servelab.deploy import load_target, manifests, render_files
from servelab.deploy.kubernetes import AUTOSCALER_QUERIES, gpu_resource
from servelab.errors import ConfigError

DATA = Path(__file__).parent / "data" / "crds"
SCENARIO = """\
model: llama-3.1-70b
gpu: h100-sxm
tp: 4
pp: 2
weight_dtype: fp8
kv_dtype: fp8
engine: {max_num_seqs: 128, max_num_batched_tokens: 4096, gpu_memory_utilization: 0.85,
         enable_prefix_caching: false, enable_chunked_prefill: true}
lora: {adapters: 8, max_loras: 2}
speculative: {num_tokens: 3, acceptance_rate: 0.7}
replicas: 3
autoscaler: {metric: waiting, target: 6, min_replicas: 2, max_replicas: 7, poll_interval_s: 20,
             provisioning_delay_s: 90, model_load_delay_s: 240, cooldown_s: 420}
workload: chat
rate_rps: 12
duration_s: 60
slo: ttft_p95=2s,tpot_p95=60ms
"""


@pytest.fixture()
def scen(tmp_path: Path) -> Path:
    p = tmp_path / "fleet.yaml"
    p.write_text(SCENARIO)
    return p


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _render(tmp_path: Path, src: Path, target: str, *extra: str) -> Path:
    out = tmp_path / f"out-{target}"
    res = CliRunner().invoke(app, ["deploy", "render", str(src), "--target", target, "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return out


def _crd_schema(name: str, version: str) -> dict[str, Any]:
    crd = yaml.safe_load((DATA / name).read_text())
    (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return v["schema"]["openAPIV3Schema"]


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in docs}


def test_vllm_arguments_follow_the_scenario(scen: Path, tmp_path: Path) -> None:
    dep = _by_kind(_docs(_render(tmp_path, scen, "kubernetes") / "fleet.yaml"))["Deployment"]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    args = c["args"]
    opt = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--") and not args[i + 1].startswith("--")}
    assert args[0] == "meta-llama/Llama-3.1-70B"          # catalog source URL
    assert opt["--tensor-parallel-size"] == "4" and opt["--pipeline-parallel-size"] == "2"
    assert opt["--max-num-seqs"] == "128" and opt["--max-num-batched-tokens"] == "4096"
    assert opt["--gpu-memory-utilization"] == "0.85"
    assert opt["--kv-cache-dtype"] == "fp8" and opt["--quantization"] == "fp8"
    assert "--no-enable-prefix-caching" in args and "--enable-chunked-prefill" in args
    assert "--enable-lora" in args and opt["--max-loras"] == "2"
    assert json.loads(opt["--speculative-config"])["num_speculative_tokens"] == 3
    # 8 GPUs per replica (tp 4 × pp 2) as the device-plugin resource
    assert c["resources"]["limits"] == {"nvidia.com/gpu": 8} == c["resources"]["requests"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] == "/health"
    # start-up probe covers twice the planned model-load delay (240 s) at least
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 480
    assert dep["spec"]["replicas"] == 3


def test_autoscaler_is_the_simulators(scen: Path, tmp_path: Path) -> None:
    """KEDA's AverageValue trigger makes the HPA compute ceil(sum(metric) / threshold)
    (Kubernetes HPA docs: desired = ceil(current × metric / target), metric = total /
    current for AverageValue); the simulator's rule is ceil(ready · mean / target), the
    same number. So target, bounds, poll and cool-down must be the scenario's."""
    sc = load_target(scen).scenario
    so = _by_kind(_docs(_render(tmp_path, scen, "kubernetes") / "fleet.yaml"))["ScaledObject"]["spec"]
    a = sc.autoscaler
    assert (so["minReplicaCount"], so["maxReplicaCount"]) == (a.min_replicas, a.max_replicas) == (2, 7)
    assert so["pollingInterval"] == 20 and so["cooldownPeriod"] == 420
    assert so["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 420
    (trig,) = so["triggers"]
    assert trig["type"] == "prometheus" and trig["metricType"] == "AverageValue"
    assert float(trig["metadata"]["threshold"]) == 6.0
    assert trig["metadata"]["query"] == 'sum(vllm:num_requests_waiting{model_name="llama-3.1-70b"})'
    # the simulator's autoscaler reads the same gauge (sim.cluster: stats "waiting")
    assert AUTOSCALER_QUERIES["waiting"] == "vllm:num_requests_waiting"


def test_core_manifests_pass_the_kubernetes_schemas(scen: Path, tmp_path: Path) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip install 'servelab[deploy]'")
    docs = _docs(_render(tmp_path, scen, "kubernetes") / "fleet.yaml")
    core = [d for d in docs if d["apiVersion"] in ("apps/v1", "v1", "policy/v1")]
    assert {d["kind"] for d in core} == {"Deployment", "Service", "PodDisruptionBudget"}
    for d in core:
        kv.validate(d, "1.30.0", strict=True)
    bad = json.loads(json.dumps(core[0]))
    bad["spec"]["replicas"] = "three"
    with pytest.raises(kv.ValidationError):        # the validator does reject a broken manifest
        kv.validate(bad, "1.30.0", strict=True)


def test_keda_and_karpenter_objects_pass_their_crd_schemas(scen: Path, tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    docs = _by_kind(_docs(_render(tmp_path, scen, "kubernetes", "--spot") / "fleet.yaml"))
    so_schema = _crd_schema("keda.sh_scaledobjects.yaml", "v1alpha1")
    np_schema = _crd_schema("karpenter.sh_nodepools.yaml", "v1")
    jsonschema.validate(docs["ScaledObject"], so_schema)
    jsonschema.validate(docs["NodePool"], np_schema)
    req = {r["key"]: r["values"] for r in docs["NodePool"]["spec"]["template"]["spec"]["requirements"]}
    assert req["karpenter.k8s.aws/instance-gpu-name"] == ["h100"]
    assert req["karpenter.k8s.aws/instance-gpu-count"] == ["8"]          # an 8-GPU replica fits 8-GPU nodes only
    assert set(req["karpenter.sh/capacity-type"]) == {"spot", "on-demand"}
    assert docs["NodePool"]["spec"]["limits"]["nvidia.com/gpu"] == "56"  # max 7 replicas × 8 GPUs
    broken = json.loads(json.dumps(docs["ScaledObject"]))
    del broken["spec"]["scaleTargetRef"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, so_schema)


def test_amd_gpus_get_the_rocm_resource_and_unknown_vendors_are_refused(tmp_path: Path) -> None:
    from servelab.catalog import get_gpu

    p = tmp_path / "amd.yaml"
    p.write_text("model: llama-3.1-8b\ngpu: mi300x\nreplicas: 2\n")
    objs, notes = manifests(load_target(p))
    dep = _by_kind(objs)["Deployment"]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["limits"] == {"amd.com/gpu": 1} and c["image"].startswith("rocm/vllm")
    assert "NodePool" not in _by_kind(objs) and any("not offered on EC2" in n for n in notes)
    odd = dataclasses.replace(get_gpu("h100-sxm"), name="gaudi3", vendor="intel")
    with pytest.raises(ConfigError, match="'intel'.*known vendors: nvidia"):
        gpu_resource(odd)


def test_errors_leave_nothing_behind(tmp_path: Path, scen: Path) -> None:
    out = tmp_path / "k8s"
    big = tmp_path / "big.yaml"
    big.write_text("model: llama-3.1-8b\ngpu: h100-sxm\ntp: 8\npp: 2\n")
    r = CliRunner().invoke(app, ["deploy", "render", str(big), "--target", "kubernetes", "--out", str(out)])
    assert r.exit_code == 2 and "16 GPUs" in r.output
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".k8s")]
    r = CliRunner().invoke(app, ["deploy", "render", str(scen), "--target", "helm", "--out", str(out)])
    assert r.exit_code == 2 and "unknown target 'helm'" in r.output and not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = CliRunner().invoke(app, ["deploy", "render", str(scen), "--target", "grafana", "--out", str(out)])
    assert r.exit_code == 2 and "--overwrite" in r.output and (out / "keep.txt").read_text() == "mine"
    r = CliRunner().invoke(app, ["deploy", "render", str(scen), "--target", "grafana", "--out", str(out), "--overwrite"])
    assert r.exit_code == 0 and sorted(p.name for p in out.iterdir()) == ["dashboard.json", "drills.yaml"]


def test_plan_json_and_exported_scenario_render_the_same_fleet(tmp_path: Path) -> None:
    plan_json, exported = tmp_path / "plan.json", tmp_path / "p.yaml"
    r = CliRunner().invoke(app, ["plan", "--gpus", "h100-sxm", "--tp", "1", "--precisions", "bf16", "--no-sensitivity",
                                 "--no-hetero", "--request-rate", "5", "--fleet-duration", "60", "--max-requests", "500",
                                 "--json", "--export-scenario", str(exported)])
    assert r.exit_code == 0, r.output
    plan_json.write_text(r.stdout[r.stdout.index("{"):])
    rec = json.loads(plan_json.read_text())["recommendation"]
    a = _by_kind(_docs(_render(tmp_path / "a", plan_json, "kubernetes") / "fleet.yaml"))
    b = _by_kind(_docs(_render(tmp_path / "b", exported, "kubernetes") / "fleet.yaml"))
    strip = lambda d: json.loads(json.dumps(d).replace(str(plan_json), "SRC").replace(str(exported), "SRC"))  # noqa: E731
    assert strip(a["Deployment"]) == strip(b["Deployment"])
    assert a["Deployment"]["spec"]["replicas"] == rec["replicas"]
    # the PDB lets exactly the plan's spare replicas go (N + spares sizing)
    assert a["PodDisruptionBudget"]["spec"]["maxUnavailable"] == max(1, rec["spare_replicas"])


def test_plan_without_recommendation_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "plan.json"
    p.write_text(json.dumps({"inputs": {}, "recommendation": None, "candidates": [], "steps": {}}))
    with pytest.raises(ConfigError, match="no recommendation"):
        load_target(p)


def test_ray_serve_config(scen: Path, tmp_path: Path) -> None:
    (cfg,) = _docs(_render(tmp_path, scen, "ray-serve") / "serve-config.yaml")
    (llm,) = cfg["applications"][0]["args"]["llm_configs"]
    ek = llm["engine_kwargs"]
    assert (ek["tensor_parallel_size"], ek["pipeline_parallel_size"], ek["max_num_seqs"]) == (4, 2, 128)
    assert ek["enable_prefix_caching"] is False and ek["kv_cache_dtype"] == "fp8"
    auto = llm["deployment_config"]["autoscaling_config"]
    # waiting target 6 with 128 running slots -> 134 ongoing requests per replica
    assert (auto["min_replicas"], auto["max_replicas"], auto["target_ongoing_requests"]) == (2, 7, 134)
    assert auto["downscale_delay_s"] == 420 and llm["accelerator_type"] == "H100"
    p = tmp_path / "kv.yaml"
    p.write_text(SCENARIO.replace("metric: waiting", "metric: kv_usage").replace("target: 6", "target: 0.8"))
    with pytest.raises(ConfigError, match="kv_usage has no Ray Serve equivalent"):
        render_files(load_target(p), "ray-serve")


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package 'prometheus'; .ci/run installs it)")
def test_rules_pass_promtool_and_fire_when_load_doubles(scen: Path, tmp_path: Path) -> None:
    """promtool's own rule evaluator is the reference: at the planned rate (12 req/s,
    completions counter +720/min) no load alert; at twice it the load alert fires with
    the planned number in its summary."""
    out = _render(tmp_path, scen, "prometheus")
    chk = subprocess.run([PROMTOOL, "check", "rules", str(out / "rules.yaml")], capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    sel = '{model_name="llama-3.1-70b"}'

    def case(per_min: int, fires: bool) -> dict[str, Any]:
        alerts = [{"exp_labels": {"severity": "warning", "fleet": "llama-3-1-70b-h100-sxm",
                                  "model_name": "llama-3.1-70b"},
                   "exp_annotations": {"summary": f"load above plan: {per_min / 60:.2f} req/s vs planned 12 req/s "
                                                  "(alert above 1.1×)"}}] if fires else []
        return {"interval": "1m",
                "input_series": [
                    {"series": f"vllm:e2e_request_latency_seconds_count{sel}", "values": f"0+{per_min}x30"},
                    {"series": f"vllm:num_requests_running{sel}", "values": "10x30"},
                    {"series": f"vllm:num_requests_waiting{sel}", "values": "0x30"}],
                "alert_rule_test": [{"eval_time": "20m", "alertname": "ServelabLoadAbovePlan", "exp_alerts": alerts}]}

    test = {"rule_files": [str(out / "rules.yaml")], "evaluation_interval": "30s",
            "tests": [case(720, False), case(1440, True)]}
    tf = tmp_path / "rules_test.yaml"
    tf.write_text(yaml.safe_dump(test, allow_unicode=True))
    res = subprocess.run([PROMTOOL, "test", "rules", str(tf)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_grafana_panels_use_the_rendered_recording_rules(scen: Path, tmp_path: Path) -> None:
    dash = json.loads((_render(tmp_path, scen, "grafana") / "dashboard.json").read_text())
    (rules,) = _docs(_render(tmp_path, scen, "prometheus") / "rules.yaml")
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    import re

    used = {m for p in dash["panels"] for t in p["targets"] for m in re.findall(r"servelab:[a-z0-9_:]+", t["expr"])}
    assert used and used <= recorded
    titles = [p["title"] for p in dash["panels"]]
    for want in ("Request rate vs plan", "TTFT p50/p95 vs SLO", "Running / waiting", "KV-cache usage (max replica)",
                 "Preemptions", "Cost per 1M output tokens (USD)"):
        assert want in titles


def test_drills_are_judged_by_decide(scen: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.yaml"
    small.write_text("model: llama-3.1-8b\ngpu: h100-sxm\nreplicas: 2\nrate_rps: 4\nduration_s: 40\nworkload: chat\n"
                     "output_tokens: 64\nautoscaler: {min_replicas: 1, max_replicas: 3, provisioning_delay_s: 30,"
                     " model_load_delay_s: 20, poll_interval_s: 5, cooldown_s: 60}\n")
    out = _render(tmp_path, small, "kubernetes")
    (drills,) = _docs(out / "drills.yaml")
    assert list(drills["scenarios"]) == ["planned", "burst-3x", "replica-lost", "cold-start", "spot-reclaim"]
    cold = drills["scenarios"]["cold-start"]
    assert cold["replicas"] == 1
    assert (cold["autoscaler"]["provisioning_delay_s"], cold["autoscaler"]["model_load_delay_s"]) == (30, 20)
    assert drills["scenarios"]["burst-3x"]["burst"]["factor"] == 3.0
    r = CliRunner().invoke(app, ["decide", str(out / "drills.yaml"), "--json", "--ledger", str(tmp_path / "l.sqlite")])
    assert r.exit_code in (0, 1), r.output
    res = json.loads(r.stdout[r.stdout.index("{"):])
    verdicts = res.get("verdicts") or res.get("claims")
    assert len(verdicts) == len(drills["claims"])


ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("example,sets", [
    ("default-plan.yaml", []),
    ("h100-plan.yaml", ["--set", "autoscaler.max_replicas=6", "--set", "autoscaler.min_replicas=2"]),
    ("llama70b-fp8-h100.yaml", ["--set", "autoscaler.max_replicas=6"]),
    ("multi-lora-spec.yaml", []),
])
def test_example_plans_render_valid_manifests(example: str, sets: list[str], tmp_path: Path) -> None:
    """The plans shown in docs/deploy.md (exported by `servelab plan --export-scenario`) and the
    example scenarios: every object passes its schema."""
    kv = pytest.importorskip("kubernetes_validate", reason="pip install 'servelab[deploy]'")
    jsonschema = pytest.importorskip("jsonschema")
    out = _render(tmp_path, ROOT / "examples" / "scenarios" / example, "kubernetes", *sets)
    crd = {"ScaledObject": _crd_schema("keda.sh_scaledobjects.yaml", "v1alpha1"),
           "NodePool": _crd_schema("karpenter.sh_nodepools.yaml", "v1")}
    kinds = []
    for d in _docs(out / "fleet.yaml"):
        kinds.append(d["kind"])
        if d["kind"] in crd:
            jsonschema.validate(d, crd[d["kind"]])
        else:
            kv.validate(d, "1.30.0", strict=True)
    assert kinds[:3] == ["Deployment", "Service", "PodDisruptionBudget"]
    assert ("ScaledObject" in kinds) == bool(sets)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package 'prometheus')")
def test_every_dashboard_query_is_valid_promql(scen: Path, tmp_path: Path) -> None:
    """promtool parses each panel's query (as a recording rule's expression)."""
    dash = json.loads((_render(tmp_path, scen, "grafana") / "dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"q:{i}", "expr": e}
                                                         for i, e in enumerate(exprs)]}]}
    f = tmp_path / "dash_rules.yaml"
    f.write_text(yaml.safe_dump(rules))
    r = subprocess.run([PROMTOOL, "check", "rules", str(f)], capture_output=True, text=True)
    assert r.returncode == 0 and f"{len(exprs)} rules found" in r.stdout, r.stdout + r.stderr
