"""Roofline step times and memory budgets worked out by hand on a toy model and GPU.

The toy (2 layers, h 1024, 8 heads of 128, 2 KV heads, gated MLP 2048, vocabulary 1000,
untied) on a GPU with round peaks (1e14 FLOP/s bf16, 1e12 B/s, 100 GB/s link) and every
efficiency 1, so each figure below is an integer count of FLOPs or bytes over a round
rate, written from the formulas in the docstrings of perf.roofline, perf.step and
perf.memory (and checked in the comments). Fast: part of the mutation test selection.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from servelab.catalog.gpus import GPU
from servelab.catalog.models import MoESpec, ModelSpec
from servelab.errors import ConfigError
from servelab.perf import Deployment, Efficiency, StepBatch, StepModel, memory_budget
from servelab.perf.answers import decode_point, offline_throughput, ridge_point, step_bound, ttft_s
from servelab.perf.roofline import build_coefficients, distinct_experts
from servelab.perf.memory import CUDA_GRAPH_BYTES, FRAMEWORK_OVERHEAD_BYTES, NCCL_BUFFER_BYTES
from servelab.units import GiB

H, HEADS, KV, D, I, V, L = 1024, 8, 2, 128, 2048, 1000, 2
P, BW, LINK = 1e14, 1e12, 100e9

TOY = ModelSpec(name="toy", family="llama", num_layers=L, hidden_size=H, num_attention_heads=HEADS,
                num_kv_heads=KV, head_dim=D, intermediate_size=I, vocab_size=V)
GPU_T = GPU(name="toygpu", display_name="Toy GPU", vendor="nvidia", architecture="hopper",
            memory_bytes=10e9, hbm_bytes_per_s=BW, peak_flops={"bf16": P, "fp8": 2 * P},
            interconnect_bytes_per_s=LINK, pcie_bytes_per_s=32e9, gpus_per_node=8)
UNIT = Efficiency(compute=1.0, memory=1.0, attention_compute=1.0, attention_memory=1.0, comm=1.0,
                  comm_latency_s=0.0, step_overhead_s=0.0, seq_overhead_s=0.0, expert_compute=1.0)


def dep(**kw) -> Deployment:
    base = dict(model=TOY, gpu=GPU_T, efficiency=UNIT)
    base.update(kw)
    return Deployment(**base)


# Per layer, TP 1 (weights W, activation bytes per token a = (in + out)·2):
#   qkv   W = 1024·(1024 + 2·256) = 1_572_864   a = (1024 + 1536)·2 = 5120
#   o     W = 1024·1024           = 1_048_576   a = (1024 + 1024)·2 = 4096
#   gate_up W = 2·1024·2048       = 4_194_304   a = (1024 + 4096)·2 = 10240
#   down  W = 1024·2048           = 2_097_152   a = (2048 + 1024)·2 = 6144
#   elementwise (no FLOPs)                      a = 16·1024 + 6·2048 = 28672
OPS = [(1_572_864, 5120), (1_048_576, 4096), (4_194_304, 10240), (2_097_152, 6144), (0, 28672)]
W_LAYER = 8_912_896
LM_W, LM_ACT = H * V, H * 2 + V * 4          # bf16 weights; input bf16, fp32 logits per row
KV_CTX = 2 * KV * D * 2                       # 1024 bytes per token per layer
F_CTX = 4 * HEADS * D                         # 4096 FLOPs per context token per layer


def hand_op(w: int, a: int, n: int, p: float = P, bw: float = BW, wb: float = 2.0) -> float:
    return max(2 * w * n / p, (w * wb + a * n) / bw)


def hand_linear(n: int) -> float:
    return L * sum(hand_op(w, a, n) for w, a in OPS) + n * 2 * H * 2 / BW     # + embedding gather


def test_weights_per_layer_add_up():
    assert sum(w for w, _ in OPS) == W_LAYER == (H * (HEADS * D + 2 * KV * D) + HEADS * D * H + 3 * H * I)


def test_decode_batch_one_is_memory_bound_weight_and_kv_read():
    sm = StepModel(dep())
    # every operator memory-bound at N = 1: bytes / BW
    linear = (L * (2 * W_LAYER + 5120 + 4096 + 10240 + 6144 + 28672) + 4096) / BW
    lm = (2 * LM_W + LM_ACT) / BW
    assert linear == pytest.approx(35_764_224e-12, rel=1e-15)
    t0, t1 = sm.decode_affine(1)
    assert t0 == pytest.approx(linear + lm, rel=1e-12)
    assert t1 == pytest.approx(L * KV_CTX / BW, rel=1e-12)                # KV read, not FLOPs
    t = sm.step_time_s(StepBatch(num_decode=1, decode_context_sum=1000))
    assert t == pytest.approx(linear + lm + 1000 * L * KV_CTX / BW, rel=1e-12)
    assert sm.decode_affine(0) == (0.0, 0.0)


@pytest.mark.parametrize("b,ctx", [(1, 0), (16, 512), (200, 3000), (1000, 100)])
def test_decode_steps_against_the_hand_roofline(b, ctx):
    sm = StepModel(dep())
    c = b * ctx
    attn = L * max(c * F_CTX / P, c * KV_CTX / BW)
    lm = hand_op(LM_W, LM_ACT, b)
    expected = hand_linear(b) + lm + attn
    assert sm.step_time_s(StepBatch(num_decode=b, decode_context_sum=c)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("chunks,b,ctx", [(((512, 0),), 0, 0), (((100, 300), (7, 0)), 3, 900),
                                          (((4096, 1024),), 10, 5000)])
def test_prefill_steps_against_the_hand_roofline(chunks, b, ctx):
    sm = StepModel(dep())
    n = sum(k for k, _ in chunks) + b
    rows = len(chunks) + b
    pairs = sum(k * c + k * (k + 1) / 2 for k, c in chunks)           # causal: half the square
    kv = sum(k + c for k, c in chunks) + ctx
    attn = L * max((pairs * F_CTX + ctx * F_CTX) / P, kv * KV_CTX / BW)
    expected = hand_linear(n) + hand_op(LM_W, LM_ACT, rows) + attn
    got = sm.step_time_s(StepBatch(prefill_chunks=chunks, num_decode=b, decode_context_sum=ctx))
    assert got == pytest.approx(expected, rel=1e-12)
    br = sm.breakdown(StepBatch(prefill_chunks=chunks, num_decode=b, decode_context_sum=ctx))
    assert br["attention"] == pytest.approx(attn, rel=1e-12)
    assert br["lm_head"] == pytest.approx(hand_op(LM_W, LM_ACT, rows), rel=1e-12)
    assert br["comm"] == 0.0 and br["overhead"] == 0.0
    assert br["linear"] == pytest.approx(hand_linear(n), rel=1e-12)
    # summed FLOP time vs summed byte time of the linear operators
    flops = L * sum(2 * w for w, _ in OPS) * n / P
    nbytes = (L * sum(2 * w + a * n for w, a in OPS)) / BW
    assert br["bound"] == ("compute" if flops > nbytes else "memory")


def test_empty_batches_take_no_time():
    sm = StepModel(dep())
    assert sm.step_time_s(StepBatch()) == 0.0
    assert sm.step_time_s(StepBatch(prefill_chunks=((0, 0),))) == 0.0
    br = sm.breakdown(StepBatch())
    assert br == {"linear": 0.0, "attention": 0.0, "lm_head": 0.0, "comm": 0.0, "overhead": 0.0,
                  "bound": "memory"}


def test_fixed_overheads_and_per_sequence_cost_add_exactly():
    eff = dataclasses.replace(UNIT, step_overhead_s=1e-3, seq_overhead_s=2e-5, request_overhead_s=0.05)
    sm0, sm = StepModel(dep()), StepModel(dep(efficiency=eff))
    for batch, rows in ((StepBatch(num_decode=7, decode_context_sum=700), 7),
                        (StepBatch(prefill_chunks=((300, 0), (20, 10)), num_decode=2, decode_context_sum=50), 4)):
        assert sm.step_time_s(batch) - sm0.step_time_s(batch) == pytest.approx(1e-3 + rows * 2e-5, rel=1e-9)
    # TTFT: the request's fixed cost plus the prefill step(s)
    assert ttft_s(sm, 100) == pytest.approx(0.05 + sm.step_time_s(StepBatch(prefill_chunks=((100, 0),))),
                                            rel=1e-12)


def test_tp2_halves_the_shards_and_adds_ring_allreduces():
    sm1, sm2 = StepModel(dep()), StepModel(dep(tp=2))
    c = sm2.coeffs
    # 2 all-reduces per dense layer of N·h·2 bytes, ring factor 2(n−1)/n = 1, over the link
    assert c.comm_s_per_token == pytest.approx(L * 2 * (H * 2) * 1.0 / LINK, rel=1e-12)
    assert c.comm_fixed_s == 0.0
    lat = StepModel(dep(tp=2, efficiency=dataclasses.replace(UNIT, comm_latency_s=1e-5))).coeffs
    assert lat.comm_fixed_s == pytest.approx(L * 2 * 1e-5, rel=1e-12)
    # per-GPU weights: attention q/o and MLP halved; 2 KV heads over 2 GPUs = 1 each
    qkv = next(op for op in c.dense_ops if op.name == "qkv_proj")
    assert qkv.weight_bytes == 2 * H * (512 + 2 * 128)
    assert c.kv_bytes_per_ctx == 2 * 1 * D * 2
    assert c.lm_head.weight_bytes == 2 * H * V / 2
    b = StepBatch(num_decode=4, decode_context_sum=400)
    br = sm2.breakdown(b)
    assert br["comm"] == pytest.approx(4 * c.comm_s_per_token, rel=1e-12)
    assert sm1.coeffs.comm_s_per_token == 0.0 and sm1.coeffs.comm_fixed_s == 0.0


def test_pp_sends_hidden_states_across_each_boundary():
    c = StepModel(dep(pp=2, efficiency=dataclasses.replace(UNIT, comm_latency_s=3e-6))).coeffs
    # one boundary inside the node: N·h·2 bytes over the link, one latency
    assert c.comm_s_per_token == pytest.approx(H * 2 / LINK, rel=1e-12)
    assert c.comm_fixed_s == pytest.approx(3e-6, rel=1e-12)
    assert StepModel(dep(pp=2)).pipeline_depth == 2
    # a node of 1 GPU: every boundary crosses nodes (min(50 GB/s NIC, link))
    one = dataclasses.replace(GPU_T, gpus_per_node=1)
    c1 = StepModel(dep(gpu=one, pp=2)).coeffs
    assert c1.comm_s_per_token == pytest.approx(H * 2 / 50e9, rel=1e-12)


def test_fp8_weights_use_the_fp8_peak_and_one_byte():
    c = build_coefficients(dep(weight_dtype="fp8"))
    assert c.compute_dtype == "fp8" and c.gemm_flops_per_s == 2 * P
    assert c.attn_flops_per_s == P                                   # attention at the bf16 peak
    qkv = next(op for op in c.dense_ops if op.name == "qkv_proj")
    assert qkv.weight_bytes == 1_572_864 * 1.0
    assert c.lm_head.weight_bytes == H * V * 2.0                     # LM head stays bf16
    c = build_coefficients(dep(kv_dtype="fp8"))
    assert c.kv_bytes_per_ctx == KV_CTX / 2


def test_efficiencies_scale_the_rates():
    eff = dataclasses.replace(UNIT, compute=0.5, memory=0.25, attention_compute=0.2, attention_memory=0.4,
                              expert_compute=0.5)
    c = build_coefficients(dep(efficiency=eff))
    assert c.gemm_flops_per_s == 0.5 * P
    assert c.expert_flops_per_s == 0.25 * P
    assert c.hbm_bytes_per_s == 0.25 * BW
    assert c.attn_flops_per_s == 0.2 * P
    assert c.attn_bytes_per_s == 0.4 * BW


# ---------------------------------------------------------------------------------------
# Ridge point and answers


def _naive_ridge() -> int:
    n = 1
    while True:
        flops = L * sum(2 * w for w, _ in OPS) * n / P
        nbytes = L * sum(2 * w + a * n for w, a in OPS) / BW
        if flops >= nbytes:
            return n
        n += 1


def test_ridge_point_is_the_first_compute_bound_batch():
    # flops 2·W·n/P ≥ bytes (2W + a·n)/BW  ⇔  n ≥ 2W/(2W/100 − a)  with W, a summed over a layer
    w, a = W_LAYER, 5120 + 4096 + 10240 + 6144 + 28672
    assert _naive_ridge() == math.ceil(2 * w / (2 * w / 100 - a))
    assert ridge_point(StepModel(dep())) == _naive_ridge()
    # a GPU whose FLOPs are plentiful: batch 1 is already compute-bound? no — slow FLOPs are
    slow = dataclasses.replace(GPU_T, peak_flops={"bf16": 1e9})
    assert ridge_point(StepModel(dep(gpu=slow))) == 1
    assert ridge_point(StepModel(dep()), limit=8) is None


def test_decode_point_and_step_bound():
    sm = StepModel(dep())
    p = decode_point(sm, 4, 250)
    t = sm.step_time_s(StepBatch(num_decode=4, decode_context_sum=1000))
    assert p.step_s == t and p.tokens_per_s == 4 / t and p.tokens_per_s_per_seq == 1 / t
    assert p.batch == 4 and p.context_tokens == 250 and p.bound == "memory"
    # a long prefill is compute-bound: pairs ≈ n²/2 with F_CTX/P per pair vs KV bytes ∝ n
    assert step_bound(sm, StepBatch(prefill_chunks=((8192, 0),))) == "compute"
    assert step_bound(sm, StepBatch(num_decode=1, decode_context_sum=10)) == "memory"


def test_ttft_sums_chunks_of_the_token_budget():
    sm = StepModel(dep(max_num_batched_tokens=1000))
    steps = [StepBatch(prefill_chunks=((1000, 0),)), StepBatch(prefill_chunks=((1000, 1000),)),
             StepBatch(prefill_chunks=((500, 2000),))]
    assert ttft_s(sm, 2500) == pytest.approx(sum(sm.step_time_s(s) for s in steps), rel=1e-12)
    assert ttft_s(sm, 0) == 0.0


def test_offline_throughput_closed_form():
    d = dep(max_num_seqs=64, max_num_batched_tokens=8192)
    sm, mb = StepModel(d), memory_budget(d)
    i, o = 200, 101
    r = offline_throughput(sm, mb, i, o)
    # B = min(64, KV limit) = 64; rows = B·(I + O − 1)/O = 64·300/101 = 190.09…
    assert r.concurrency == 64 and r.limited_by == "max_num_seqs"
    rows = 64 * 300 / 101
    p = round(rows * 200 / 300)            # 127 prefill rows
    dd = round(rows) - p                   # 63 decode rows
    assert (r.prefill_rows, r.decode_rows) == (p, dd) == (127, 63)
    chunks = ((127, (200 - 127) // 2),)    # a partial prompt at its average position
    t = sm.step_time_s(StepBatch(prefill_chunks=chunks, num_decode=63, decode_context_sum=round(63 * 250.5)))
    assert r.step_s == pytest.approx(t, rel=1e-12)
    assert r.output_tokens_per_s == pytest.approx(190 * 101 / 300 / t, rel=1e-12)
    assert r.requests_per_s == pytest.approx(r.output_tokens_per_s / 101, rel=1e-12)
    assert r.rows_per_step == 190.0
    # whole prompts: rows beyond one prompt become (I, 0) chunks
    r2 = offline_throughput(sm, mb, 50, 2)
    # rows = 64·51/2 = 1632 → p = 1600 = 32 whole prompts, d = 32
    assert (r2.prefill_rows, r2.decode_rows) == (1600, 32)
    t2 = sm.step_time_s(StepBatch(prefill_chunks=((50, 0),) * 32, num_decode=32, decode_context_sum=32 * 51))
    assert r2.step_s == pytest.approx(t2, rel=1e-12)


def test_offline_throughput_kv_limit_budget_cap_and_pipeline():
    small = dataclasses.replace(GPU_T, memory_bytes=2e9)
    d = dep(gpu=small, max_num_seqs=256)
    mb = memory_budget(d)
    # KV capacity in blocks of 16; a request of 1000 + 1000 tokens needs 125 blocks
    conc = mb.kv_blocks // 125
    assert 1 <= conc < 256
    r = offline_throughput(StepModel(d), mb, 1000, 1000)
    assert r.concurrency == conc and r.limited_by == "kv_cache"
    # the token budget caps the rows per step
    d2 = dep(max_num_seqs=256, max_num_batched_tokens=64)
    r2 = offline_throughput(StepModel(d2), memory_budget(d2), 100, 100)
    assert r2.prefill_rows + r2.decode_rows == 64
    # pipeline: pp micro-batches in flight, one leaves every t/pp
    d3 = dep(pp=2, max_num_seqs=64)
    r3 = offline_throughput(StepModel(d3), memory_budget(d3), 200, 101)
    rows = 32 * 300 / 101
    p = round(rows * 200 / 300)
    assert r3.prefill_rows == p and r3.decode_rows == round(rows) - p
    assert r3.output_tokens_per_s == pytest.approx((r3.prefill_rows + r3.decode_rows) * 101 / 300
                                                   / (r3.step_s / 2), rel=1e-12)
    # nothing fits: infeasible, zero throughput
    tiny = dep(gpu=dataclasses.replace(GPU_T, memory_bytes=1.5 * GiB))
    r4 = offline_throughput(StepModel(dep()), memory_budget(tiny), 100, 100)
    assert r4.concurrency == 0 and r4.limited_by == "infeasible" and r4.output_tokens_per_s == 0.0
    assert math.isinf(r4.step_s)


# ---------------------------------------------------------------------------------------
# Memory budget by hand


ACT_PER_TOKEN = 2 * (4 * H + (HEADS + 2 * KV) * D + 3 * I)       # 23_552 bytes
UNQ = L * 2 * H + V * H + H + V * H                               # norms, embedding, final norm, LM head


def test_memory_budget_tp1_by_hand():
    d = dep(max_num_seqs=256, max_num_batched_tokens=8192)
    b = memory_budget(d)
    usable = 0.9 * 10e9
    weights = (L * W_LAYER + UNQ) * 2
    act = 8192 * ACT_PER_TOKEN + 256 * V * 4
    overhead = 0.75 * GiB + 0.5 * GiB
    assert (FRAMEWORK_OVERHEAD_BYTES, CUDA_GRAPH_BYTES, NCCL_BUFFER_BYTES) == (0.75 * GiB, 0.5 * GiB, 0.5 * GiB)
    assert b.usable_bytes == usable and b.weight_bytes == weights == 39_757_824
    assert b.activation_bytes == act and b.overhead_bytes == overhead
    free = usable - weights - act - overhead
    assert b.kv_bytes == pytest.approx(free, rel=1e-15)
    per_tok = L * KV_CTX
    assert b.kv_bytes_per_token == per_tok == b.kv_bytes_per_token_per_gpu
    blocks = int(free / per_tok // 16)
    assert b.kv_blocks == blocks and b.kv_capacity_tokens == 16 * blocks
    assert b.feasible and b.reason == "" and b.weight_bytes_per_replica == weights
    assert b.gpu_memory_bytes == 10e9 and b.block_size == 16
    # concurrency: sequences of 1000 tokens take ceil(1000/16) = 63 blocks each
    assert b.max_concurrency(1000) == blocks // 63
    assert b.max_concurrency(1) == blocks and b.max_concurrency(0) == blocks


def test_memory_budget_tp2_and_pp2_by_hand():
    b = memory_budget(dep(tp=2))
    # per GPU: linear weights halved (KV heads 2/2 = 1), norms replicated, vocab split
    w_layer = H * (512 + 2 * 128) + 512 * H + 3 * H * I // 2
    weights = (L * w_layer) * 2 + (L * 2 * H + V * H / 2 + H + V * H / 2) * 2
    assert b.weight_bytes == weights
    assert b.weight_bytes_per_replica == 2 * weights
    assert b.overhead_bytes == 1.75 * GiB                             # + NCCL buffers
    act = 8192 * 2 * (4 * H + (4 + 2) * D + 3 * I / 2) + 256 * V / 2 * 4
    assert b.activation_bytes == act
    assert b.kv_bytes_per_token_per_gpu == L * 2 * 1 * D * 2
    assert b.kv_bytes_per_token == L * KV_CTX                         # whole replica, unsharded
    pp = memory_budget(dep(pp=2))
    # stage 0: layer 0 + embedding; stage 1: layer 1 + final norm + LM head (1024 more)
    s0 = (W_LAYER + 2 * H + V * H) * 2
    s1 = (W_LAYER + 2 * H + H + V * H) * 2
    assert pp.weight_bytes == s1 and pp.weight_bytes_per_replica == s0 + s1
    free1 = 9e9 - s1 - pp.activation_bytes - 1.75 * GiB
    assert pp.kv_bytes == pytest.approx(free1, rel=1e-15)
    assert pp.kv_bytes_per_token_per_gpu == KV_CTX                    # one layer per stage
    assert pp.kv_blocks == int(free1 / KV_CTX // 16)


def test_tied_embeddings_share_the_lm_head_unless_pipelined():
    tied = dataclasses.replace(TOY, tie_word_embeddings=True)
    b = memory_budget(dep(model=tied))
    assert b.weight_bytes == (L * W_LAYER + L * 2 * H + V * H + H) * 2
    b2 = memory_budget(dep(model=tied, pp=2))          # the last stage holds its own copy
    assert b2.weight_bytes == (W_LAYER + 2 * H + H + V * H) * 2


def test_infeasible_budgets_say_why():
    tiny = memory_budget(dep(gpu=dataclasses.replace(GPU_T, memory_bytes=30e6)))
    assert not tiny.feasible and tiny.kv_blocks == 0 and tiny.kv_capacity_tokens == 0
    assert tiny.reason.startswith("weights need ") and "per GPU at TP1" in tiny.reason
    assert "gpu_memory_utilization 0.9" in tiny.reason
    assert tiny.max_concurrency(10) == 0
    no_kv = memory_budget(dep(gpu=dataclasses.replace(GPU_T, memory_bytes=1.4e9)))
    assert not no_kv.feasible and "nothing left for the KV cache" in no_kv.reason and no_kv.kv_bytes == 0.0
    pp = memory_budget(dep(pp=2, gpu=dataclasses.replace(GPU_T, memory_bytes=1.4e9)))
    assert "at TP1 PP2" in pp.reason
    # room for less than one block: usable − weights − act − overhead < 16 tokens of KV
    need = (L * W_LAYER + UNQ) * 2 + 8192 * ACT_PER_TOKEN + 256 * V * 4 + 1.25 * GiB
    g = dataclasses.replace(GPU_T, memory_bytes=(need + 10 * L * KV_CTX) / 0.9)
    one = memory_budget(dep(gpu=g))
    assert not one.feasible and "fewer than one block of 16 tokens" in one.reason
    g2 = dataclasses.replace(GPU_T, memory_bytes=(need + 17 * L * KV_CTX) / 0.9)
    assert memory_budget(dep(gpu=g2)).kv_blocks == 1


# ---------------------------------------------------------------------------------------
# Mixture of experts


TOY_MOE = dataclasses.replace(TOY, name="toymoe", moe=MoESpec(num_experts=8, experts_per_token=2,
                                                              expert_intermediate_size=512,
                                                              num_shared_experts=1,
                                                              shared_expert_intermediate_size=256))


def test_distinct_experts_against_enumeration():
    import itertools
    e, k = 4, 2
    choices = list(itertools.combinations(range(e), k))
    for n in (1, 2, 3):
        total = sum(len(set().union(*combo)) for combo in itertools.product(choices, repeat=n))
        assert distinct_experts(e, k, n) == pytest.approx(total / len(choices) ** n, rel=1e-12)
    assert distinct_experts(8, 2, 0) == 0.0 and distinct_experts(0, 2, 5) == 0.0
    assert distinct_experts(8, 2, 10_000) == pytest.approx(8.0)


def test_moe_decode_reads_only_the_experts_hit():
    sm = StepModel(dep(model=TOY_MOE))
    c = sm.coeffs
    pe = 3 * H * 512
    assert c.expert_weight_bytes == pe * 2 and c.expert_flops_per_token == 2 * 2 * pe
    assert c.num_moe_layers == L and c.num_dense_layers == 0 and c.num_experts == 8
    assert c.expert_act_bytes_per_token == 2 * (2 * H + 3 * 512) * 2
    router = next(op for op in c.moe_ops if op.name == "router")
    assert router.weight_bytes == H * 8 * 2 and router.flops_per_token == 2 * H * 8
    shared = next(op for op in c.moe_ops if op.name == "shared_experts")
    assert shared.weight_bytes == 3 * H * 256 * 2
    elem = next(op for op in c.moe_ops if op.name == "elementwise")
    assert elem.act_bytes_per_token == 16 * H + 6 * (2 * 512 + 256)
    # batch 1 decode: every routed-expert term memory-bound, k = 2 experts read
    b1 = StepModel(dep(model=TOY_MOE)).breakdown(StepBatch(num_decode=1))
    attn_ops = (1_572_864, 5120), (1_048_576, 4096)
    moe_layer = sum((2 * w + a) / BW for w, a in attn_ops) + (2 * H * 8 + 2 * H + 4 * 8 * 2 * 0 + (H + 8) * 2) / BW
    moe_layer = sum((2 * w + a) / BW for w, a in attn_ops)
    moe_layer += (H * 8 * 2 + (H + 8) * 2) / BW                                   # router
    moe_layer += (3 * H * 256 * 2 + 2 * H * 2) / BW                               # shared expert
    moe_layer += (16 * H + 6 * (2 * 512 + 256)) / BW                              # elementwise
    moe_layer += (2 * pe * 2 + 2 * (2 * H + 3 * 512) * 2) / BW                    # 2 experts hit
    assert b1["linear"] == pytest.approx(L * moe_layer + 2 * H * 2 / BW, rel=1e-12)


def test_ep_all_to_all_replaces_the_moe_allreduce():
    c = StepModel(dep(model=TOY_MOE, tp=2, ep=2, efficiency=dataclasses.replace(UNIT, comm_latency_s=1e-6))).coeffs
    hid = H * 2
    # 1 all-reduce per MoE layer (attention) + 2 all-to-alls (dispatch, combine) of k·(ep−1)/ep²
    per_tok = L * 1 * 1.0 * hid / LINK + 2 * L * (2 * 1 / 4) * hid / LINK
    assert c.comm_s_per_token == pytest.approx(per_tok, rel=1e-12)
    assert c.comm_fixed_s == pytest.approx((L + 2 * L) * 1e-6, rel=1e-12)
    c1 = StepModel(dep(model=TOY_MOE, tp=2, ep=1)).coeffs
    assert c1.comm_s_per_token == pytest.approx(L * 2 * hid / LINK, rel=1e-12)


def test_moe_memory_activation_and_weights():
    b = memory_budget(dep(model=TOY_MOE))
    moe_i = 2 * 512 + 256                    # k·I_e + shared; no dense layers
    per_tok = 2 * (4 * H + (HEADS + 2 * KV) * D + 3 * moe_i + 2 * H)
    assert b.activation_bytes == 8192 * per_tok + 256 * V * 4
    layer_q = 1_572_864 + 1_048_576 + 8 * 3 * H * 512 + 3 * H * 256
    layer_u = 2 * H + H * 8
    assert b.weight_bytes == (L * layer_q + L * layer_u + 2 * V * H + H) * 2


def test_deployment_errors_name_the_valid_values():
    with pytest.raises(ConfigError, match=r"tp=3 must divide the 8 attention heads of toy; valid tp: 1, 2"):
        memory_budget(dep(tp=3))
    with pytest.raises(ConfigError, match=r"tp=4 and the 6 KV heads of toy must divide one another; valid tp: 1, 2, 3, 6$"):
        memory_budget(dep(model=dataclasses.replace(TOY, num_kv_heads=6, num_attention_heads=24), tp=4))
    with pytest.raises(ConfigError, match=r"tp=8 exceeds the 4 GPUs of one toygpu node"):
        memory_budget(dep(gpu=dataclasses.replace(GPU_T, gpus_per_node=4), tp=8))
    with pytest.raises(ConfigError, match=r"pp=3 must be between 1 and the 2 layers of toy"):
        memory_budget(dep(pp=3))
    with pytest.raises(ConfigError, match=r"pp=0 must be between 1"):
        memory_budget(dep(pp=0))
    with pytest.raises(ConfigError, match=r"ep=2 needs a mixture-of-experts model; toy is dense"):
        memory_budget(dep(ep=2))
    with pytest.raises(ConfigError, match=r"ep=4 must divide tp=2 and the 8 experts; valid ep: 1, 2"):
        memory_budget(dep(model=TOY_MOE, tp=2, ep=4))
    with pytest.raises(ConfigError, match=r"gpu_memory_utilization=1.5 must be in \(0, 1\]"):
        memory_budget(dep(gpu_memory_utilization=1.5))
    with pytest.raises(ConfigError, match=r"gpu_memory_utilization=0.0 must be in"):
        memory_budget(dep(gpu_memory_utilization=0.0))
    assert memory_budget(dep(gpu_memory_utilization=1.0)).usable_bytes == 10e9
    for name in ("max_num_seqs", "max_num_batched_tokens", "block_size"):
        with pytest.raises(ConfigError, match=rf"{name}=0 must be at least 1"):
            memory_budget(dep(**{name: 0}))
    with pytest.raises(ConfigError, match=r"unknown weight dtype 'fp2'"):
        memory_budget(dep(weight_dtype="fp2"))
    with pytest.raises(ConfigError, match=r"unknown KV dtype 'int8'"):
        memory_budget(dep(kv_dtype="int8"))
    no_bf16 = dataclasses.replace(GPU_T, peak_flops={"fp8": 1e15})
    with pytest.raises(ConfigError, match=r"no bf16 peak"):
        memory_budget(dep(gpu=no_bf16))
    with pytest.raises(ConfigError, match=r"tp=0 must divide"):
        memory_budget(dep(tp=0))
    # notes: fp8 on a GPU without fp8 tensor cores runs weight-only
    amp = dataclasses.replace(GPU_T, peak_flops={"bf16": P})
    assert "weight-only" in memory_budget(dep(gpu=amp, weight_dtype="fp8")).notes[0]
    assert memory_budget(dep()).notes == ()


# ---------------------------------------------------------------------------------------
# The bound of a step, the ridge point and the offline answer at their edges


def _hand_bound(chunks, b, ctx) -> str:
    """Summed FLOP time vs summed byte time of the whole step (linear operators, attention)."""
    n = sum(k for k, _ in chunks) + b
    flops = L * sum(2 * w for w, _ in OPS) * n / P
    nbytes = L * sum(2 * w + a * n for w, a in OPS) / BW
    pairs = sum(k * c + k * (k + 1) / 2 for k, c in chunks)
    kv = sum(k + c for k, c in chunks) + ctx
    flops += L * (pairs * F_CTX + ctx * F_CTX) / P
    nbytes += L * kv * KV_CTX / BW
    return "compute" if flops > nbytes else "memory"


def test_step_bound_flips_where_the_hand_sums_cross():
    sm = StepModel(dep())
    # a lone prefill chunk after c cached tokens: find where it turns compute-bound by hand
    for c in (0, 50, 3000):
        first = next(n for n in range(1, 5000) if _hand_bound(((n, c),), 0, 0) == "compute")
        assert step_bound(sm, StepBatch(prefill_chunks=((first, c),))) == "compute"
        assert step_bound(sm, StepBatch(prefill_chunks=((first - 1, c),))) == "memory"
    # decode beside a prefill chunk, and decode alone with long contexts
    for b, ctx in ((3, 30_000), (40, 4000), (90, 90)):
        k = next(n for n in range(1, 5000) if _hand_bound(((n, 0),), b, ctx) == "compute")
        assert step_bound(sm, StepBatch(prefill_chunks=((k, 0),), num_decode=b, decode_context_sum=ctx)) == "compute"
        assert step_bound(sm, StepBatch(prefill_chunks=((k - 1, 0),), num_decode=b, decode_context_sum=ctx)) == "memory"
    first = next(n for n in range(1, 5000) if _hand_bound((), n, 0) == "compute")
    assert step_bound(sm, StepBatch(num_decode=first)) == "compute"
    assert step_bound(sm, StepBatch(num_decode=first - 1)) == "memory"
    assert step_bound(sm, StepBatch(num_decode=first, decode_context_sum=first * 100)) == "memory"
    assert sm.breakdown(StepBatch(num_decode=first))["bound"] == "compute"
    assert sm.breakdown(StepBatch(num_decode=first - 1))["bound"] == "memory"


@pytest.mark.parametrize("peak", [1e9, 1.2e12, 2e12, 2.9e12, 4e12, 6e12, 1e13, 2.3e13, 5e13, 1e14])
def test_ridge_point_against_a_linear_scan(peak):
    g = dataclasses.replace(GPU_T, peak_flops={"bf16": peak})

    def bound(n):
        return L * sum(2 * w for w, _ in OPS) * n / peak >= L * sum(2 * w + a * n for w, a in OPS) / BW

    expected = next(n for n in range(1, 10_000) if bound(n))
    got = ridge_point(StepModel(dep(gpu=g)))
    assert got == expected and isinstance(got, int)
    # the search may go up to the limit itself
    limit = 1 << max(0, (expected - 1).bit_length())          # the power of two at or above it
    assert ridge_point(StepModel(dep(gpu=g)), limit=limit) == expected
    if expected > 2:                                          # the doubling passes the limit
        assert ridge_point(StepModel(dep(gpu=g)), limit=limit // 2) is None


def test_offline_throughput_one_output_token_and_short_prompts():
    d = dep(max_num_seqs=64)
    sm, mb = StepModel(d), memory_budget(d)
    # O = 1: the request is one prefill (its only token comes with it), no decode rows
    r = offline_throughput(sm, mb, 300, 1)
    assert (r.prefill_rows, r.decode_rows) == (8192, 0)                  # 64·300 capped at 8192
    assert r.output_tokens_per_s == pytest.approx(8192 / 300 / r.step_s, rel=1e-12)
    r = offline_throughput(sm, mb, 0, 0)                                 # clamped to 1 and 1
    assert (r.prefill_rows, r.decode_rows) == (64, 0)
    # one sequence, 1 in / 10 out: a step has 1·10/10 = 1 row, a decode row
    d1 = dep(max_num_seqs=1)
    r = offline_throughput(StepModel(d1), memory_budget(d1), 1, 10)
    assert (r.prefill_rows, r.decode_rows, r.concurrency) == (0, 1, 1)
    r = offline_throughput(StepModel(d1), memory_budget(d1), 1, 1)
    assert (r.prefill_rows, r.decode_rows) == (1, 0)
    r = offline_throughput(StepModel(d1), memory_budget(d1), 3, 2)       # 1·4/2 = 2 rows: 2·3/4 → 2 prefill
    assert (r.prefill_rows, r.decode_rows) == (2, 0)


def test_offline_throughput_limit_at_exact_kv_capacity():
    # max_num_seqs sizes the logits buffer, so the KV limit moves with it: find the fixed
    # point where exactly max_num_seqs sequences of 1000 tokens (63 blocks each) fit
    per_seq = math.ceil((500 + 500) / 16)
    kv_limit = next(s for s in range(3500, 3700)
                    if memory_budget(dep(max_num_seqs=s)).kv_blocks // per_seq == s)
    at = dep(max_num_seqs=kv_limit)
    r = offline_throughput(StepModel(at), memory_budget(at), 500, 500)
    assert r.concurrency == kv_limit and r.limited_by == "max_num_seqs"
    above = dep(max_num_seqs=kv_limit + 1)
    r = offline_throughput(StepModel(above), memory_budget(above), 500, 500)
    assert r.concurrency == kv_limit and r.limited_by == "kv_cache"


def test_infeasible_offline_answer_is_all_zero():
    tiny = memory_budget(dep(gpu=dataclasses.replace(GPU_T, memory_bytes=1.0 * GiB)))
    r = offline_throughput(StepModel(dep()), tiny, 10, 10)
    assert (r.concurrency, r.limited_by, r.rows_per_step, r.prefill_rows, r.decode_rows,
            r.output_tokens_per_s, r.requests_per_s) == (0, "infeasible", 0.0, 0, 0, 0.0, 0.0)
    assert r.step_s == math.inf


def test_breakdown_separates_comm_and_overhead():
    eff = dataclasses.replace(UNIT, comm_latency_s=5e-6, step_overhead_s=7e-4)
    sm = StepModel(dep(tp=2, efficiency=eff))
    c = sm.coeffs
    n = 12
    br = sm.breakdown(StepBatch(num_decode=n, decode_context_sum=1200))
    assert c.comm_fixed_s == pytest.approx(L * 2 * 5e-6, rel=1e-12)
    assert br["comm"] == pytest.approx(n * c.comm_s_per_token + c.comm_fixed_s, rel=1e-12)
    assert br["overhead"] == 7e-4
    # the linear part alone: TP-2 shards of every operator, by hand
    qkv = H * (512 + 2 * 128)
    ops2 = [(qkv, (H + 512 + 256) * 2), (512 * H, (512 + H) * 2), (2 * H * 1024, (H + 2048) * 2),
            (H * 1024, (1024 + H) * 2), (0, 16 * H + 6 * 1024)]
    lin = L * sum(hand_op(w, a, n) for w, a in ops2) + n * 2 * H * 2 / BW
    assert br["linear"] == pytest.approx(lin, rel=1e-12)
    total = sm.step_time_s(StepBatch(num_decode=n, decode_context_sum=1200))
    assert total == pytest.approx(br["linear"] + br["attention"] + br["lm_head"] + br["comm"] + br["overhead"],
                                  rel=1e-12)


def test_moe_summed_compute_and_memory_by_hand():
    from servelab.perf.roofline import linear_compute_memory_s
    eff = dataclasses.replace(UNIT, expert_compute=0.5)
    c = build_coefficients(dep(model=TOY_MOE, efficiency=eff))
    pe = 3 * H * 512
    attn = [(1_572_864, 5120), (1_048_576, 4096)]
    others = attn + [(3 * H * 256, 2 * H * 2), (0, 16 * H + 6 * (2 * 512 + 256))]
    for n in (1, 3, 40):
        hit = 8 * (1 - (1 - 2 / 8) ** n)
        router_f, router_b = 2 * H * 8 * n, H * 8 * 2 + (H + 8) * 2 * n
        comp = L * (n * sum(2 * w for w, _ in others) + router_f) / P + L * n * 2 * 2 * pe / (0.5 * P)
        mem = L * (sum(2 * w + a * n for w, a in others) + router_b) / BW \
            + L * (hit * pe * 2 + n * 2 * (2 * H + 3 * 512) * 2) / BW
        got = linear_compute_memory_s(c, n)
        assert got[0] == pytest.approx(comp, rel=1e-12) and got[1] == pytest.approx(mem, rel=1e-12)


# ---------------------------------------------------------------------------------------
# Parameter counts of layouts the catalog does not exercise


def test_mla_without_q_lora_and_moe_with_leading_dense_layers_by_hand():
    from servelab.catalog.models import MLASpec
    from servelab.perf import shapes

    m = dataclasses.replace(TOY, name="mla", mla=MLASpec(kv_lora_rank=64, q_lora_rank=None, qk_nope_head_dim=32,
                                                         qk_rope_head_dim=16, v_head_dim=32))
    # q h×8·48, kv_a h×(64+16), kv_b 64×8·(32+32), o 8·32×h
    assert shapes.attention_linear_params(m) == H * 8 * 48 + H * 80 + 64 * 8 * 64 + 8 * 32 * H
    assert shapes.attention_small_params(m) == 64
    moe = dataclasses.replace(TOY_MOE, moe=dataclasses.replace(TOY_MOE.moe, first_dense_layers=1,
                                                                dense_intermediate_size=3000))
    dense_layer = W_LAYER - 3 * H * I + 3 * H * 3000 + 2 * H
    moe_layer = 1_572_864 + 1_048_576 + 2 * H + H * 8 + 8 * 3 * H * 512 + 3 * H * 256
    emb = 2 * V * H + H
    assert shapes.total_params(moe) == dense_layer + moe_layer + emb
    assert shapes.active_params(moe) == dense_layer + moe_layer - 6 * 3 * H * 512 + emb
    tied = dataclasses.replace(TOY, tie_word_embeddings=True)
    assert shapes.lm_head_params(tied) == 0 and shapes.lm_head_params(TOY) == V * H
    assert shapes.total_params(tied) == L * (W_LAYER + 2 * H) + V * H + H


# ---------------------------------------------------------------------------------------
# The estimate report carries every figure (each checked against the hand-checked parts)


def test_estimate_report_every_field():
    from servelab.perf.estimate import estimate_report
    d = dep(tp=2, weight_dtype="fp8", kv_dtype="fp8", gpu_memory_utilization=0.8, max_num_seqs=20,
            max_num_batched_tokens=256)
    r = estimate_report(d, 300, 101)
    b = memory_budget(d)
    sm = StepModel(d)
    expect = {"model": "toy", "gpu": "toygpu", "tp": 2, "pp": 1, "ep": 1, "num_gpus": 2, "weight_dtype": "fp8",
              "kv_dtype": "fp8", "input_tokens": 300, "output_tokens": 101, "gpu_memory_utilization": 0.8,
              "max_num_seqs": 20, "max_num_batched_tokens": 256, "feasible": True, "reason": "", "notes": [],
              "gpu_memory_bytes": 10e9, "usable_bytes": 8e9, "weight_bytes": b.weight_bytes,
              "weight_bytes_per_replica": 2 * b.weight_bytes, "activation_bytes": b.activation_bytes,
              "overhead_bytes": 1.75 * GiB, "kv_bytes": b.kv_bytes, "kv_bytes_per_token": L * KV_CTX / 2,
              "kv_bytes_per_token_per_gpu": L * 2 * 1 * D * 1, "kv_capacity_tokens": b.kv_capacity_tokens,
              "kv_blocks": b.kv_blocks, "max_concurrency": b.kv_blocks // math.ceil(401 / 16),
              "max_batch": 20, "decode_context_tokens": 350, "ridge_batch": ridge_point(sm),
              "engine": None, "engine_profile": None, "compute_dtype": "fp8"}
    for k, v in expect.items():
        assert r[k] == v, k
    assert r["weight_bytes"] == (L * (H * (512 + 256) + 512 * H + 3 * H * 1024) * 1
                                 + (L * 2 * H + V * H / 2 + H + V * H / 2) * 2)
    # TTFT: chunks of 256 then 44 tokens
    assert r["ttft_s"] == pytest.approx(sm.step_time_s(StepBatch(prefill_chunks=((256, 0),)))
                                        + sm.step_time_s(StepBatch(prefill_chunks=((44, 256),))), rel=1e-12)
    assert r["prefill_bound"] == step_bound(sm, StepBatch(prefill_chunks=((256, 0),)))
    assert list(r["decode_step_s"]) == ["1", "8", "20"]
    for bs in (1, 8, 20):
        t = sm.step_time_s(StepBatch(num_decode=bs, decode_context_sum=bs * 350))
        assert r["decode_step_s"][str(bs)] == t and r["decode_tokens_per_s"][str(bs)] == bs / t
        assert r["decode_bound"][str(bs)] == step_bound(sm, StepBatch(num_decode=bs, decode_context_sum=bs * 350))
    off = offline_throughput(sm, b, 300, 101)
    assert r["offline_output_tokens_per_s"] == off.output_tokens_per_s
    assert r["offline"] == {"concurrency": 20, "limited_by": "max_num_seqs",
                            "prefill_rows_per_step": off.prefill_rows, "decode_rows_per_step": off.decode_rows,
                            "step_s": off.step_s, "requests_per_s": off.requests_per_s,
                            "output_tokens_per_s_per_gpu": off.output_tokens_per_s / 2}
    assert r["efficiency"] == dataclasses.asdict(UNIT)
    # the step's token budget caps the batch too; a batch size off the list is added
    r2 = estimate_report(dep(max_num_seqs=100, max_num_batched_tokens=50), 10, 10)
    assert r2["max_batch"] == 50 and list(r2["decode_step_s"]) == ["1", "8", "32", "50"]
    r3 = estimate_report(dep(max_num_seqs=32), 10, 10)
    assert list(r3["decode_step_s"]) == ["1", "8", "32"]
    # infeasible: the budget and nothing else
    bad = estimate_report(dep(gpu=dataclasses.replace(GPU_T, memory_bytes=1e9)), 10, 10)
    assert not bad["feasible"] and bad["reason"] and bad["ttft_s"] is None and bad["prefill_bound"] is None
    assert bad["decode_step_s"] == {} and bad["ridge_batch"] is None and bad["offline"] is None
    assert bad["offline_output_tokens_per_s"] == 0.0 and "compute_dtype" not in bad


@pytest.mark.parametrize("model,k", [(TOY, 64), (TOY, 40), (TOY_MOE, 64)])
def test_step_bound_flips_where_the_context_makes_attention_compute_bound(model, k):
    """A chunk of k tokens after c cached ones: compute grows by L·k·F/P per cached token,
    bytes by L·KV/BW, so for k > 25 the step turns compute-bound at one c (found by hand
    sums); the quadratic pair count k(k+1)/2 decides exactly where."""
    from servelab.perf.roofline import linear_compute_memory_s
    sm = StepModel(dep(model=model))
    lin_c, lin_m = linear_compute_memory_s(sm.coeffs, k)      # checked by hand above

    def hand(c):
        pairs = k * c + k * (k + 1) / 2
        return lin_c + L * pairs * F_CTX / P > lin_m + L * (c + k) * KV_CTX / BW

    c_star = next(c for c in range(0, 2_000_000) if hand(c))
    assert c_star > 0
    assert step_bound(sm, StepBatch(prefill_chunks=((k, c_star),))) == "compute"
    assert step_bound(sm, StepBatch(prefill_chunks=((k, c_star - 1),))) == "memory"


# ---------------------------------------------------------------------------------------
# Per-stage and per-GPU counts of MoE and MLA layouts; budget edges at exact equality


TOY_MOE_D = dataclasses.replace(TOY_MOE, name="toymoed", num_layers=3,
                                moe=dataclasses.replace(TOY_MOE.moe, first_dense_layers=1,
                                                        dense_intermediate_size=3000))


def test_stage_params_of_a_moe_with_a_leading_dense_layer_by_hand():
    from servelab.perf.sharding import stage_params
    tp = 2
    attn = (H * (512 + 2 * 128) + 512 * H)                      # q/o halved; 2 KV heads → 1 per GPU
    dense_q = attn + 3 * H * 3000 / tp
    moe_q = attn + 8 * 3 * H * 512 / tp + 3 * H * 256 / tp        # experts and the shared expert split by tp
    moe_u = 2 * H + H * 8                                        # norms + router, replicated
    s0, s1 = stage_params(TOY_MOE_D, tp, 2)                       # layers (0, 2), (2, 3)
    assert (s0.num_layers, s0.num_moe_layers, s1.num_layers, s1.num_moe_layers) == (2, 1, 1, 1)
    assert s0.quantized == dense_q + moe_q and s1.quantized == moe_q
    assert s0.unquantized == 2 * H + moe_u + V * H / tp
    assert s1.unquantized == moe_u + H + V * H / tp
    ds = get_model_ds()
    ranges = [stage.num_moe_layers for stage in stage_params(ds, 8, 4)]
    assert ranges == [16 - 3, 15, 15, 15]                        # 61 layers, first 3 dense


def get_model_ds():
    from servelab.catalog.models import get_model
    return get_model("deepseek-v3")


def test_activation_peak_of_moe_and_mla_by_hand():
    b = memory_budget(dep(model=TOY_MOE_D, tp=2))
    # dense layers present: the widest of I = 2048 and k·I_e + shared = 1280 → 2048; + N·k·h cache
    per_tok = 2 * (4 * H + (4 + 2) * D + 3 * 2048 / 2 + 2 * H)
    assert b.activation_bytes == 8192 * per_tok + 256 * V / 2 * 4
    from servelab.catalog.models import MLASpec
    mla = dataclasses.replace(TOY, name="mla", mla=MLASpec(kv_lora_rank=64, q_lora_rank=32, qk_nope_head_dim=32,
                                                           qk_rope_head_dim=16, v_head_dim=24))
    b = memory_budget(dep(model=mla, tp=2))
    qkv = (8 / 2) * (32 + 16 + 24) + 64 + 16                     # per-head q/k/v widths + the latent
    assert b.activation_bytes == 8192 * 2 * (4 * H + qkv + 3 * I / 2) + 256 * V / 2 * 4
    assert b.kv_bytes_per_token_per_gpu == L * (64 + 16) * 2     # latent replicated on each rank
    assert b.kv_bytes_per_token == L * (64 + 16) * 2


def test_budget_reasons_at_exact_equality():
    d = dep(gpu_memory_utilization=1.0)
    w = (L * W_LAYER + UNQ) * 2
    act = 8192 * ACT_PER_TOKEN + 256 * V * 4
    ovh = 1.25 * GiB
    # weights exactly fill the GPU: they fit, nothing is left for the rest
    b = memory_budget(dataclasses.replace(d, gpu=dataclasses.replace(GPU_T, memory_bytes=float(w))))
    assert "nothing left for the KV cache" in b.reason
    # weights, activations and overhead exactly fill it: no KV room at all (not "under a block")
    b = memory_budget(dataclasses.replace(d, gpu=dataclasses.replace(GPU_T, memory_bytes=float(w + act + ovh))))
    assert b.kv_bytes == 0.0 and "nothing left for the KV cache" in b.reason
    b = memory_budget(dataclasses.replace(d, gpu=dataclasses.replace(GPU_T, memory_bytes=float(w + act + ovh)
                                                                     + 16 * L * KV_CTX)))
    assert b.feasible and b.kv_blocks == 1
