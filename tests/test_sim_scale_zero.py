"""Scale to zero: requests wait at the router through a cold start (hand-computed times)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from servelab.catalog import RequestSpec
from servelab.cli import app
from servelab.errors import ConfigError
from servelab.sim import (
    AdmissionConfig,
    AutoscalerConfig,
    ConstantStepModel,
    SchedulerConfig,
    ReplicaSpec,
    SimConfig,
    simulate,
)


def _cfg(exact: bool = False, **adm) -> SimConfig:
    # No replica at start; a cold start is 20 s provisioning + 10 s model load = 30 s.
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=100), step_model=ConstantStepModel(step_s=0.01),
                       count=0)
    auto = AutoscalerConfig(min_replicas=0, max_replicas=1, provisioning_delay_s=20.0,
                            model_load_delay_s=10.0, poll_interval_s=15.0, cooldown_s=0.0,
                            metric="waiting", target=4.0)
    return SimConfig(replicas=(spec,), autoscaler=auto, exact=exact, admission=AdmissionConfig(**adm))


REQS = [RequestSpec(id="a", arrival_s=1.0, input_tokens=16, output_tokens=3),
        RequestSpec(id="b", arrival_s=5.0, input_tokens=16, output_tokens=2),
        RequestSpec(id="c", arrival_s=100.0, input_tokens=16, output_tokens=1)]


@pytest.mark.parametrize("exact", [False, True])
def test_cold_start_shows_in_ttft(exact: bool) -> None:
    res = simulate(_cfg(exact), REQS)
    r = {x.id: x for x in res.records}
    # a (t=1) finds no replica: it starts one, ready at 1 + 30 = 31; b (t=5) waits too.
    # At 31 both are dispatched in order: step 31→31.01 prefills a (first token),
    # 31.01→31.02 decodes a and prefills b, 31.02→31.03 decodes both: a has 3 tokens, b 2.
    assert r["a"].status == r["b"].status == "ok"
    assert r["a"].dispatch_s == 31.0 and r["b"].dispatch_s == 31.0
    assert r["a"].first_token_s - r["a"].arrival_s == pytest.approx(30.01)
    assert r["b"].first_token_s - r["b"].arrival_s == pytest.approx(26.02)
    assert r["a"].finish_s == pytest.approx(31.03) and r["b"].finish_s == pytest.approx(31.03)
    # poll at 45: mean waiting 0 -> desired 0 (min 0, cooldown 0): the replica goes away.
    # c (t=100) cold-starts a new one, ready at 130; prefill 130 -> 130.01.
    assert r["c"].first_token_s == pytest.approx(130.01) and r["c"].replica == "replica-1"
    ev = [(t, kind, name) for t, kind, name in res.events]
    assert ev == [(1.0, "cold_start", "replica-0"), (31.0, "ready", "replica-0"),
                  (45.0, "scale_down", "replica-0"), (45.0, "removed", "replica-0"),
                  (100.0, "cold_start", "replica-1"), (130.0, "ready", "replica-1"),
                  # the poll at 135 (scheduled at 120, while c was still waiting) scales to zero again
                  (135.0, "scale_down", "replica-1"), (135.0, "removed", "replica-1")]


def test_waiting_requests_time_out_and_queue_is_bounded() -> None:
    res = simulate(_cfg(client_timeout_s=20.0), REQS)
    r = {x.id: x for x in res.records}
    # a and b give up at 21 and 25, before the replica is ready at 31; c (t=100) has its
    # deadline at 120 but the replica it started is ready only at 130: it times out too.
    assert [r[k].status for k in "abc"] == ["timed_out"] * 3
    assert r["a"].finish_s == 21.0 and r["b"].finish_s == 25.0 and r["c"].finish_s == 120.0
    assert r["a"].first_token_s is None
    res = simulate(_cfg(max_queue=1), REQS)
    r = {x.id: x for x in res.records}
    assert r["a"].status == "ok" and r["c"].status == "ok"
    assert r["b"].status == "rejected" and r["b"].reason == "503 queue full"


def test_min_replicas_validation_and_no_autoscaler_still_rejects() -> None:
    with pytest.raises(ConfigError, match="max_replicas >= 1"):
        AutoscalerConfig(min_replicas=0, max_replicas=0)
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=100), step_model=ConstantStepModel(step_s=0.01),
                       count=0)
    res = simulate(SimConfig(replicas=(spec,)), REQS[:1])
    assert res.records[0].status == "rejected" and res.records[0].reason == "503 no ready replica"


def test_cli_scale_to_zero_and_nvme_tier() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["simulate", "--duration", "20", "--rate", "2", "--replicas", "0",
                              "--autoscale-max", "2", "--autoscale-min", "0", "--provisioning-delay", "20",
                              "--load-delay", "10", "--nvme-kv-gib", "10", "--cpu-kv-gib", "1", "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["sim"]["events"][0][1] == "cold_start"
    assert s["completed"] == s["offered"]
    assert s["ttft_s"]["p99"] >= 10.0          # the first arrivals wait through most of the 30 s cold start
    assert set(s["sim"]["kv_tier_hit_tokens"]) == {"dram", "nvme"}
    res = runner.invoke(app, ["simulate", "--duration", "5", "--replicas", "0", "--json"])
    assert res.exit_code == 2 and "--autoscale-min 0" in res.output


def test_scenario_nvme_tier_figures() -> None:
    # Llama-3.1-8B bf16 on one H100 SXM: 131,072 B of KV per token, 2,097,152 B per block;
    # 10 GiB = 10,737,418,240 B -> 5,120 blocks. Read rate min(PCIe 64 GB/s, 7.45 GB/s) = 7.45e9.
    from servelab.scenario.flags import ScenarioArgs
    from servelab.scenario import build

    def cfg_of(**flags):
        return build.sim_config(ScenarioArgs(flags=flags).resolve())
    cfg = cfg_of(tp=1, nvme_kv_gib=10.0, kv_tiers="cxl:4:20")
    nvme, cxl = cfg.replicas[0].scheduler.offload_tiers()
    assert (nvme.name, nvme.blocks, nvme.block_bytes) == ("nvme", 5120, 2_097_152)
    assert nvme.read_bytes_per_s == 7.45e9 and nvme.latency_s == pytest.approx(1e-4)
    assert (cxl.name, cxl.blocks, cxl.read_bytes_per_s, cxl.latency_s) == ("cxl", 2048, 20e9, 0.0)
    # TP2: each GPU reads half of every block from the one drive: 7.45e9 / 2 per GPU
    cfg2 = cfg_of(tp=2, nvme_kv_gib=10.0)
    assert cfg2.replicas[0].scheduler.offload_tiers()[0].read_bytes_per_s == 3.725e9
    with pytest.raises(ConfigError, match="name:GiB"):
        cfg_of(tp=1, kv_tiers="nvme")
