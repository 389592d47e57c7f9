"""Hand-checked tests of the planner's pure parts: peak rate, sizing, packing, cost,
Pareto front, capacity search, candidate screening."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servelab.plan.candidates import Candidate, enumerate_candidates, screen_candidate
from servelab.plan.capacity import search_capacity
from servelab.plan.characterize import peak_rate, sliding_window_rates
from servelab.scenario.cost import PRICE_TIERS, fleet_cost, pack_replicas
from servelab.plan.pareto import pareto_front
from servelab.plan.sizing import size_replicas


# ---- step 1: peak rate -------------------------------------------------------------

def test_constant_arrivals_peak_equals_mean():
    arrivals = np.arange(0, 100, 0.1)           # 10 req/s for 100 s
    assert peak_rate(arrivals, window_s=10, horizon_s=100) == pytest.approx(10.0)


def test_burst_raises_peak():
    # 5 req/s for 100 s plus a burst of 100 extra requests inside [50, 52): a 10 s window
    # covering the burst holds 50 + 100 = 150 requests -> 15 req/s.
    base = np.arange(0, 100, 0.2)
    burst = np.linspace(50, 51.99, 100)
    rates = sliding_window_rates(np.concatenate([base, burst]), window_s=10, horizon_s=100)
    assert rates.max() == pytest.approx(15.0)
    assert rates.min() == pytest.approx(5.0)


def test_poisson_peak_close_to_normal_approximation():
    # 20 req/s Poisson, 10 s windows: count ~ N(200, 14.1^2); p99 ~ 200 + 2.33*14.1 = 233.
    rng = np.random.default_rng(1)
    arrivals = np.cumsum(rng.exponential(1 / 20, size=20 * 3600))
    p = peak_rate(arrivals, window_s=10, horizon_s=float(arrivals[-1]))
    assert 22.0 < p < 24.6


def test_characterize_by_hand():
    from servelab.plan.characterize import characterize
    from servelab.catalog import SLOTarget

    def req(t, i, o, group=-1, prefix=0):
        return SimpleNamespace(arrival_s=t, input_tokens=i, output_tokens=o, prefix_group=group,
                               prefix_tokens=prefix)
    reqs = [req(0.0, 100, 10, 0, 50), req(1.0, 300, 30), req(2.0, 200, 20, 1, 50), req(3.0, 400, 40)]
    p = characterize(reqs, workload_name="w", duration_s=4.0, window_s=2.0,
                     slo_targets=[SLOTarget(metric="ttft", percentile=95, threshold_s=2.0)])
    assert p.mean_rate_rps == 1.0                      # 4 requests in 4 s
    assert p.input_tokens.mean == 250 and p.input_tokens.p50 == 250 and p.input_tokens.max == 400
    assert p.context_tokens.mean == 275                # (110 + 330 + 220 + 440) / 4
    assert p.prefix_request_fraction == 0.5            # 2 of 4 requests
    assert p.prefix_token_fraction == 0.1              # 100 shared of 1000 input tokens
    assert p.interarrival_cv == 0.0                    # evenly spaced
    assert p.slo[0]["key"] == "ttft_p95"


# ---- step 10: sizing ---------------------------------------------------------------

def test_replicas_by_hand():
    # peak 23.3 req/s, 5 req/s per replica, headroom 1.1: 23.3/5*1.1 = 5.126 -> 6 active, +1 spare.
    s = size_replicas(peak_rate_rps=23.3, capacity_per_replica_rps=5.0, headroom=1.1, spares=1)
    assert (s.active_replicas, s.replicas) == (6, 7)


def test_exact_ratio_does_not_round_up():
    s = size_replicas(peak_rate_rps=20.0, capacity_per_replica_rps=10.0, headroom=1.0, spares=0)
    assert s.replicas == 2


def test_knee_warning():
    # peak 9 req/s, saturation 10 req/s per replica, one active replica: 90 % > 80 %.
    s = size_replicas(peak_rate_rps=9.0, capacity_per_replica_rps=9.5, headroom=1.0,
                      spares=1, saturation_rate_rps=10.0)
    assert s.utilization == pytest.approx(0.9)
    assert any("knee" in w for w in s.warnings)
    calm = size_replicas(peak_rate_rps=5.0, capacity_per_replica_rps=9.5, headroom=1.0,
                         spares=1, saturation_rate_rps=10.0)
    assert not any("knee" in w for w in calm.warnings)


@settings(max_examples=60, deadline=None)
@given(peak=st.floats(0.1, 500), cap=st.floats(0.1, 100), cap2=st.floats(0.1, 100))
def test_more_capacity_never_needs_more_replicas(peak, cap, cap2):
    lo, hi = sorted((cap, cap2))
    a = size_replicas(peak_rate_rps=peak, capacity_per_replica_rps=lo)
    b = size_replicas(peak_rate_rps=peak, capacity_per_replica_rps=hi)
    assert b.replicas <= a.replicas
    assert a.active_replicas * lo * 1.0 >= peak - 1e-6   # active replicas cover the peak


# ---- step 11: packing and cost -----------------------------------------------------

def test_tp2_packs_four_per_8gpu_node():
    p = pack_replicas(replicas=5, gpus_per_replica=2, node_sizes=(8,))
    # 4 replicas on one 8-GPU node, the 5th needs a second 8-GPU node: 16 billed, 10 used.
    assert p.nodes == ((8, 2),)
    assert (p.billed_gpus, p.used_gpus, p.idle_gpus) == (16, 10, 6)


def test_mixed_node_sizes_cover_remainder_with_smallest_node():
    p = pack_replicas(replicas=5, gpus_per_replica=2, node_sizes=(1, 2, 4, 8))
    assert p.nodes == ((8, 1), (2, 1))
    assert p.billed_gpus == 10
    p3 = pack_replicas(replicas=3, gpus_per_replica=1, node_sizes=(1, 2, 4, 8))
    assert p3.nodes == ((2, 1), (1, 1)) and p3.billed_gpus == 3
    p4 = pack_replicas(replicas=3, gpus_per_replica=2, node_sizes=(2, 8))
    assert p4.nodes == ((2, 3),) and p4.billed_gpus == 6
    p5 = pack_replicas(replicas=3, gpus_per_replica=1, node_sizes=(4, 8))
    assert p5.nodes == ((4, 1),) and p5.billed_gpus == 4   # no node smaller than 4: one idles


@settings(max_examples=80, deadline=None)
@given(replicas=st.integers(0, 40), g=st.sampled_from([1, 2, 4, 8, 16]),
       sizes=st.sets(st.sampled_from([1, 2, 4, 8]), min_size=1))
def test_packing_holds_every_replica(replicas, g, sizes):
    p = pack_replicas(replicas=replicas, gpus_per_replica=g, node_sizes=tuple(sizes))
    s_max = max(sizes)
    held = sum(c * (s // g) for s, c in p.nodes) if g <= s_max else sum(c for _, c in p.nodes) // -(-g // s_max)
    assert held >= replicas
    assert p.billed_gpus >= p.used_gpus
    if g in sizes:
        assert p.billed_gpus == p.used_gpus     # powers of two and a node the size of a replica


def test_replica_larger_than_a_node_takes_whole_nodes():
    p = pack_replicas(replicas=3, gpus_per_replica=16, node_sizes=(8,))
    assert p.nodes == ((8, 6),) and p.billed_gpus == 48


def test_cost_arithmetic_by_hand():
    # 2 x 8-GPU nodes at $4.76/GPU-h = 16 * 4.76 = $76.16/h. 1000 output tok/s = 3.6M tok/h:
    # $76.16 / 3.6 = $21.156 per 1M tokens. Month 730.5 h -> $55,634.88 on demand.
    p = pack_replicas(replicas=5, gpus_per_replica=2, node_sizes=(8,))
    c = fleet_cost(packing=p, price_per_gpu_hour_usd=4.76, output_tokens_per_s=1000.0)
    assert c.cost_per_hour_usd == pytest.approx(76.16)
    assert c.cost_per_million_output_tokens_usd == pytest.approx(21.1556, rel=1e-4)
    assert c.monthly_usd["on_demand"] == pytest.approx(55634.88)
    assert c.monthly_usd["reserved_1y"] == pytest.approx(55634.88 * 0.63)
    assert c.monthly_usd["reserved_3y"] == pytest.approx(55634.88 * 0.45)
    assert c.monthly_usd["spot"] == pytest.approx(55634.88 * 0.48)
    assert all(t.source for t in PRICE_TIERS)


# ---- step 13: Pareto ---------------------------------------------------------------

def test_pareto_front_by_hand():
    pts = [(10, 5), (8, 6), (12, 2), (9, 7), (8, 6.5), (20, 2)]
    # (9,7) dominated by (8,6); (8,6.5) by (8,6); (20,2) by (12,2).
    assert pareto_front(pts) == [1, 0, 2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=25))
def test_pareto_members_are_not_dominated(pts):
    front = set(pareto_front(pts))
    for i, (x, y) in enumerate(pts):
        dominated = any(a <= x and b <= y and (a, b) != (x, y) for a, b in pts)
        assert (i in front) == (not dominated)


# ---- step 9: capacity search -------------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(true_cap=st.floats(0.3, 400), start=st.floats(1, 300))
def test_search_brackets_a_threshold(true_cap, start):
    r = search_capacity(lambda rate: rate <= true_cap, start_rps=start, min_rps=0.05,
                        max_rps=1e4, rel_tol=0.05)
    assert r.capacity_rps <= true_cap
    assert r.capacity_rps >= true_cap / 1.05 - 1e-9
    assert r.upper_rps > true_cap


def test_search_reports_no_capacity():
    r = search_capacity(lambda rate: False, start_rps=10, min_rps=0.5)
    assert r.capacity_rps == 0 and not r.found
    assert [e[0] for e in r.evaluations] == [10, 5, 2.5, 1.25, 0.625]


@settings(max_examples=60, deadline=None)
@given(cap_tight=st.floats(0.3, 100), extra=st.floats(0, 100), start=st.floats(1, 200),
       noise_seed=st.integers(0, 1000))
def test_tighter_slo_never_gives_more_capacity(cap_tight, extra, start, noise_seed):
    # A noisy, non-monotone pass function: the run at rate r "passes" the tight SLO on a
    # pseudo-random set; the loose SLO passes whenever the tight one does (and more).
    def tight(r):
        return r <= cap_tight and (hash((noise_seed, round(r, 9))) % 5 != 0)

    def loose(r):
        return tight(r) or r <= cap_tight + extra

    a = search_capacity(tight, start_rps=start, min_rps=0.05)
    b = search_capacity(loose, start_rps=start, min_rps=0.05)
    assert a.capacity_rps <= b.capacity_rps


# ---- step 4: candidates ------------------------------------------------------------

def _model(**kw):
    base = dict(num_attention_heads=32, num_kv_heads=8, num_layers=32, moe=None)
    base.update(kw)
    return SimpleNamespace(**base)


def _gpu(name="g", flops=("bf16", "fp8"), per_node=8, price=2.0, link=450e9):
    return SimpleNamespace(name=name, peak_flops={k: 1e15 for k in flops}, gpus_per_node=per_node,
                           price_per_hour_usd=price, interconnect_bytes_per_s=link)


def test_enumeration_is_the_full_cross_product():
    gpus = [_gpu("a"), _gpu("b")]
    cands = enumerate_candidates(model=_model(), gpus=gpus, weight_dtypes=["bf16", "fp8"],
                                 kv_dtypes=["bf16", "fp8"], tps=(1, 2, 4))
    assert len(cands) == 2 * 3 * 2 * 2
    moe = enumerate_candidates(model=_model(moe=object()), gpus=gpus[:1], weight_dtypes=["bf16"],
                               kv_dtypes=["bf16"], tps=(1, 2))
    assert [c.key for c in moe] == ["a/tp1/bf16/kv-bf16", "a/tp2/bf16/kv-bf16", "a/tp2/ep2/bf16/kv-bf16"]


def test_fp8_on_a_gpu_without_fp8_tensor_cores_is_flagged_weight_only():
    s = screen_candidate(Candidate(gpu="a100", weight_dtype="fp8"), model=_model(),
                         gpu=_gpu("a100", flops=("bf16", "int8")))
    assert s.feasible and any("weight-only" in n for n in s.notes)


@pytest.mark.parametrize("cand,gpu,fragment", [
    (Candidate(gpu="g", tp=8), _gpu(per_node=4), "exceeds the 4 GPUs"),
    (Candidate(gpu="g", tp=3), _gpu(), "not divisible by TP3"),
    (Candidate(gpu="g"), _gpu(flops=()), "no dense tensor-core rates"),
    (Candidate(gpu="g"), _gpu(price=0.0), "no on-demand price"),
])
def test_infeasible_candidates_carry_a_reason(cand, gpu, fragment):
    s = screen_candidate(cand, model=_model(), gpu=gpu)
    assert not s.feasible and fragment in s.reason


def test_kv_heads_replicate_when_tp_exceeds_them():
    assert screen_candidate(Candidate(gpu="g", tp=8), model=_model(num_kv_heads=4), gpu=_gpu()).feasible
    bad = screen_candidate(Candidate(gpu="g", tp=4), model=_model(num_kv_heads=6, num_attention_heads=48),
                           gpu=_gpu())
    assert not bad.feasible and "KV heads" in bad.reason


def test_quantized_candidate_flagged_for_quality_evidence():
    s = screen_candidate(Candidate(gpu="g", weight_dtype="fp8", kv_dtype="fp8"), model=_model(), gpu=_gpu())
    assert s.feasible and any("quality evidence" in n for n in s.notes)


def test_pipeline_parallel_added_only_when_weights_outgrow_a_node():
    from servelab.plan.planner import _auto_pps
    node = SimpleNamespace(memory_bytes=80e9, gpus_per_node=8)      # 8 x 80 GB; 90 % = 576 GB
    assert _auto_pps({"bf16": 811.7e9}, [node]) == (1, 2)           # Llama-3.1-405B in bf16
    assert _auto_pps({"bf16": 811.7e9, "fp8": 410.1e9}, [node]) == (1,)   # fp8 fits one node
