"""P/D fleet (``sim/pd_fleet.py``) autoscaling, drained replicas and transfers, worked by hand.

References: the per-pool rule of the module docstring, ``desired = ceil(ready · mean(metric) /
target)`` clamped to [min, max], with the pool's own provisioning count and cooldown clock
(a pool acts when ``now − last action >= cooldown_s``, or scales up while below
``min_replicas``; scale-down waits for its pool's provisioning to finish; the highest
index drains first), evaluated by hand for each poll. The rule tests drive
``PDSim.on_scale`` directly with fixed gauge values per replica (the metric under test;
the two other gauges read 99, so reading the wrong one shows); the run tests are tiny
fleets with constant step times and binary-fraction times, timelines worked out in
the docstrings. Also a few edges met on the way (KV bytes of a real model shape, the
router's least-outstanding policy and its strict imbalance threshold), each against a
hand value or the documented rule.
"""

from __future__ import annotations

import heapq

from servelab.catalog import RequestSpec
from servelab.sim import (
    AdmissionConfig,
    AutoscalerConfig,
    ConstantStepModel,
    DisaggConfig,
    Fault,
    KVLink,
    ReplicaSpec,
    SchedulerConfig,
    SimConfig,
    simulate,
)
from servelab.sim.cluster import _READY
from servelab.sim.pd_fleet import PDSim

_S = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
_GAUGE = {"waiting": "waiting", "running": "running", "kv_usage": "kv_usage_perc"}


def _req(rid, t, n_in, n_out) -> RequestSpec:
    return RequestSpec(id=rid, arrival_s=t, input_tokens=n_in, output_tokens=n_out)


def _sim(p: int, d: int, **auto) -> PDSim:
    cfg = SimConfig(
        replicas=(ReplicaSpec(name="p", scheduler=_S, count=p, step_model=ConstantStepModel(step_s=1.0)),
                  ReplicaSpec(name="d", scheduler=_S, count=d, step_model=ConstantStepModel(step_s=1.0))),
        disagg=DisaggConfig(link=KVLink(name="t", bytes_per_s=128.0, latency_s=0.125), kv_bytes_per_token=16.0),
        autoscaler=AutoscalerConfig(**auto))
    return PDSim(cfg, [])


class _Gauges:
    """Fixed per-replica values of one autoscaler metric; records (replica, now_s) of each read."""

    def __init__(self, sim: PDSim, metric: str) -> None:
        self.sim, self.key, self.values, self.reads = sim, _GAUGE[metric], {}, []

    def set(self, **values: float) -> None:
        self.values = {k.replace("_", "-"): v for k, v in values.items()}
        for rep in self.sim.replicas:
            rep.engine.stats = (lambda now_s=None, n=rep.name: self._read(n, now_s))

    def _read(self, name: str, now_s):
        self.reads.append((name, now_s))
        out = {"waiting": 99, "running": 99, "kv_usage_perc": 99}
        out[self.key] = self.values[name]
        return out


def _ready_due(sim: PDSim) -> list[tuple]:
    return sorted((e[0], e[1], e[3], e[4].name) for e in sim.heap)


def _deliver_ready(sim: PDSim) -> None:
    """Run the pending ``ready`` events in time order."""
    while sim.heap:
        t, _p, _s, kind, rep, _b = heapq.heappop(sim.heap)
        assert kind == "ready"
        sim.on_ready(rep, t)


def _names(reps) -> list[str]:
    return [x.name for x in reps]


# ----------------------------------------------------------------------------- the rule
def test_each_pool_scales_up_down_by_its_own_mean_and_clock() -> None:
    """2 prefill (p-0 idx 0, p-1 idx 1) + 2 decode (d-0 idx 2, d-1 idx 3); metric waiting,
    target 2, 1..4 per pool, cooldown 0.5 s, ready 0.25 + 0.5 = 0.75 s after the decision.
    t=1: P waiting (3, 2): mean 2.5 → ceil(2·2.5/2) = 3 → +1 (p-2, idx 4). D (4, 4): mean 4 →
         ceil(2·4/2) = 4 exactly → +2 (d-2 idx 5, d-3 idx 6). All ready at 1.75.
    t=1.5 (exactly one cooldown after 1: cooled): P (4, 4): 4 > 2 ready + 1 provisioning
         → +1 (p-3, idx 7, ready 2.25). D (4, 4): 4 = 2 + 2 provisioning → nothing.
    t=3: P (0, 0, 0, 0) → 0 → min 1: drain the 3 highest indices p-3, p-2, p-1; p-2 is
         mid-step (busy) so it stays draining, the idle ones go at once. D (1, 1, 1, 0):
         mean 3/4 → ceil(4·0.75/2) = ceil(1.5) = 2 → drain d-3, d-2.
    t=4: P (2) → ceil(1·2/2) = 1 = ready; D (2, 2) → 2: no change."""
    sim = _sim(2, 2, metric="waiting", target=2.0, min_replicas=1, max_replicas=4, cooldown_s=0.5,
               provisioning_delay_s=0.25, model_load_delay_s=0.5)
    g = _Gauges(sim, "waiting")
    g.set(p_0=3, p_1=2, d_0=4, d_1=4)
    sim.on_scale(1.0)
    assert sim.events == [(1.0, "scale_up", "p-2"), (1.0, "scale_up", "d-2"), (1.0, "scale_up", "d-3")]
    assert _ready_due(sim) == [(1.75, _READY, "ready", "d-2"), (1.75, _READY, "ready", "d-3"),
                               (1.75, _READY, "ready", "p-2")]
    assert g.reads == [("p-0", 1.0), ("p-1", 1.0), ("d-0", 1.0), ("d-1", 1.0)]   # gauges at the poll time
    assert [x.state for x in sim.replicas[4:]] == ["provisioning"] * 3
    g.set(p_0=4, p_1=4, d_0=4, d_1=4)
    sim.on_scale(1.5)
    assert sim.events[3:] == [(1.5, "scale_up", "p-3")]
    assert _ready_due(sim)[-1] == (2.25, _READY, "ready", "p-3")
    _deliver_ready(sim)
    assert sim.events[4:] == [(1.75, "ready", "p-2"), (1.75, "ready", "d-2"), (1.75, "ready", "d-3"),
                              (2.25, "ready", "p-3")]             # equal times: in decision order
    assert _names(sim.ready) == ["p-0", "p-1", "p-2", "p-3"]
    assert _names(sim.dec) == ["d-0", "d-1", "d-2", "d-3"]
    assert all(x.state == "ready" for x in sim.replicas)
    # new prefill replicas keep a request's KV for its transfer, new decode ones do not
    assert [x.engine.hold_kv for x in sim.replicas] == [True, True, False, False, True, False, False, True]
    g.set(p_0=0, p_1=0, p_2=0, p_3=0, d_0=1, d_1=1, d_2=1, d_3=0)
    sim.replicas[4].busy = True                             # p-2 mid-step
    n = len(sim.events)
    sim.on_scale(3.0)
    assert sim.events[n:] == [
        (3.0, "scale_down", "p-3"), (3.0, "removed", "p-3"), (3.0, "scale_down", "p-2"),
        (3.0, "scale_down", "p-1"), (3.0, "removed", "p-1"),
        (3.0, "scale_down", "d-3"), (3.0, "removed", "d-3"), (3.0, "scale_down", "d-2"),
        (3.0, "removed", "d-2")]
    assert _names(sim.ready) == ["p-0"] and _names(sim.dec) == ["d-0", "d-1"]
    assert [x.state for x in sim.replicas] == ["ready", "dead", "ready", "ready", "draining", "dead", "dead",
                                               "dead"]
    g.set(p_0=2, d_0=2, d_1=2)
    n = len(sim.events)
    sim.on_scale(4.0)
    assert sim.events[n:] == [] and sim.heap == []


def test_running_and_kv_usage_metrics_and_the_max_clamp() -> None:
    """metric running, target 3, 1..4: P running 5 → ceil(5/3) = 2 → +1 (p-1); D running
    40 → 14 → clamped to 4 → +3. metric kv_usage, target 0.5: P 0.75 → ceil(1.5) = 2 → +1;
    D 0.5 → 1·0.5/0.5 = 1 exactly → 1: no change."""
    sim = _sim(1, 1, metric="running", target=3.0, max_replicas=4)
    g = _Gauges(sim, "running")
    g.set(p_0=5, d_0=40)
    sim.on_scale(15.0)
    assert sim.events == [(15.0, "scale_up", "p-1"), (15.0, "scale_up", "d-1"), (15.0, "scale_up", "d-2"),
                          (15.0, "scale_up", "d-3")]
    sim = _sim(1, 1, metric="kv_usage", target=0.5, max_replicas=4)
    g = _Gauges(sim, "kv_usage")
    g.set(p_0=0.75, d_0=0.5)
    sim.on_scale(15.0)
    assert sim.events == [(15.0, "scale_up", "p-1")]


def test_a_poll_without_action_does_not_restart_the_cooldown() -> None:
    """cooldown 100 s, target 2. t=1: P waiting 2, D 2 → desired 1 = ready: nothing, and the
    pools have never acted. t=2: P waiting 4 → 2 > 1, cooled (no action yet) → +1 (p-1)."""
    sim = _sim(1, 1, metric="waiting", target=2.0, cooldown_s=100.0)
    g = _Gauges(sim, "waiting")
    g.set(p_0=2, d_0=2)
    sim.on_scale(1.0)
    assert sim.events == []
    g.set(p_0=4, d_0=2)
    sim.on_scale(2.0)
    assert sim.events == [(2.0, "scale_up", "p-1")]


def test_scale_up_is_not_held_by_the_window_and_refills_a_dead_pool() -> None:
    """target 1, 1..3, window (cooldown_s) 100 s, no delays.
    t=1: P (0, 0) → 0 → min 1; window high 1 < 2 ready → drain p-1 (idle: removed);
         D waiting 3 → 3 > 1 → +2 (d-1, d-2), ready at 1.
    t=2: P waiting 5 on one replica → ceil(5) = 5 → max 3 > 1 → +2 at once (p-2, p-3): the
         window only holds scale-down. D (1, 1, 1) → ratio 1: keep 3.
    Faults kill d-0, d-1, d-2 at 2.5. t=3: D has no ready replica → desired = min = 1 >
    0 total → +1 (d-3)."""
    sim = _sim(2, 1, metric="waiting", target=1.0, min_replicas=1, max_replicas=3, cooldown_s=100.0)
    g = _Gauges(sim, "waiting")
    g.set(p_0=0, p_1=0, d_0=3)
    sim.on_scale(1.0)
    _deliver_ready(sim)
    assert sim.events == [(1.0, "scale_down", "p-1"), (1.0, "removed", "p-1"), (1.0, "scale_up", "d-1"),
                          (1.0, "scale_up", "d-2"), (1.0, "ready", "d-1"), (1.0, "ready", "d-2")]
    g.set(p_0=5, d_0=1, d_1=1, d_2=1)
    sim.on_scale(2.0)
    assert sim.events[6:] == [(2.0, "scale_up", "p-2"), (2.0, "scale_up", "p-3")]
    for name in ("d-0", "d-1", "d-2"):
        sim.on_fault(Fault(at_s=2.5, replica=name), 2.5)
    assert sim.dec == []
    n = len(sim.events)
    sim.on_scale(3.0)
    assert sim.events[n:] == [(3.0, "scale_up", "d-3")]


def test_no_scale_down_while_the_pool_provisions() -> None:
    """target 1, 1..4, cooldown 0. t=1: D waiting (2, 2) → 4 → +2 (ready at 1 + 8 = 9).
    t=2: D (0, 0) → 1 < 2 ready, but 2 still provisioning: no drain. After both are ready
    (4 ready, none provisioning) t=10: (0, 0, 0, 0) → drain d-3, d-2, d-1."""
    sim = _sim(1, 2, metric="waiting", target=1.0, max_replicas=4, cooldown_s=0.0, provisioning_delay_s=8.0)
    g = _Gauges(sim, "waiting")
    g.set(p_0=1, d_0=2, d_1=2)
    sim.on_scale(1.0)
    g.set(p_0=1, d_0=0, d_1=0)
    sim.on_scale(2.0)
    assert sim.events == [(1.0, "scale_up", "d-2"), (1.0, "scale_up", "d-3")]
    _deliver_ready(sim)
    g.set(p_0=1, d_0=0, d_1=0, d_2=0, d_3=0)
    sim.on_scale(10.0)
    assert [e for e in sim.events if e[0] == 10.0] == [
        (10.0, "scale_down", "d-3"), (10.0, "removed", "d-3"), (10.0, "scale_down", "d-2"),
        (10.0, "removed", "d-2"), (10.0, "scale_down", "d-1"), (10.0, "removed", "d-1")]


# ----------------------------------------------------------------------------- drained replicas in a run
def _drain_cfg(**adm) -> SimConfig:
    return SimConfig(
        replicas=(ReplicaSpec(name="p", scheduler=_S, count=2, step_model=ConstantStepModel(step_s=1.0)),
                  ReplicaSpec(name="d", scheduler=_S, count=2, step_model=ConstantStepModel(step_s=0.25))),
        disagg=DisaggConfig(link=KVLink(name="t", bytes_per_s=128.0, latency_s=0.125), kv_bytes_per_token=16.0),
        autoscaler=AutoscalerConfig(metric="waiting", target=1.0, poll_interval_s=1.0, cooldown_s=0.0),
        admission=AdmissionConfig(**adm))


def test_drained_replicas_wait_for_their_transfers() -> None:
    """Transfer of n tokens: 0.125 + 16·n/128 = 0.125 + n/8 s. a (24 in / 1 out) and b (8 in /
    1 out) at 0: round robin → a on p-0, b on p-1, both prefill [0, 1]. At 1: a → d-0
    ([1, 4.125]), b → d-1 (d-0 has one on its way) ([1, 2.125]).
    Poll 1 (after the steps that end at 1): nothing waits in any engine → desired 0 → min 1
    per pool: drain the highest index of each, p-1 and d-1, both idle.
    p-1 still holds b's KV and d-1 has b on its way: neither retires yet.
    2.125: b lands: p-1 lets go of the KV → retired; b enters d-1 (draining, still
    serving), one 0.25 s step → b done at 2.375 → d-1 retired. a: done 4.125 + 0.25 = 4.375.
    Ready replicas sampled each second: 4 at 0, 2 from the poll at 1 (the poll comes before
    the sample at equal times)."""
    res = simulate(_drain_cfg(), [_req("a", 0.0, 24, 1), _req("b", 0.0, 8, 1)])
    r = {x.id: x for x in res.records}
    assert res.events == [(1.0, "scale_down", "p-1"), (1.0, "scale_down", "d-1"), (2.125, "removed", "p-1"),
                          (2.375, "removed", "d-1")]
    assert (r["b"].replica, r["b"].finish_s, r["a"].replica, r["a"].finish_s) == ("d-1", 2.375, "d-0", 4.375)
    ts = res.timeseries
    assert ts["t_s"][:5] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert ts["replicas"][:5] == [4, 2, 2, 2, 2]


def test_cancelled_transfer_lets_a_drained_decode_replica_go() -> None:
    """As above with a client timeout of 2 s: b's transfer [1, 2.125] is cancelled at 2: p-1
    frees b's KV → retired at 2; d-1 has nothing on its way any more → retired at 2. a's
    transfer to d-0 would end at 4.125 > 2: a times out at 2 too (a's deadline fires first:
    same time, a was sent first)."""
    res = simulate(_drain_cfg(client_timeout_s=2.0), [_req("a", 0.0, 24, 1), _req("b", 0.0, 8, 1)])
    r = {x.id: x for x in res.records}
    assert (r["a"].status, r["a"].finish_s, r["b"].status, r["b"].finish_s) == ("timed_out", 2.0, "timed_out", 2.0)
    assert r["b"].reason == "client timeout after 2 s"
    assert res.events == [(1.0, "scale_down", "p-1"), (1.0, "scale_down", "d-1"), (2.0, "removed", "p-1"),
                          (2.0, "removed", "d-1")]


# ----------------------------------------------------------------------------- transfers
def _no_runaway(fraction: float) -> None:
    """Progress is reported every 4096 events and once (1.0) at the end; these runs have a
    few dozen events, so an earlier report means a request was never accounted for."""
    if fraction != 1.0:
        raise AssertionError("the run did not end: a request was never accounted for")


def _pd(p: SchedulerConfig, d: SchedulerConfig, d_count: int = 1, d_step: float = 0.25, **disagg) -> SimConfig:
    return SimConfig(
        replicas=(ReplicaSpec(name="p", scheduler=p, step_model=ConstantStepModel(step_s=1.0)),
                  ReplicaSpec(name="d", scheduler=d, count=d_count, step_model=ConstantStepModel(step_s=d_step))),
        disagg=DisaggConfig(link=KVLink(name="t", bytes_per_s=128.0, latency_s=0.125), kv_bytes_per_token=16.0,
                            **disagg))


def test_request_too_big_for_the_decode_replica_fails_there_and_frees_the_prefill_kv() -> None:
    """Prefill replica: 3 blocks of 4; decode replica: 2 blocks of 4 (8 tokens). a (10 in / 1
    out) needs 11 tokens = 3 blocks to prefill (fits) but can never fit the decode side: at
    the end of its prefill [0, 1] it fails with the decode replica's 400 and its 3 prefill
    blocks are freed, so b (4 in / 1 out, 2 blocks, waiting since 0) starts at 1, prefills
    [1, 2], moves 4 tokens (0.125 + 4/8 = 0.625 s) → [2, 2.625], one 0.25 s step → 2.875."""
    p = SchedulerConfig(block_size=4, num_kv_blocks=3, max_num_batched_tokens=64, max_num_seqs=8)
    d = SchedulerConfig(block_size=4, num_kv_blocks=2, max_num_batched_tokens=64, max_num_seqs=8)
    res = simulate(_pd(p, d), [_req("a", 0.0, 10, 1), _req("b", 0.5, 4, 1)], progress=_no_runaway)
    r = {x.id: x for x in res.records}
    assert (r["a"].status, r["a"].reason, r["a"].finish_s) == (
        "failed", "400 request needs 11 tokens of KV; replica holds 8", 1.0)
    assert (r["b"].status, r["b"].start_s, r["b"].first_token_s) == ("ok", 1.0, 2.875)


def test_transfers_queue_fifo_per_prefill_replica_around_a_cancelled_one() -> None:
    """One prefill replica, one transfer at a time; decode d-0, d-1, d-2 (0.25 s steps).
    a, b, c, e (8 in / 1 out) at 0: a prefills alone [0, 1] (the others arrive while its
    step runs), b, c, e together [1, 2]; a transfer takes 0.125 + 8/8 = 1.125 s. Each goes
    to the fewest outstanding + incoming, lowest index: a → d-0 [1, 2.125]; at 2 b → d-1,
    c → d-2, e → d-0 wait for the link in that order.
    d-1 is killed at 2.0625 (retry): b's queued transfer is dropped (the link stays a's)
    and b is prefilled again [2.0625, 3.0625]. 2.125: a lands (done 2.375); b's old place
    is skipped, c starts [2.125, 3.25] (one at a time: e waits). 3.0625: b is sent again
    → d-0 (d-0 and d-2 each have one incoming: lowest index), behind e. 3.25: c lands
    (done 3.5), e starts [3.25, 4.375] (done 4.625); 4.375: b starts [4.375, 5.5] (done 5.75)."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    cfg = _pd(s, s, d_count=3)
    cfg = SimConfig(replicas=cfg.replicas, disagg=cfg.disagg,
                    faults=(Fault(at_s=2.0625, replica="d-1", in_flight="retry"),))
    res = simulate(cfg, [_req(x, 0.0, 8, 1) for x in "abce"], progress=_no_runaway)
    r = {x.id: x for x in res.records}
    assert {k: (x.replica, x.finish_s) for k, x in r.items()} == {
        "a": ("d-0", 2.375), "b": ("d-0", 5.75), "c": ("d-2", 3.5), "e": ("d-0", 4.625)}
    assert r["b"].retries == 1 and all(x.status == "ok" for x in r.values())


def test_concurrent_transfers_land_in_send_order() -> None:
    """max_transfers 2; one decode replica running one request at a time (0.25 s steps).
    a (1 in / 1 out) prefills alone [0, 1], moves [1, 1.25] (0.125 + 1/8), done 1.5.
    b, c, e (8 in / 1 out, at 0) prefill [1, 2]. At 2: b and c start ([2, 3.125] both), e
    waits. 3.125: b lands first (sent first) and runs [3.125, 3.375]; e starts [3.125,
    4.25]; c lands and waits → [3.375, 3.625]. e: [4.25, 4.5]."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    d = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=1)
    reqs = [_req("a", 0.0, 1, 1)] + [_req(x, 0.0, 8, 1) for x in "bce"]
    res = simulate(_pd(s, d, max_transfers=2), reqs, progress=_no_runaway)
    assert [(x.id, x.first_token_s) for x in res.records] == [("a", 1.5), ("b", 3.375), ("c", 3.625),
                                                              ("e", 4.5)]


def test_prompt_is_chunked_on_the_prefill_side_only() -> None:
    """Both sides compute 8 tokens per step (max_num_batched_tokens 8). a (24 in / 2 out):
    prefill in 3 chunks [0, 3]; transfer 0.125 + 24/8 = 3.125 → [3, 6.125]; on the decode
    side the prompt's KV is there: the first step computes only the last prompt token and
    emits token 1 (6.375), the second emits token 2 (6.625)."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=8, max_num_seqs=8)
    r = simulate(_pd(s, s), [_req("a", 0.0, 24, 2)], progress=_no_runaway).records[0]
    assert (r.first_token_s, r.finish_s) == (6.375, 6.625)


class _Dep:
    """A deployment that names only its tensor-parallel degree (``tp``), when given."""

    def __init__(self, **tp) -> None:
        self.__dict__.update(tp)


def test_transfer_tp_of_deployments_without_a_tp_degree() -> None:
    """Link 128 B/s per GPU pair, 0.125 s latency, 16 B of KV per token; a: 8 in / 1 out.
    Prefill [0, 1]; transfer 0.125 + 128 / (128 · min(TP_p, TP_d)), where a deployment
    with no ``tp`` attribute, or ``tp`` None, counts as TP 1; one 0.25 s decode step.
    min 1 → 1.125 s → done at 2.375; both TP 4 → 0.375 s → done at 1.625."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    cases = [(_Dep(), _Dep(tp=4), 2.375), (_Dep(tp=None), _Dep(tp=4), 2.375), (_Dep(tp=4), _Dep(), 2.375),
             (_Dep(tp=4), _Dep(tp=4), 1.625)]
    for dep_p, dep_d, done in cases:
        cfg = _pd(s, s)
        cfg = SimConfig(replicas=(ReplicaSpec(name="p", scheduler=s, step_model=ConstantStepModel(step_s=1.0),
                                              deployment=dep_p),
                                  ReplicaSpec(name="d", scheduler=s, step_model=ConstantStepModel(step_s=0.25),
                                              deployment=dep_d)),
                        disagg=cfg.disagg)
        assert simulate(cfg, [_req("a", 0.0, 8, 1)]).records[0].finish_s == done


def test_transfer_uses_the_prefill_deployments_kv_bytes_per_token() -> None:
    """Llama-3.1-8B (HF config: 32 layers, 8 KV heads, head_dim 128), 16-bit KV:
    2 (K, V) · 32 · 8 · 128 · 2 B = 131072 B per token. Link 8 · 131072 B/s, 0.125 s
    latency: 8 prompt tokens move in 0.125 + 8 · 131072 / (8 · 131072) = 1.125 s.
    a (8 in / 1 out): prefill [0, 1], transfer [1, 2.125], one 0.25 s step → 2.375."""
    from servelab.catalog import get_gpu, get_model
    from servelab.perf import Deployment

    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"), kv_dtype="bf16")
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    cfg = SimConfig(
        replicas=(ReplicaSpec(name="p", scheduler=s, step_model=ConstantStepModel(step_s=1.0), deployment=dep),
                  ReplicaSpec(name="d", scheduler=s, step_model=ConstantStepModel(step_s=0.25), deployment=dep)),
        disagg=DisaggConfig(link=KVLink(name="t", bytes_per_s=8 * 131072.0, latency_s=0.125)))
    r = simulate(cfg, [_req("a", 0.0, 8, 1)]).records[0]
    assert (r.start_s, r.first_token_s) == (0.0, 2.375)


def test_decode_choice_counts_every_transfer_on_its_way() -> None:
    """Two decode replicas, up to 4 transfers at once. a (8 in / 1 out) prefills alone
    [0, 1] → d-0 ([1, 2.125]). b, c, e (8 in / 1 out) prefill [1, 2]; at 2, with nothing
    in either decode engine yet: b → d-1 (d-0 has 1 incoming), c → d-0 (1 and 1: lowest
    index), e → d-1 (d-0 now has 2 incoming, d-1 has 1)."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    res = simulate(_pd(s, s, d_count=2, max_transfers=4), [_req(x, 0.0, 8, 1) for x in "abce"],
                   progress=_no_runaway)
    assert [(x.id, x.replica) for x in res.records] == [("a", "d-0"), ("b", "d-1"), ("c", "d-0"), ("e", "d-1")]


def test_decode_replica_killed_with_a_transfer_running_and_one_queued() -> None:
    """One transfer at a time, decode d-0, d-1. a (8 in / 1 out) prefills [0, 1] → d-0
    ([1, 2.125]); b, c prefill [1, 2]; at 2 b → d-1 and c → d-0 wait for the link. d-0 is
    killed at 2.0625: a (moving) and c (queued) fail then; the link is free, so b starts
    at once: [2.0625, 3.1875], one 0.25 s step → done 3.4375."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    cfg = _pd(s, s, d_count=2)
    cfg = SimConfig(replicas=cfg.replicas, disagg=cfg.disagg, faults=(Fault(at_s=2.0625, replica="d-0"),))
    res = simulate(cfg, [_req(x, 0.0, 8, 1) for x in "abc"], progress=_no_runaway)
    assert [(x.id, x.status, x.finish_s) for x in res.records] == [
        ("a", "failed", 2.0625), ("b", "ok", 3.4375), ("c", "failed", 2.0625)]


def test_timeout_while_decoding_frees_the_decode_slot() -> None:
    """Decode replica runs one request at a time (0.25 s steps); client timeout 2.5 s.
    a (1 in / 8 out, at 0): prefill [0, 1], transfer 0.125 + 1/8 → [1, 1.25], decodes one
    token per 0.25 s from 1.25 (8 tokens would end at 3.25). b (1 in / 1 out, at 0.5):
    prefill [1, 2], lands at 2.25 and waits. a times out at 2.5 and is aborted there, so
    b runs [2.5, 2.75] (before its own deadline 3.0)."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    d = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=1)
    cfg = _pd(s, d)
    cfg = SimConfig(replicas=cfg.replicas, disagg=cfg.disagg, admission=AdmissionConfig(client_timeout_s=2.5))
    res = simulate(cfg, [_req("a", 0.0, 1, 8), _req("b", 0.5, 1, 1)], progress=_no_runaway)
    r = {x.id: x for x in res.records}
    assert (r["a"].status, r["a"].finish_s) == ("timed_out", 2.5)
    assert (r["b"].status, r["b"].first_token_s) == ("ok", 2.75)


def test_kv_bytes_need_a_deployment_or_an_explicit_value() -> None:
    """A prefill spec with no ``deployment`` attribute at all (any object may serve as a spec)
    gets the same clear error as one whose deployment is None."""
    from servelab.errors import ConfigError
    from servelab.sim.disagg import kv_bytes_per_token_of

    for spec in (object(), ReplicaSpec(scheduler=_S, step_model=ConstantStepModel(step_s=1.0))):
        try:
            kv_bytes_per_token_of(DisaggConfig(), spec)
        except ConfigError as e:
            assert str(e) == ("DisaggConfig.kv_bytes_per_token is needed when the prefill replicas "
                              "have no deployment")
        else:
            raise AssertionError("no error")


# ----------------------------------------------------------------------------- router edges (sim/router.py)
class _Eng:
    """The parts of a replica engine the router reads: outstanding requests, block size, KV pool."""

    def __init__(self) -> None:
        self.load, self.bs = 0, 4
        self.pool = type("Pool", (), {"num_blocks": 1000, "usage": staticmethod(lambda: 0.0)})()

    def outstanding(self) -> int:
        return self.load


def _two():
    from types import SimpleNamespace
    return [SimpleNamespace(name="r0", engine=_Eng()), SimpleNamespace(name="r1", engine=_Eng())]


_G = RequestSpec(id="g", arrival_s=0.0, input_tokens=64, output_tokens=1, prefix_group=0, prefix_tokens=64)


def test_least_outstanding_ignores_where_a_prefix_was_sent() -> None:
    """least_outstanding: first g → r0 (0, 0: lowest index); then loads (1, 0) → r1, although
    r0 saw the same 16-block prefix (only the prefix policy would send it back there)."""
    from servelab.sim.router import Router
    ready, r = _two(), Router("least_outstanding", {})
    assert r.pick(_G, ready) == 0
    ready[0].engine.load = 1
    assert r.pick(_G, ready) == 1


def test_prefix_router_relative_imbalance_threshold_is_strict() -> None:
    """sgl-router: imbalanced when hi − lo > 32 AND hi > 1.0001 · lo. g's 16 prefix blocks
    go to r0 first (loads 0, 0). Loads (330033, 330000): hi − lo = 33 > 32 but
    hi = 1.0001 · 330000 exactly (330033.0 in floating point), not above: balanced, so the
    cache decides: r0 matches all 16 blocks, 64 tokens > 0.5 · 64 → r0. One more on r0
    (330034 > 330033.0): imbalanced → the least loaded, r1."""
    from servelab.sim.router import Router
    assert 1.0001 * 330000 == 330033.0
    ready, r = _two(), Router("prefix", {})
    assert r.pick(_G, ready) == 0
    ready[0].engine.load, ready[1].engine.load = 330033, 330000
    assert r.pick(_G, ready) == 0
    ready[0].engine.load = 330034
    assert r.pick(_G, ready) == 1


def test_shared_prefix_hits_on_the_prefill_side_are_what_the_record_reports() -> None:
    """a and b share a 16-token group prefix (16 in / 2 out each, block 4). a at 0: prefill
    [0, 1], transfer 0.125 + 16/8 → [1, 3.125], decode → done 3.625. b at 4: its first
    (16 − 1) // 4 = 3 full blocks = 12 tokens are cached on the prefill replica (a
    registered them); the decode side takes the KV as sent and reports the same 12.
    b: prefill [4, 5], transfer [5, 7.125], tokens at 7.375 and 7.625."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    spec = dict(input_tokens=16, output_tokens=2, prefix_group=0, prefix_tokens=16)
    res = simulate(_pd(s, s), [RequestSpec(id="a", arrival_s=0.0, **spec), RequestSpec(id="b", arrival_s=4.0, **spec)],
                   progress=_no_runaway)
    r = {x.id: x for x in res.records}
    assert (r["a"].cached_tokens, r["a"].finish_s) == (0, 3.625)
    assert (r["b"].cached_tokens, r["b"].first_token_s, r["b"].finish_s) == (12, 7.375, 7.625)


def test_request_preempted_on_the_decode_side_recomputes_there_and_finishes() -> None:
    """Two transfers at once; decode replica with 6 blocks of 4 tokens. z (1 in / 1 out)
    prefills alone [0, 1]; a, b (8 in / 8 out, group prefix of 8 tokens) prefill together
    [1, 2] and land together at 2 + 0.125 + 8/8 = 3.125. Each holds at most 3 blocks when
    admitted (8 prompt tokens + 1), so both fit (6 blocks); by its last token each needs
    ceil((8 + 8 − 1) / 4) = 4 blocks, 8 > 6: one is preempted at least once, recomputes its
    prompt there (module docstring), and both still finish with all their tokens."""
    s = SchedulerConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=64, max_num_seqs=8)
    d = SchedulerConfig(block_size=4, num_kv_blocks=6, max_num_batched_tokens=64, max_num_seqs=8)
    spec = dict(input_tokens=8, output_tokens=8, prefix_group=0, prefix_tokens=8)
    reqs = [_req("z", 0.0, 1, 1)] + [RequestSpec(id=x, arrival_s=0.0, **spec) for x in "ab"]
    res = simulate(_pd(s, d, max_transfers=2), reqs, progress=_no_runaway)
    assert [(x.id, x.status, x.output_tokens) for x in res.records] == [("z", "ok", 1), ("a", "ok", 8),
                                                                        ("b", "ok", 8)]
    assert res.replica_stats["d-0"]["num_preempted"] >= 1


def test_pools_keep_their_size_within_the_tolerance_band() -> None:
    """The HPA tolerance (0.1) applies per pool: D waiting (1, 1) on target 0.95 → ratio
    1/0.95 = 1.053, within 0.1 of 1 → keep 2 (the bare formula would give ceil(2.105) = 3);
    t=2 waiting (2, 1) → ratio 1.5/0.95 = 1.58 → ceil(3.16) = 4 → +2 (d-2, d-3)."""
    sim = _sim(1, 2, metric="waiting", target=0.95, min_replicas=1, max_replicas=4, cooldown_s=0.0)
    g = _Gauges(sim, "waiting")
    g.set(p_0=1, d_0=1, d_1=1)
    sim.on_scale(1.0)
    assert sim.events == []
    g.set(p_0=1, d_0=2, d_1=1)
    sim.on_scale(2.0)
    assert sim.events == [(2.0, "scale_up", "d-2"), (2.0, "scale_up", "d-3")]
