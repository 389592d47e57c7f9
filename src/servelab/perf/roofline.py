"""Per-operator FLOPs and bytes of one decoder forward pass, per GPU.

Every operator is timed by its own roofline::

    t_op = max(FLOPs / (peak · eff_compute), bytes / (hbm_bw · eff_memory))

and a step's time is the sum over operators (plus communication and a fixed overhead),
a sum of maxima — so no operator ever runs faster than its own bound.

Operators of one layer (per GPU, N = tokens in the step, TP-sharded widths):

* linear layers (QKV, O, gate/up, down; MLA's q_a/q_b/kv_a/kv_b/o): FLOPs ``2·N·W``
  (W = weights held by the GPU), bytes = weights in their storage dtype + bf16 input
  and output activations ``N·(in + out)·2``. They depend on N only.
* routed experts (MoE): FLOPs ``2·N·k·P_e/tp``; weight bytes of the experts actually
  touched: with uniform routing the expected number of distinct experts hit by N
  tokens choosing k of E is ``E·(1 − (1 − k/E)^N)`` (≤ min(E, N·k)), each ``P_e/tp``
  per GPU. Shared experts and the router are ordinary linear layers.
* element-wise (fused residual-add + RMSNorm twice, SiLU·mul): memory-bound,
  ``N·(16h + 6·I/tp)`` bytes.
* attention: decode reads the whole KV of each sequence and does ``2·H·(d_qk + d_v)``
  FLOPs per context token (H = heads per GPU), so both FLOPs and bytes are
  proportional to the context sum C, and so is their max: ``t = C·max(f/P, k/B)``.
  Prefill of a chunk of n new tokens after c cached ones does ``n·c + n(n+1)/2``
  query-key pairs (causal: half the square) and reads ``(c + n)`` tokens of KV.
  MLA decode uses the absorbed form (attention over the 576-wide latent:
  ``2·H·((r_kv + d_rope) + r_kv)`` FLOPs per context token) and prefill the
  decompressed form (``d_qk = 192``, ``d_v = 128``, plus decompressing cached latents
  through kv_b: ``2·c·r_kv·H·(d_nope + d_v)``), as vLLM does.
* LM head: only the last position of each sequence in the step (vLLM computes logits
  for every scheduled sequence, partial prefills included): ``2·R·h·V/tp`` FLOPs,
  ``h·V/tp`` bf16 weights, fp32 logits.
* embedding gather: ``N·h·2`` bytes read and written.

GEMMs run at the peak of their compute dtype (:mod:`servelab.perf.quant`); attention
runs at the bf16 peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..catalog.models import ModelSpec
from .comm import (alltoall_bytes_factor, allreduce_bytes_factor, inter_node_bytes_per_s,
                   link_bytes_per_s)
from .deployment import Deployment, validate_deployment
from .quant import UNQUANTIZED_BYTES, gemm_compute_dtype, kv_storage_bytes, peak_flops, weight_storage_bytes
from .sharding import attention_params_per_gpu, kv_elems_per_token_per_layer_gpu, kv_heads_per_gpu
from . import shapes

__all__ = ["LinearOp", "Coefficients", "build_coefficients", "ACT_BYTES"]

ACT_BYTES = 2.0   # bf16 activations between operators


@dataclass(frozen=True, slots=True)
class LinearOp:
    """An operator whose cost depends only on the token count N (per GPU)."""
    name: str
    flops_per_token: float
    weight_bytes: float
    act_bytes_per_token: float


@dataclass(frozen=True, kw_only=True)
class Coefficients:
    """Everything the step-time formula needs, precomputed for one deployment."""
    gemm_flops_per_s: float        # peak · compute efficiency, GEMM dtype
    expert_flops_per_s: float      # gemm_flops_per_s · expert_compute (grouped expert GEMMs)
    hbm_bytes_per_s: float         # peak · memory efficiency
    attn_flops_per_s: float        # bf16 peak · attention compute efficiency
    attn_bytes_per_s: float        # peak · attention memory efficiency
    dense_ops: tuple[LinearOp, ...]
    moe_ops: tuple[LinearOp, ...]  # non-routed operators of a MoE layer
    num_dense_layers: int
    num_moe_layers: int
    # routed experts (MoE only)
    num_experts: int
    experts_per_token: int
    expert_flops_per_token: float  # 2·k·P_e/tp
    expert_weight_bytes: float     # one expert's bytes on one GPU (P_e/tp · b)
    expert_act_bytes_per_token: float
    # attention per layer, per GPU
    attn_flops_per_ctx: float      # decode: per context token
    attn_flops_per_pair: float     # prefill: per query-key pair
    attn_decompress_flops_per_ctx: float  # MLA prefill: per cached token
    kv_bytes_per_ctx: float        # KV bytes per token per layer per GPU
    lm_head: LinearOp
    embed_act_bytes_per_token: float
    # communication (seconds per token and fixed seconds per step)
    comm_s_per_token: float
    comm_fixed_s: float
    step_overhead_s: float
    compute_dtype: str
    notes: tuple[str, ...]


def _linear(name: str, weights: float, in_w: float, out_w: float, wb: float) -> LinearOp:
    return LinearOp(name, 2.0 * weights, weights * wb, (in_w + out_w) * ACT_BYTES)


def _attention_ops(m: ModelSpec, tp: int, wb: float) -> list[LinearOp]:
    h = m.hidden_size
    heads = m.num_attention_heads / tp
    w = attention_params_per_gpu(m, tp)
    if m.mla is not None:
        a = m.mla
        q_out = heads * (a.qk_nope_head_dim + a.qk_rope_head_dim)
        kv_out = a.kv_lora_rank + a.qk_rope_head_dim
        o_in = heads * a.v_head_dim
        w_o = o_in * h
        return [_linear("attn_proj", w - w_o, h, q_out + kv_out + heads * (a.qk_nope_head_dim + a.v_head_dim), wb),
                _linear("o_proj", w_o, o_in, h, wb)]
    d = m.head_dim
    q, kv = heads * d, kv_heads_per_gpu(m, tp) * d
    return [_linear("qkv_proj", h * (q + 2 * kv), h, q + 2 * kv, wb),
            _linear("o_proj", q * h, q, h, wb)]


def build_coefficients(dep: Deployment) -> Coefficients:
    """Precompute per-operator constants; ConfigError on an invalid deployment."""
    notes = validate_deployment(dep)
    m, g, e, tp = dep.model, dep.gpu, dep.efficiency, dep.tp
    h = m.hidden_size
    compute_dtype, _ = gemm_compute_dtype(g, dep.weight_dtype)
    wb = weight_storage_bytes(dep.weight_dtype)
    kvb = kv_storage_bytes(dep.kv_dtype)

    attn = _attention_ops(m, tp, wb)
    i_dense = shapes.dense_intermediate(m) / tp
    dense_ops = tuple(attn + [
        _linear("gate_up_proj", 2 * h * i_dense, h, 2 * i_dense, wb),
        _linear("down_proj", h * i_dense, i_dense, h, wb),
        LinearOp("elementwise", 0.0, 0.0, (16 * h + 6 * i_dense) * ACT_BYTES / 2),
    ])
    moe_ops: tuple[LinearOp, ...] = ()
    n_exp = k = 0
    exp_f = exp_w = exp_a = 0.0
    if m.moe is not None:
        mo = m.moe
        n_exp, k = mo.num_experts, mo.experts_per_token
        i_sh = mo.num_shared_experts * mo.shared_expert_intermediate_size / tp
        ops = attn + [LinearOp("router", 2.0 * h * n_exp, h * n_exp * UNQUANTIZED_BYTES,
                               (h + n_exp) * ACT_BYTES)]
        if i_sh:
            ops += [_linear("shared_experts", 3 * h * i_sh, h, h, wb)]
        ops += [LinearOp("elementwise", 0.0, 0.0,
                         (16 * h + 6 * (k * mo.expert_intermediate_size / tp + i_sh)) * ACT_BYTES / 2)]
        moe_ops = tuple(ops)
        p_e = shapes.expert_params(m) / tp
        exp_f = 2.0 * k * p_e
        exp_w = p_e * wb
        exp_a = k * (2 * h / dep.ep + 3 * mo.expert_intermediate_size / tp) * ACT_BYTES

    heads = m.num_attention_heads / tp
    if m.mla is not None:
        a = m.mla
        f_ctx = 2.0 * heads * ((a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank)
        f_pair = 2.0 * heads * (a.qk_nope_head_dim + a.qk_rope_head_dim + a.v_head_dim)
        f_decomp = 2.0 * a.kv_lora_rank * heads * (a.qk_nope_head_dim + a.v_head_dim)
    else:
        f_ctx = f_pair = 4.0 * heads * m.head_dim
        f_decomp = 0.0
    kv_ctx = kv_elems_per_token_per_layer_gpu(m, tp) * kvb

    v_shard = m.vocab_size / tp
    lm_head = LinearOp("lm_head", 2.0 * h * v_shard, h * v_shard * UNQUANTIZED_BYTES,
                       h * ACT_BYTES + v_shard * 4.0)

    # Communication: per token (bandwidth) and per step (latency).
    link = link_bytes_per_s(g) * e.comm
    hid = h * ACT_BYTES
    n_moe = shapes.num_moe_layers(m)
    n_dense = m.num_layers - n_moe
    per_tok = fixed = 0.0
    if tp > 1:
        ar = allreduce_bytes_factor(tp) * hid / link
        n_ar = 2 * n_dense + (2 if dep.ep == 1 else 1) * n_moe
        per_tok += n_ar * ar
        fixed += n_ar * e.comm_latency_s
    if dep.ep > 1 and m.moe is not None:
        per_tok += 2 * n_moe * alltoall_bytes_factor(dep.ep, k) * hid / link
        fixed += 2 * n_moe * e.comm_latency_s
    if dep.pp > 1:
        boundaries = dep.pp - 1
        gpn = max(1, g.gpus_per_node // tp)          # stages that fit in one node
        cross = sum(1 for b in range(1, dep.pp) if b % gpn == 0)
        node_bw = inter_node_bytes_per_s(g) * e.comm
        per_tok += (boundaries - cross) * hid / link + cross * hid / node_bw
        fixed += boundaries * e.comm_latency_s

    return Coefficients(
        gemm_flops_per_s=peak_flops(g, compute_dtype) * e.compute,
        expert_flops_per_s=peak_flops(g, compute_dtype) * e.compute * e.expert_compute,
        hbm_bytes_per_s=g.hbm_bytes_per_s * e.memory,
        attn_flops_per_s=peak_flops(g, "bf16") * e.attention_compute,
        attn_bytes_per_s=g.hbm_bytes_per_s * e.attention_memory,
        dense_ops=dense_ops, moe_ops=moe_ops,
        num_dense_layers=n_dense, num_moe_layers=n_moe,
        num_experts=n_exp, experts_per_token=k,
        expert_flops_per_token=exp_f, expert_weight_bytes=exp_w, expert_act_bytes_per_token=exp_a,
        attn_flops_per_ctx=f_ctx, attn_flops_per_pair=f_pair,
        attn_decompress_flops_per_ctx=f_decomp, kv_bytes_per_ctx=kv_ctx,
        lm_head=lm_head, embed_act_bytes_per_token=2 * hid,
        comm_s_per_token=per_tok, comm_fixed_s=fixed,
        step_overhead_s=e.step_overhead_s,
        compute_dtype=compute_dtype, notes=notes,
    )


def distinct_experts(num_experts: int, k: int, tokens: float) -> float:
    """Expected experts hit when ``tokens`` each pick k of E uniformly: E(1 − (1 − k/E)^N)."""
    if tokens <= 0 or num_experts == 0:
        return 0.0
    return num_experts * (1.0 - math.pow(1.0 - k / num_experts, tokens))


def linear_compute_memory_s(c: Coefficients, n: int) -> tuple[float, float]:
    """(summed FLOP time, summed byte time) of every token-count operator of a step,
    all layers — used to name the bound, not to time the step (that is a sum of maxima)."""
    compute = memory = 0.0
    for ops, layers in ((c.dense_ops, c.num_dense_layers), (c.moe_ops, c.num_moe_layers)):
        for op in ops:
            compute += layers * n * op.flops_per_token / c.gemm_flops_per_s
            memory += layers * (op.weight_bytes + n * op.act_bytes_per_token) / c.hbm_bytes_per_s
    if c.num_moe_layers:
        hit = distinct_experts(c.num_experts, c.experts_per_token, n)
        compute += c.num_moe_layers * n * c.expert_flops_per_token / c.expert_flops_per_s
        memory += c.num_moe_layers * (hit * c.expert_weight_bytes + n * c.expert_act_bytes_per_token) \
            / c.hbm_bytes_per_s
    return compute, memory


__all__ += ["distinct_experts", "linear_compute_memory_s"]
