"""Disaggregated prefill/decode in the simulator: closed-form timing of one request,
link figures, conservation under faults and timeouts, event skipping vs step by step."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servelab import metrics
from servelab.catalog import RequestSpec, get_gpu, get_model
from servelab.errors import ConfigError
from servelab.perf import Deployment, StepBatch, StepModel
from servelab.records import STATUSES
from servelab.sim import (
    AdmissionConfig,
    AffineStepModel,
    AutoscalerConfig,
    ConstantStepModel,
    DisaggConfig,
    SchedulerConfig,
    Fault,
    KVLink,
    ReplicaSpec,
    SimConfig,
    link_for,
    simulate,
    transfer_s,
)


def test_single_request_closed_form_with_the_perf_model() -> None:
    # Llama-3.1-8B bf16: 131,072 B of KV per token. Prefill on an H100 at TP1, decode on
    # an H100 at TP2; InfiniBand NDR, 50 GB/s per GPU (400 Gb/s), 10 µs; min TP = 1.
    model, gpu = get_model("llama-3.1-8b"), get_gpu("h100-sxm")
    pdep = Deployment(model=model, gpu=gpu, tp=1)
    ddep = Deployment(model=model, gpu=gpu, tp=2)
    P = ReplicaSpec(deployment=pdep, name="prefill")
    D = ReplicaSpec(deployment=ddep, name="decode")
    link = link_for("ib-ndr")
    assert (link.bytes_per_s, link.latency_s) == (50e9, 10e-6)
    inp, out = 3000, 4
    x = 10e-6 + 131_072 * inp / 50e9                   # 7.8743 ms
    assert transfer_s(DisaggConfig(link=link), P, D, inp) == pytest.approx(x, rel=1e-12)
    for exact in (False, True):
        res = simulate(SimConfig(replicas=(P, D), disagg=DisaggConfig(link=link), exact=exact),
                       [RequestSpec(id="a", arrival_s=0.0, input_tokens=inp, output_tokens=out)])
        r = res.records[0]
        pm, dm = StepModel(pdep), StepModel(ddep)
        prefill = pm.step_time_s(StepBatch(((inp, 0),), 0, 0))
        first = dm.step_time_s(StepBatch(((1, inp - 1),), 0, 0))   # the last prompt token on D
        ttft = prefill + x + first
        assert r.status == "ok" and r.replica == "decode-0"
        assert r.first_token_s == pytest.approx(ttft, rel=1e-12)
        steps = sum(dm.step_time_s(StepBatch((), 1, inp + j)) for j in range(out - 1))
        assert r.finish_s == pytest.approx(ttft + steps, rel=1e-12)


def test_transfer_scales_with_min_tp_and_nvlink_comes_from_the_catalog() -> None:
    model, gpu = get_model("llama-3.1-8b"), get_gpu("h100-sxm")
    P = ReplicaSpec(deployment=Deployment(model=model, gpu=gpu, tp=2))
    D = ReplicaSpec(deployment=Deployment(model=model, gpu=gpu, tp=4))
    nv = link_for("nvlink", gpu)
    assert nv.bytes_per_s == 450e9                    # H100 SXM: 900 GB/s bidirectional / 2
    d = DisaggConfig(link=nv)
    assert transfer_s(d, P, D, 1000) == pytest.approx(5e-6 + 131_072_000 / (2 * 450e9), rel=1e-12)
    assert link_for("pcie", gpu).bytes_per_s == 64e9  # PCIe Gen5 x16, one direction
    with pytest.raises(ConfigError, match="unknown KV link 'ethernet'; known: nvlink, ib-ndr"):
        link_for("ethernet")
    with pytest.raises(ConfigError, match="two different replica indices"):
        DisaggConfig(prefill=1, decode=1)


def test_transfers_queue_behind_the_concurrency_limit() -> None:
    # 3 requests finish prefill together (one 10 ms step); each transfer takes
    # 1 ms + 100 tokens · 1e6 B / 1e9 B/s = 0.101 s. With max_transfers = 1 they reach the
    # decode replica at 0.111, 0.212, 0.313 s; with 3, all at 0.111 s.
    eng = SchedulerConfig(num_kv_blocks=1000)
    P = ReplicaSpec(scheduler=eng, step_model=ConstantStepModel(step_s=0.01), name="p")
    D = ReplicaSpec(scheduler=eng, step_model=ConstantStepModel(step_s=0.02), name="d")
    reqs = [RequestSpec(id=f"r{i}", arrival_s=0.0, input_tokens=100, output_tokens=1) for i in range(3)]
    link = KVLink(name="x", bytes_per_s=1e9, latency_s=0.001)
    for k, arrivals in ((1, [0.111, 0.212, 0.313]), (3, [0.111] * 3)):
        res = simulate(SimConfig(replicas=(P, D), disagg=DisaggConfig(link=link, max_transfers=k,
                                                                       kv_bytes_per_token=1e6)), reqs)
        # the decode replica takes each as it lands; the one step that emits its only
        # token (the last prompt token) takes 20 ms and the next waits for it
        got = sorted(r.first_token_s for r in res.records)
        if k == 1:
            assert got == pytest.approx([a + 0.02 for a in arrivals], rel=1e-9)
        else:
            # all land at 0.111; as with simultaneous arrivals, the first starts a step at
            # once and the other two join the next one
            assert got == pytest.approx([0.131, 0.151, 0.151], rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 50), seed=st.integers(0, 10_000), pcount=st.integers(1, 2), dcount=st.integers(1, 2),
    blocks=st.integers(60, 300), timeout=st.one_of(st.none(), st.floats(0.05, 3.0)),
    fault=st.one_of(st.none(), st.tuples(st.floats(0, 2), st.integers(0, 3), st.sampled_from(["fail", "retry"]))),
    exact=st.booleans(), max_x=st.integers(1, 3), max_queue=st.one_of(st.none(), st.integers(0, 8)),
    scaler=st.sampled_from([None, "waiting", "running", "kv_usage"]),
)
def test_conservation_with_prefill_decode_pools(n, seed, pcount, dcount, blocks, timeout, fault, exact,
                                                max_x, max_queue, scaler) -> None:
    rng = random.Random(seed)
    t = 0.0
    reqs = []
    for i in range(n):
        t += rng.expovariate(20.0)
        g = rng.choice([-1, 0, 1])
        reqs.append(RequestSpec(id=f"q{i}", arrival_s=t, input_tokens=rng.randint(1, 700),
                                output_tokens=rng.randint(1, 200), prefix_group=g,
                                prefix_tokens=64 if g >= 0 else 0, priority=rng.randint(0, 2)))
    eng = SchedulerConfig(num_kv_blocks=blocks, max_num_seqs=8, max_num_batched_tokens=512)
    P = ReplicaSpec(scheduler=eng, step_model=AffineStepModel(), count=pcount, name="p")
    D = ReplicaSpec(scheduler=eng, step_model=AffineStepModel(), count=dcount, name="d")
    faults = (Fault(at_s=fault[0], replica=fault[1] % (pcount + dcount), in_flight=fault[2]),) if fault else ()
    cfg = SimConfig(replicas=(P, D), exact=exact, faults=faults,
                    disagg=DisaggConfig(link=KVLink(name="x", bytes_per_s=1e9, latency_s=1e-3),
                                        kv_bytes_per_token=1e5, max_transfers=max_x),
                    admission=AdmissionConfig(client_timeout_s=timeout, max_queue=max_queue),
                    autoscaler=None if scaler is None else AutoscalerConfig(
                        metric=scaler, target=0.5 if scaler == "kv_usage" else 1.0, poll_interval_s=0.2,
                        provisioning_delay_s=0.3, cooldown_s=0.2, min_replicas=1, max_replicas=3))
    res = simulate(cfg, reqs)
    assert sorted(r.id for r in res.records) == sorted(q.id for q in reqs)
    # a drained replica is removed once idle (or killed meanwhile)
    gone = {e[2] for e in res.events if e[1] in ("removed", "killed")}
    assert {e[2] for e in res.events if e[1] == "scale_down"} <= gone
    by = {q.id: q for q in reqs}
    for r in res.records:
        assert r.status in STATUSES and r.status != "cancelled", (r.status, r.reason)
        assert r.finish_s is not None and r.finish_s >= r.arrival_s
        if r.status == "ok":
            assert r.output_tokens == by[r.id].output_tokens
            assert r.arrival_s <= r.dispatch_s <= r.start_s <= r.first_token_s <= r.finish_s
            assert r.replica.startswith("d-")
        if r.status == "timed_out":
            assert abs(r.finish_s - (r.arrival_s + timeout)) < 1e-9
    killed = {e[2] for e in res.events if e[1] == "killed"}
    for name, s in res.replica_stats.items():
        if name not in killed:
            assert s["running"] == 0 and s["waiting"] == 0 and s["kv_usage_perc"] == 0.0, name


def test_skip_vs_exact_agree_with_disaggregation() -> None:
    rng = random.Random(5)
    t = 0.0
    reqs = []
    for i in range(1200):
        t += rng.expovariate(12.0)
        reqs.append(RequestSpec(id=f"r{i}", arrival_s=t, input_tokens=rng.randint(200, 3000),
                                output_tokens=rng.randint(20, 400)))
    model, gpu = get_model("llama-3.1-8b"), get_gpu("h100-sxm")
    P = ReplicaSpec(deployment=Deployment(model=model, gpu=gpu), name="p")
    D = ReplicaSpec(deployment=Deployment(model=model, gpu=gpu), name="d")
    out = {}
    for exact in (False, True):
        res = simulate(SimConfig(replicas=(P, D), exact=exact,
                                 disagg=DisaggConfig(link=link_for("ib-ndr"), max_transfers=2)), reqs)
        out[exact] = metrics.summarize(res.records)
    for m in ("ttft_s", "tpot_s", "e2e_s"):
        for p in ("p50", "p95", "p99"):
            assert out[False][m][p] == pytest.approx(out[True][m][p], rel=0.01), (m, p)
    assert out[False]["completed"] == out[True]["completed"] == len(reqs)


def test_disagg_config_errors() -> None:
    eng = SchedulerConfig(num_kv_blocks=100)
    P = ReplicaSpec(scheduler=eng, step_model=ConstantStepModel(step_s=0.01))
    with pytest.raises(ConfigError, match="exactly two replica specs"):
        simulate(SimConfig(replicas=(P, P, P), disagg=DisaggConfig(kv_bytes_per_token=1.0)), [])
    with pytest.raises(ConfigError, match="kv_bytes_per_token is needed"):
        simulate(SimConfig(replicas=(P, P), disagg=DisaggConfig()), [])


def _fixed(inp: int, out: int, duration_s: float = 60.0):
    def at(rate: float) -> list[RequestSpec]:
        rng = random.Random(0)
        t, reqs = 0.0, []
        for i in range(int(rate * duration_s)):
            t += rng.expovariate(rate)
            reqs.append(RequestSpec(id=f"r{i}", arrival_s=t, input_tokens=inp, output_tokens=out))
        return reqs
    return at


def _goodputs(inp: int, tpot_s: float) -> tuple[float, float]:
    from servelab.plan.pd import per_gpu_goodput
    gpu = get_gpu("h100-sxm")
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=gpu)
    agg = SimConfig(replicas=(ReplicaSpec(deployment=dep, count=2),), router="least_outstanding")
    pd = SimConfig(replicas=(ReplicaSpec(deployment=dep, name="p"), ReplicaSpec(deployment=dep, name="d")),
                   router="least_outstanding", disagg=DisaggConfig(link=link_for("nvlink", gpu), max_transfers=4))
    g = [per_gpu_goodput(c, _fixed(inp, 256), ttft_s=2.0, tpot_s=tpot_s, start_rps=10.0) for c in (agg, pd)]
    assert g[0].gpus == g[1].gpus == 2
    return g[0].per_gpu_rps, g[1].per_gpu_rps


def test_distserve_case_disaggregation_raises_per_gpu_goodput_with_long_prompts_tight_tpot() -> None:
    # DistServe (OSDI 2024) / Splitwise (ISCA 2024): with long prompts and a tight TPOT,
    # 1 prefill + 1 decode GPU beat 2 aggregated GPUs in goodput per GPU, because every
    # prefill chunk stalls the aggregated replica's decodes (docs/sim.md, crossover).
    agg, pd = _goodputs(4096, 0.015)
    assert pd > 1.2 * agg


def test_short_prompts_disaggregation_lowers_per_gpu_goodput() -> None:
    # 128-token prompts: prefill stalls are short, the prefill GPU idles; aggregated wins.
    agg, pd = _goodputs(128, 0.015)
    assert agg > 1.2 * pd


def test_prefill_replica_holds_kv_until_the_transfer_ends() -> None:
    # Prefill replica with 10 blocks (160 tokens); two 150-token prompts (10 blocks each)
    # at t = 0. The first prefills in [0, 0.01] and its KV leaves over 1 ms + 150 · 1e6 B /
    # 1e9 B/s = 0.151 s; only then are its blocks free, so the second prefills in
    # [0.161, 0.171] and lands at 0.322. Decode steps take 0.02 s: first tokens at 0.181
    # and 0.342 s.
    P = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=10), step_model=ConstantStepModel(step_s=0.01), name="p")
    D = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=1000), step_model=ConstantStepModel(step_s=0.02), name="d")
    reqs = [RequestSpec(id=f"r{i}", arrival_s=0.0, input_tokens=150, output_tokens=1) for i in range(2)]
    d = DisaggConfig(link=KVLink(name="x", bytes_per_s=1e9, latency_s=0.001), kv_bytes_per_token=1e6)
    for exact in (False, True):
        res = simulate(SimConfig(replicas=(P, D), disagg=d, exact=exact), reqs)
        by = {r.id: r for r in res.records}
        assert by["r0"].first_token_s == pytest.approx(0.181, rel=1e-9)
        assert by["r1"].start_s == pytest.approx(0.161, rel=1e-9)
        assert by["r1"].first_token_s == pytest.approx(0.342, rel=1e-9)
        assert res.replica_stats["p-0"]["kv_usage_perc"] == 0.0


@pytest.mark.parametrize("exact", [False, True])
def test_prefill_and_decode_pools_autoscale_separately(exact: bool) -> None:
    # 10 ms steps on both sides; the decode replica runs one request at a time
    # (max_num_seqs 1), each 150 tokens = 1.5 s. Transfers: 10 tokens · 1e3 B / 1e9 B/s
    # = 10 µs, up to 4 at once. HPA rule on `waiting`, target 1, poll every 1 s, ready
    # 0.5 s after the decision, cooldown 3 s, 1..3 replicas per pool.
    #   r0 prefills in [0, 0.01], lands at 0.01001, decodes until 1.51001; r1..r3 (arriving
    #   during that first step) prefill in [0.01, 0.02] and wait on d-0 from 0.02001.
    #   Poll 1.0: prefill pool waiting 0 -> 1 replica (no change); decode pool waiting 3 ->
    #   ceil(1·3/1) = 3: d-1, d-2 start, ready at 1.5.
    #   r4 at 1.6: prefill [1.6, 1.61], lands 1.61001 on d-1 (fewest outstanding), first
    #   token 1.62001, done 1.63001. d-0 serves r1, r2, r3 back to back: r3 done at 6.01001.
    #   Scale-down goes to the highest recommendation of the polls in the last 3 s (the
    #   HPA stabilization window); the prefill pool's recommendation stays 1 throughout.
    #   Polls 2.0, 3.0: decode mean waiting 2/3 -> ceil(3 * 2/3) = 2, window high 3: keep 3.
    #   Poll 4.0: d-0 has r2 running and r3 waiting -> mean 1/3 -> 1; window (1, 4] holds
    #   2, 2, 1 -> 2: drain d-2 (idle: removed at once).
    #   Poll 5.0: r3 running, none waiting -> 0 -> min 1; window (2, 5] holds 2, 1, 1 -> keep 2.
    #   Poll 6.0: again 1; window (3, 6] holds 1, 1, 1 -> drain d-1 (idle: removed).
    eng_p = SchedulerConfig(num_kv_blocks=1000)
    eng_d = SchedulerConfig(num_kv_blocks=1000, max_num_seqs=1, max_num_batched_tokens=16)
    P = ReplicaSpec(scheduler=eng_p, step_model=ConstantStepModel(step_s=0.01), name="p")
    D = ReplicaSpec(scheduler=eng_d, step_model=ConstantStepModel(step_s=0.01), name="d")
    reqs = [RequestSpec(id=f"r{i}", arrival_s=0.001 * i, input_tokens=10, output_tokens=150) for i in range(4)]
    reqs.append(RequestSpec(id="r4", arrival_s=1.6, input_tokens=10, output_tokens=2))
    auto = AutoscalerConfig(metric="waiting", target=1.0, poll_interval_s=1.0, provisioning_delay_s=0.5,
                            cooldown_s=3.0, min_replicas=1, max_replicas=3)
    cfg = SimConfig(replicas=(P, D), exact=exact, autoscaler=auto,
                    disagg=DisaggConfig(link=KVLink(name="x", bytes_per_s=1e9, latency_s=0.0),
                                        kv_bytes_per_token=1e3, max_transfers=4))
    res = simulate(cfg, reqs)
    assert [(round(t, 9), k, n) for t, k, n in res.events] == [
        (1.0, "scale_up", "d-1"), (1.0, "scale_up", "d-2"), (1.5, "ready", "d-1"), (1.5, "ready", "d-2"),
        (4.0, "scale_down", "d-2"), (4.0, "removed", "d-2"), (6.0, "scale_down", "d-1"),
        (6.0, "removed", "d-1")]
    by = {r.id: r for r in res.records}
    assert all(r.status == "ok" for r in res.records)
    assert by["r4"].replica == "d-1"
    assert (by["r4"].first_token_s, by["r4"].finish_s) == (pytest.approx(1.62001), pytest.approx(1.63001))
    assert [by[f"r{i}"].finish_s for i in range(4)] == pytest.approx([1.51001, 3.01001, 4.51001, 6.01001])
    # ready replicas of both pools in the time series (sampled every second, after the poll
    # at the same time): 2, then 4 from 1.5 s, 3 from 4.0 s, 2 from 6.0 s
    ts = res.timeseries
    assert [n for t, n in zip(ts["t_s"], ts["replicas"]) if t in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)] == \
        [2, 4, 4, 3, 3, 2]
    with pytest.raises(ConfigError, match="min_replicas must be >= 1"):
        simulate(SimConfig(replicas=(P, D), autoscaler=AutoscalerConfig(min_replicas=0),
                           disagg=DisaggConfig(kv_bytes_per_token=1e3)), reqs)
