"""Step-time model: exact decode affinity, monotonicity, roofline floor, anchors."""

import math

import pytest
from hypothesis import given, settings, strategies as st

from servelab.catalog import get_gpu, get_model
from servelab.perf import Deployment, StepBatch, StepModel
from servelab.perf.answers import decode_point, offline_throughput, ridge_point, ttft_s
from servelab.perf.memory import memory_budget
from servelab.perf.roofline import distinct_experts

CASES = {
    "8b-h100-bf16": dict(model="llama-3.1-8b", gpu="h100-sxm"),
    "70b-h100-tp4-fp8": dict(model="llama-3.1-70b", gpu="h100-sxm", tp=4, weight_dtype="fp8", kv_dtype="fp8"),
    "70b-a100-tp4-pp2": dict(model="llama-3.1-70b", gpu="a100-80g", tp=4, pp=2),
    "mixtral-h100-tp2-ep2": dict(model="mixtral-8x7b", gpu="h100-sxm", tp=2, ep=2),
    "dsv3-h200-tp8-fp8": dict(model="deepseek-v3", gpu="h200", tp=8, weight_dtype="fp8"),
    "8b-l40s-tp2-int4": dict(model="llama-3.1-8b", gpu="l40s", tp=2, weight_dtype="int4"),
}
_MODELS: dict[str, StepModel] = {}


def model_for(key: str) -> StepModel:
    if key not in _MODELS:
        kw = dict(CASES[key])
        _MODELS[key] = StepModel(Deployment(model=get_model(kw.pop("model")), gpu=get_gpu(kw.pop("gpu")), **kw))
    return _MODELS[key]


cases = st.sampled_from(sorted(CASES))


@settings(max_examples=60, deadline=None)
@given(cases, st.integers(1, 2048), st.integers(0, 200_000), st.integers(0, 200_000))
def test_decode_step_is_exactly_affine_in_context_sum(key, b, c1, c2):
    sm = model_for(key)
    t0, t1 = sm.decode_affine(b)
    for c in (c1, c2, b * c1):
        batch = StepBatch(num_decode=b, decode_context_sum=c)
        fast = sm.step_time_s(batch)
        general = sm._general_time(batch)       # evaluates every operator's roofline afresh
        assert fast == t0 + t1 * c
        assert general == pytest.approx(fast, rel=1e-12, abs=1e-15)


@settings(max_examples=60, deadline=None)
@given(cases, st.integers(1, 1024), st.integers(0, 16), st.integers(1, 100_000), st.integers(0, 50_000))
def test_more_batch_or_context_never_faster(key, b, extra_b, ctx, extra_ctx):
    sm = model_for(key)
    base = sm.step_time_s(StepBatch(num_decode=b, decode_context_sum=ctx))
    assert sm.step_time_s(StepBatch(num_decode=b + extra_b, decode_context_sum=ctx)) >= base
    assert sm.step_time_s(StepBatch(num_decode=b, decode_context_sum=ctx + extra_ctx)) >= base
    # prefill: a longer chunk, or the same chunk after more context, is never faster
    p = sm.step_time_s(StepBatch(prefill_chunks=((b, ctx),)))
    assert sm.step_time_s(StepBatch(prefill_chunks=((b + extra_b, ctx),))) >= p
    assert sm.step_time_s(StepBatch(prefill_chunks=((b, ctx + extra_ctx),))) >= p
    # adding decode sequences to a prefill step is never faster
    assert sm.step_time_s(StepBatch(prefill_chunks=((b, ctx),), num_decode=extra_b,
                                    decode_context_sum=extra_b * ctx)) >= p


def _floor_s(model_name, gpu_name, tp, pp, peak_dtype, weight_bytes_per_elem, n_tokens, moe_active=False):
    """Independent roofline floor: linear-layer FLOPs over peak, linear weights over bandwidth.

    FLOPs: 2 per weight per token, only for the decoder's q/k/v/o and MLP weights (the
    model counts more: attention, LM head). Bytes: those weights read once (per GPU share).
    """
    m, g = get_model(model_name), get_gpu(gpu_name)
    h, d = m.hidden_size, m.head_dim
    attn = h * d * (2 * m.num_attention_heads + 2 * m.num_kv_heads)
    if m.moe is None:
        mlp_active = mlp_all = 3 * h * m.intermediate_size
    else:
        mlp_all = m.moe.num_experts * 3 * h * m.moe.expert_intermediate_size
        mlp_active = m.moe.experts_per_token * 3 * h * m.moe.expert_intermediate_size
    flops = 2 * n_tokens * m.num_layers * (attn + mlp_active) / (tp * pp)
    touched = mlp_active if moe_active else mlp_all
    weight_bytes = m.num_layers * (attn + touched) * weight_bytes_per_elem / (tp * pp)
    # the pp stages of one step run one after another: the floor is per stage times pp
    return flops * pp / g.peak_flops[peak_dtype], weight_bytes * pp / g.hbm_bytes_per_s


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4096), st.integers(0, 4096))
def test_no_step_beats_the_roofline_floor_dense(n, ctx):
    for key, (name, gpu, tp, pp, dt, wb) in {
        "8b-h100-bf16": ("llama-3.1-8b", "h100-sxm", 1, 1, "bf16", 2),
        "70b-h100-tp4-fp8": ("llama-3.1-70b", "h100-sxm", 4, 1, "fp8", 1),
        "70b-a100-tp4-pp2": ("llama-3.1-70b", "a100-80g", 4, 2, "bf16", 2),
    }.items():
        sm = model_for(key)
        compute_floor, memory_floor = _floor_s(name, gpu, tp, pp, dt, wb, n)
        decode = sm.step_time_s(StepBatch(num_decode=n, decode_context_sum=n * ctx))
        prefill = sm.step_time_s(StepBatch(prefill_chunks=((n, ctx),)))
        for t in (decode, prefill):
            assert t >= compute_floor
            assert t >= memory_floor


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4096))
def test_no_step_beats_the_roofline_floor_moe(n):
    sm = model_for("mixtral-h100-tp2-ep2")
    compute_floor, _ = _floor_s("mixtral-8x7b", "h100-sxm", 2, 1, "bf16", 2, n)
    # at least the k active experts' weights (and attention) must be read
    _, active_memory_floor = _floor_s("mixtral-8x7b", "h100-sxm", 2, 1, "bf16", 2, n, moe_active=True)
    t = sm.step_time_s(StepBatch(num_decode=n, decode_context_sum=n * 100))
    assert t >= compute_floor and t >= active_memory_floor


def test_decode_batch1_is_weight_read_time_llama_8b():
    sm = model_for("8b-h100-bf16")
    e = sm.dep.efficiency
    t = sm.step_time_s(StepBatch(num_decode=1, decode_context_sum=1000))
    # every weight but the embedding table (only one row of it is gathered), at achieved bandwidth
    weights_s = 2 * (8_030_261_248 - 128_256 * 4096) / (3.35e12 * e.memory)
    assert weights_s <= t <= weights_s * 1.05 + e.step_overhead_s


def test_distinct_experts_expectation():
    assert distinct_experts(8, 2, 1) == pytest.approx(2.0)
    assert distinct_experts(8, 2, 2) == pytest.approx(8 * (1 - 0.75**2))      # 3.5
    assert distinct_experts(256, 8, 10_000) == pytest.approx(256.0)
    assert distinct_experts(8, 2, 0) == 0.0


def test_tp_adds_communication_and_pp_keeps_latency():
    one = StepModel(Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm")))
    tp2 = StepModel(Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"), tp=2))
    b = StepBatch(num_decode=1, decode_context_sum=100)
    # TP2 halves the weight read, adds 64 all-reduces of latency: faster than TP1 but not 2x
    assert one.step_time_s(b) / 2 < tp2.step_time_s(b) < one.step_time_s(b)
    assert tp2.coeffs.comm_fixed_s == pytest.approx(64 * tp2.dep.efficiency.comm_latency_s)
    pp2 = StepModel(Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"), pp=2))
    assert pp2.step_time_s(b) >= one.step_time_s(b)     # a lone step crosses both stages


def test_answers_llama_8b():
    sm = model_for("8b-h100-bf16")
    # 2048-token prompt: ≥ 2·8.03e9·2048 FLOPs at bf16 peak
    assert ttft_s(sm, 2048) > 2 * 8.03e9 * 2048 / 989.4e12
    # chunked: a 20k prompt costs more than 2.4 × an 8k one (attention grows quadratically)
    assert ttft_s(sm, 20_000) > 2.4 * ttft_s(sm, 8192)
    p1, p64 = decode_point(sm, 1, 2048), decode_point(sm, 64, 2048)
    assert p64.tokens_per_s > 10 * p1.tokens_per_s and p1.bound == "memory"
    r = ridge_point(sm)
    # Per layer: W = 218,103,808 bf16 weights; bf16 activations in+out of the four GEMMs
    # (10240 + 8192 + 32768 + 18432)·2 = 139,264 B/token; norms and SiLU·mul
    # 16·4096 + 6·14336 = 151,552 B/token. Compute-bound when
    # 2·B·W/P ≥ (2·W + B·290,816)/BW  ⇔  B ≥ (2W/BW) / (2W/P − 290,816/BW).
    e = sm.dep.efficiency
    p, bw, w = 989.4e12 * e.compute, 3.35e12 * e.memory, 218_103_808
    expected = (2 * w / bw) / (2 * w / p - 290_816 / bw)
    assert r == math.ceil(expected)
    # the naive weights-only ridge (P/BW FLOP per byte) is lower: activations add traffic
    assert r > p / bw


def test_offline_throughput_limits():
    sm = model_for("8b-h100-bf16")
    budget = memory_budget(sm.dep)
    short = offline_throughput(sm, budget, 128, 128)
    assert short.concurrency == sm.dep.max_num_seqs and short.limited_by == "max_num_seqs"
    long = offline_throughput(sm, budget, 20_000, 2000)
    assert long.limited_by == "kv_cache" and long.concurrency == budget.max_concurrency(22_000)
    assert 0 < long.output_tokens_per_s < short.output_tokens_per_s
    # never above what the decode steps alone could deliver at that batch
    assert short.output_tokens_per_s <= decode_point(sm, 256, 192).tokens_per_s * 1.01


def test_communication_coefficients_hand_computed():
    e = model_for("8b-h100-bf16").dep.efficiency
    link = 450e9 * e.comm                      # H100 NVLink: 450 GB/s per direction
    tp2 = StepModel(Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"), tp=2))
    # 2 all-reduces × 32 layers of one bf16 hidden state (4096·2 B) per token; ring factor 2(n−1)/n = 1
    assert tp2.coeffs.comm_s_per_token == pytest.approx(64 * 8192 / link, rel=1e-12)
    tp8 = StepModel(Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"), tp=8))
    assert tp8.coeffs.comm_s_per_token == pytest.approx(64 * 1.75 * 8192 / link, rel=1e-12)
    # Mixtral TP2 EP2: attention all-reduce + dispatch and combine all-to-alls per layer;
    # each GPU sends (N/2)·k·h·2·(1/2) bytes per all-to-all = 0.5·h·2 per token for k = 2
    mx = model_for("mixtral-h100-tp2-ep2")
    assert mx.coeffs.comm_fixed_s == pytest.approx(32 * 3 * e.comm_latency_s)
    assert mx.coeffs.comm_s_per_token == pytest.approx(32 * (8192 + 2 * 0.5 * 8192) / link, rel=1e-12)
    # PP across nodes: TP8 PP2 puts the stage boundary on a 50 GB/s NIC
    pp = StepModel(Deployment(model=get_model("llama-3.1-405b"), gpu=get_gpu("h100-sxm"), tp=8, pp=2,
                              weight_dtype="fp8"))
    hidden_bytes = 16384 * 2
    ar = 2 * 126 * 1.75 * hidden_bytes / link
    assert pp.coeffs.comm_s_per_token == pytest.approx(ar + hidden_bytes / (50e9 * e.comm), rel=1e-12)


def test_weight_only_notes_for_missing_tensor_cores():
    from servelab.perf import validate_deployment
    h100 = dict(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))
    assert any("W4A16" in n for n in validate_deployment(Deployment(weight_dtype="int4", **h100)))
    assert any("fp4" in n and "weight-only" in n
               for n in validate_deployment(Deployment(weight_dtype="fp4", **h100)))
    assert validate_deployment(Deployment(weight_dtype="fp8", **h100)) == ()
    # weight-only fp8 on A100: same bytes as fp8, bf16 compute → slower prefill than bf16 bytes suggest
    a100 = StepModel(Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("a100-80g"), weight_dtype="fp8"))
    assert a100.coeffs.compute_dtype == "bf16"
    assert a100.coeffs.gemm_flops_per_s == pytest.approx(312e12 * a100.dep.efficiency.compute)
