"""Simulator configuration errors: each names the bad value and what is valid (the house
rule for errors at the edges). The expected messages are written out in full from that
rule and the documented valid ranges (``sim/config.py``), never read from the code."""

from __future__ import annotations

import pytest

from servelab.errors import ConfigError
from servelab.sim import AutoscalerConfig, ConstantStepModel, ReplicaSpec, SchedulerConfig, SimConfig

_S = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
_REP = ReplicaSpec(scheduler=_S, step_model=ConstantStepModel(step_s=1.0))


def _msg(make) -> str:
    with pytest.raises(ConfigError) as e:
        make()
    return str(e.value)


def test_sim_config_errors_name_the_value_and_the_valid_ones() -> None:
    assert _msg(lambda: SimConfig(replicas=(_REP,), router="random")) == (
        "unknown router 'random'; known: round_robin, least_outstanding, least_kv, prefix")
    assert _msg(lambda: SimConfig(replicas=())) == "SimConfig.replicas is empty; give at least one ReplicaSpec"
    # two replica specs: valid template indices are 0 and 1
    assert _msg(lambda: SimConfig(replicas=(_REP, _REP), autoscaler=AutoscalerConfig(template=2))) == (
        "autoscaler.template 2 is not an index of replicas (0..1)")
    assert _msg(lambda: SimConfig(replicas=(_REP,), timeseries_interval_s=0.0)) == (
        "timeseries_interval_s must be > 0, got 0.0")


def test_missing_required_numbers_are_config_errors() -> None:
    """None is accepted only where a field documents it (num_kv_blocks, rate limits);
    elsewhere it is a bad value like 0."""
    assert _msg(lambda: SchedulerConfig(max_num_seqs=None)) == "max_num_seqs must be > 0, got None"
    assert _msg(lambda: AutoscalerConfig(target=None)) == "target must be > 0, got None"
    assert _msg(lambda: SchedulerConfig(max_num_batched_tokens=0, max_num_seqs=1)) == (
        "max_num_batched_tokens must be > 0, got 0")


def test_replica_spec_without_deployment_names_what_it_needs() -> None:
    assert _msg(lambda: ReplicaSpec(scheduler=SchedulerConfig(), step_model=ConstantStepModel(step_s=1.0))) == (
        "a ReplicaSpec without a deployment needs step_model and scheduler.num_kv_blocks")


def test_kv_tier_errors_and_load_time() -> None:
    from servelab.sim import KVTier
    assert _msg(lambda: KVTier(name="", blocks=1)) == "KVTier.name must not be empty"
    assert _msg(lambda: KVTier(name="dram", blocks=-1)) == (
        "KV tier 'dram': blocks, block_bytes and latency_s must be >= 0, got -1, 0.0, 0.0")
    assert _msg(lambda: KVTier(name="dram", blocks=1, block_bytes=-0.5)) == (
        "KV tier 'dram': blocks, block_bytes and latency_s must be >= 0, got 1, -0.5, 0.0")
    assert _msg(lambda: KVTier(name="dram", blocks=1, latency_s=-0.25)) == (
        "KV tier 'dram': blocks, block_bytes and latency_s must be >= 0, got 1, 0.0, -0.25")
    assert _msg(lambda: KVTier(name="nvme", blocks=1, read_bytes_per_s=0.0)) == (
        "KV tier 'nvme' read_bytes_per_s must be > 0, got 0.0")
    t = KVTier(name="dram", blocks=0, block_bytes=8.0, read_bytes_per_s=2.0)   # zeros are valid
    assert t.load_s_per_block == 4.0                                           # 8 B / 2 B/s


def test_scheduler_config_errors_and_boundaries() -> None:
    from servelab.sim import KVTier
    spec = "need num_speculative_tokens >= 0, 0 <= spec_acceptance_rate <= 1, spec_draft_cost >= 0; got "
    assert _msg(lambda: SchedulerConfig(num_speculative_tokens=-1)) == spec + "-1, 0.0, 0.0"
    assert _msg(lambda: SchedulerConfig(spec_acceptance_rate=1.5)) == spec + "0, 1.5, 0.0"
    assert _msg(lambda: SchedulerConfig(spec_acceptance_rate=-0.5)) == spec + "0, -0.5, 0.0"
    assert _msg(lambda: SchedulerConfig(spec_draft_cost=-0.5)) == spec + "0, 0.0, -0.5"
    SchedulerConfig(spec_acceptance_rate=1.0)                   # both ends of [0, 1] are valid
    a = KVTier(name="a", blocks=1)
    assert _msg(lambda: SchedulerConfig(kv_tiers=(a, a))) == "KV tier names must be unique, got ['a', 'a']"
    assert _msg(lambda: SchedulerConfig(max_loras=-1)) == "max_loras and lora_load_s must be >= 0, got -1, 0.0"
    assert _msg(lambda: SchedulerConfig(lora_load_s=-0.5)) == "max_loras and lora_load_s must be >= 0, got 0, -0.5"
    assert _msg(lambda: SchedulerConfig(block_size=0)) == "block_size must be > 0, got 0"
    assert _msg(lambda: SchedulerConfig(num_kv_blocks=0)) == "num_kv_blocks must be > 0, got 0"
    assert _msg(lambda: SchedulerConfig(max_num_seqs=0)) == "max_num_seqs must be > 0, got 0"
    assert _msg(lambda: SchedulerConfig(max_waiting=-1)) == "max_waiting must be >= 0 or None, got -1"
    SchedulerConfig(max_waiting=0)
    assert _msg(lambda: SchedulerConfig(max_num_batched_tokens=4, max_num_seqs=8)) == (
        "max_num_batched_tokens (4) must be >= max_num_seqs (8), as vLLM requires")
    SchedulerConfig(max_num_batched_tokens=8, max_num_seqs=8)   # equal is allowed
    assert _msg(lambda: SchedulerConfig(preemption="swap")) == "unknown preemption 'swap'; known: recompute"
    assert _msg(lambda: SchedulerConfig(scheduling_policy="lifo")) == (
        "unknown scheduling_policy 'lifo'; known: fcfs, priority")
    # offload tiers: capacity-0 tiers are left out, order kept
    b, z = KVTier(name="b", blocks=2), KVTier(name="z", blocks=0)
    assert SchedulerConfig(kv_tiers=(a, z, b)).offload_tiers() == (a, b)


def test_spec_tokens_per_step_closed_form() -> None:
    """(1 − α^(k+1)) / (1 − α): k=2, α=0.5 → (1 − 0.125)/0.5 = 1.75; α=1 → k+1; k=0 → 1."""
    assert SchedulerConfig(num_speculative_tokens=2, spec_acceptance_rate=0.5).spec_tokens_per_step == 1.75
    assert SchedulerConfig(num_speculative_tokens=3, spec_acceptance_rate=1.0).spec_tokens_per_step == 4.0
    assert SchedulerConfig(num_speculative_tokens=0, spec_acceptance_rate=0.5).spec_tokens_per_step == 1.0


def test_replica_admission_autoscaler_fault_errors() -> None:
    from servelab.sim import AdmissionConfig, Fault
    assert _msg(lambda: ReplicaSpec(scheduler=_S, step_model=ConstantStepModel(step_s=1.0), count=-1)) == (
        "replica count must be >= 0, got -1")
    ReplicaSpec(scheduler=_S, step_model=ConstantStepModel(step_s=1.0), count=0)
    assert _msg(lambda: AdmissionConfig(max_queue=-1)) == "max_queue must be >= 0 or None, got -1"
    AdmissionConfig(max_queue=0)
    assert _msg(lambda: AdmissionConfig(rate_limit_rps=0)) == "rate_limit_rps must be > 0, got 0"
    assert _msg(lambda: AdmissionConfig(burst=0)) == "burst must be > 0, got 0"
    assert _msg(lambda: AdmissionConfig(client_timeout_s=0)) == "client_timeout_s must be > 0, got 0"
    # bucket: the burst when given, else max(1, rate)
    assert AdmissionConfig(rate_limit_rps=8.0, burst=2.0).bucket_size == 2.0
    assert AdmissionConfig(rate_limit_rps=8.0).bucket_size == 8.0
    assert AdmissionConfig(rate_limit_rps=0.5).bucket_size == 1.0
    assert AdmissionConfig().bucket_size == 1.0
    assert _msg(lambda: AutoscalerConfig(metric="qps")) == (
        "unknown autoscaler metric 'qps'; known: waiting, kv_usage, running")
    assert _msg(lambda: AutoscalerConfig(target=0)) == "target must be > 0, got 0"
    assert _msg(lambda: AutoscalerConfig(poll_interval_s=0)) == "poll_interval_s must be > 0, got 0"
    rng = "need 0 <= min_replicas <= max_replicas and max_replicas >= 1, got "
    assert _msg(lambda: AutoscalerConfig(min_replicas=-1)) == rng + "-1..8"
    assert _msg(lambda: AutoscalerConfig(min_replicas=3, max_replicas=2)) == rng + "3..2"
    assert _msg(lambda: AutoscalerConfig(min_replicas=0, max_replicas=0)) == rng + "0..0"
    AutoscalerConfig(min_replicas=0, max_replicas=1)
    AutoscalerConfig(min_replicas=2, max_replicas=2)
    for name in ("provisioning_delay_s", "model_load_delay_s", "cooldown_s", "tolerance"):
        assert _msg(lambda: AutoscalerConfig(**{name: -0.5})) == f"{name} must be >= 0, got -0.5"
        AutoscalerConfig(**{name: 0.0})
    assert _msg(lambda: Fault(at_s=1.0, action="restart")) == "unknown fault action 'restart'; known: kill"
    assert _msg(lambda: Fault(at_s=1.0, in_flight="drop")) == "unknown in_flight 'drop'; known: fail, retry"


def test_every_documented_choice_is_accepted() -> None:
    from servelab.sim import Fault
    assert [Fault(at_s=1.0, in_flight=x).in_flight for x in ("fail", "retry")] == ["fail", "retry"]
    assert SchedulerConfig(scheduling_policy="priority").scheduling_policy == "priority"
    assert SimConfig(replicas=(_REP,)).autoscaler is None
    # template: any index of replicas, 0 included; -1 is not one
    assert SimConfig(replicas=(_REP, _REP), autoscaler=AutoscalerConfig(template=0)).autoscaler.template == 0
    assert _msg(lambda: SimConfig(replicas=(_REP, _REP), autoscaler=AutoscalerConfig(template=-1))) == (
        "autoscaler.template -1 is not an index of replicas (0..1)")
