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
