"""Roofline time of one engine step (see docs/perf.md and :mod:`servelab.perf.roofline`).

For a step with N tokens (prefill chunk tokens + one per decoding sequence), R logit
rows (one per sequence in the step) and attention work A::

    t_step = Σ_layers Σ_ops max(F_op(N)/P, B_op(N)/BW)       linear layers, experts, norms
           + L · max(F_attn/P_attn, B_attn/BW_attn)          attention (all sequences)
           + t_lm_head(R) + R · seq_overhead_s + t_embed(N)
           + N · c_comm + t_comm_fixed                       TP/EP/PP communication
           + step_overhead_s

For a pure-decode step of B sequences whose contexts sum to C, every term but attention
depends on B only, and attention's FLOPs and bytes are both ∝ C, so

    t_step(B, C) = t0(B) + t1 · C   exactly,  t1 = L · max(f_ctx/P_attn, k_ctx/BW_attn).

Pipeline parallelism: ``step_time_s`` is the latency of one step through all ``pp``
stages (stage times add up, plus the point-to-point sends). In steady state vLLM keeps
``pp`` micro-batches in flight, so throughput is ``pp`` times higher than
``batch / step_time_s``; :attr:`StepModel.pipeline_depth` exposes that factor and
:mod:`servelab.perf.answers` uses it. Pipeline bubbles of a single batch are thus the
``(pp − 1)/pp`` idle fraction of each stage, already implied by the latency sum.
"""

from __future__ import annotations

from .deployment import Deployment, StepBatch
from .roofline import (Coefficients, LinearOp, build_coefficients, distinct_experts,
                       linear_compute_memory_s)

__all__ = ["StepModel", "StepBreakdown"]


def _op_time(op: LinearOp, n: float, p: float, bw: float) -> float:
    c = n * op.flops_per_token / p
    m = (op.weight_bytes + n * op.act_bytes_per_token) / bw
    return c if c > m else m


class StepBreakdown(dict):
    """Seconds per component of one step (``linear``, ``attention``, ``lm_head``,
    ``comm``, ``overhead``) plus ``bound``: "compute" or "memory" for the linear part."""


class StepModel:
    """Step times for one deployment; coefficients precomputed once (hot path of the simulator)."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.coeffs: Coefficients = build_coefficients(dep)
        c = self.coeffs
        layers = c.num_dense_layers + c.num_moe_layers
        self._layers = layers
        self._t1 = layers * max(c.attn_flops_per_ctx / c.attn_flops_per_s,
                                c.kv_bytes_per_ctx / c.attn_bytes_per_s)
        self._linear_cache: dict[int, float] = {}
        self._affine_cache: dict[int, tuple[float, float]] = {}
        self._lm_head_cache: dict[int, float] = {}
        self.pipeline_depth = dep.pp
        self._seq_overhead_s = dep.efficiency.seq_overhead_s
        self._attn_coeffs = (c.attn_flops_per_pair, c.attn_decompress_flops_per_ctx, c.attn_flops_per_ctx,
                             c.kv_bytes_per_ctx, c.attn_flops_per_s, c.attn_bytes_per_s)

    # -- parts -------------------------------------------------------------------------
    def _linear_time(self, n: int) -> float:
        """Everything that depends on the token count only (per step, all layers)."""
        t = self._linear_cache.get(n)
        if t is not None:
            return t
        c = self.coeffs
        p, bw = c.gemm_flops_per_s, c.hbm_bytes_per_s
        t = c.num_dense_layers * sum(_op_time(op, n, p, bw) for op in c.dense_ops)
        if c.num_moe_layers:
            moe = sum(_op_time(op, n, p, bw) for op in c.moe_ops)
            hit = distinct_experts(c.num_experts, c.experts_per_token, n)
            flops = n * c.expert_flops_per_token / c.expert_flops_per_s
            mem = (hit * c.expert_weight_bytes + n * c.expert_act_bytes_per_token) / bw
            moe += flops if flops > mem else mem
            t += c.num_moe_layers * moe
        t += n * c.embed_act_bytes_per_token / bw
        t += n * c.comm_s_per_token + c.comm_fixed_s + c.step_overhead_s
        if len(self._linear_cache) < 65536:
            self._linear_cache[n] = t
        return t

    def _lm_head_time(self, rows: int) -> float:
        c = self.coeffs
        return _op_time(c.lm_head, rows, c.gemm_flops_per_s, c.hbm_bytes_per_s) \
            + rows * self._seq_overhead_s

    def _attention_time(self, batch: StepBatch) -> float:
        c = self.coeffs
        pairs = kv_read = decomp = 0.0
        for n, ctx in batch.prefill_chunks:
            pairs += n * ctx + n * (n + 1) / 2
            kv_read += ctx + n
            decomp += ctx
        flops = (pairs * c.attn_flops_per_pair + decomp * c.attn_decompress_flops_per_ctx
                 + batch.decode_context_sum * c.attn_flops_per_ctx)
        nbytes = (kv_read + batch.decode_context_sum) * c.kv_bytes_per_ctx
        return self._layers * max(flops / c.attn_flops_per_s, nbytes / c.attn_bytes_per_s)

    # -- public --------------------------------------------------------------------------
    def decode_affine(self, num_decode: int) -> tuple[float, float]:
        """(t0_s, t1_s_per_context_token): a pure-decode step of ``num_decode`` sequences
        whose contexts sum to C takes exactly ``t0 + t1 * C`` seconds."""
        r = self._affine_cache.get(num_decode)
        if r is None:
            if num_decode <= 0:
                r = (0.0, 0.0)
            else:
                r = (self._linear_time(num_decode) + self._lm_head_time(num_decode), self._t1)
            self._affine_cache[num_decode] = r
        return r

    def step_time_s(self, batch: StepBatch) -> float:
        """Wall time of one engine step processing ``batch`` (0 for an empty batch)."""
        if not batch.prefill_chunks:
            t0, t1 = self.decode_affine(batch.num_decode)
            return t0 + t1 * batch.decode_context_sum
        return self._general_time(batch)

    def _general_time(self, batch: StepBatch) -> float:
        return self.mixed_time_s(batch.prefill_chunks, batch.num_decode, batch.decode_context_sum)

    def mixed_time_s(self, chunks, num_decode: int, decode_context_sum: int) -> float:
        """``step_time_s`` of a step with prefill ``chunks`` ((new_tokens, context_before)
        pairs, any sequence) and ``num_decode`` decoders whose contexts sum to
        ``decode_context_sum``, without building a :class:`StepBatch` (the simulator's
        hot path). One pass over the chunks gives the token count and the attention sums
        of :meth:`_attention_time`, added in the same order (same floating-point result)."""
        n = num_decode
        pairs = kv_read = decomp = 0.0
        for c, ctx in chunks:
            n += c
            pairs += c * ctx + c * (c + 1) / 2
            kv_read += ctx + c
            decomp += ctx
        if n <= 0:
            return 0.0
        rows = len(chunks) + num_decode
        lm = self._lm_head_cache.get(rows)
        if lm is None:
            lm = self._lm_head_time(rows)
            if len(self._lm_head_cache) < 65536:
                self._lm_head_cache[rows] = lm
        lin = self._linear_cache.get(n)
        if lin is None:
            lin = self._linear_time(n)
        f_pair, f_dec, f_ctx, kvb, p_attn, bw_attn = self._attn_coeffs
        flops = pairs * f_pair + decomp * f_dec + decode_context_sum * f_ctx
        nbytes = (kv_read + decode_context_sum) * kvb
        tc = flops / p_attn
        tm = nbytes / bw_attn
        return lin + lm + self._layers * (tc if tc >= tm else tm)     # max(tc, tm)

    def breakdown(self, batch: StepBatch) -> StepBreakdown:
        """Seconds per component, for tables and explanations (not for the hot path)."""
        c = self.coeffs
        n = sum(ch[0] for ch in batch.prefill_chunks) + batch.num_decode
        rows = len(batch.prefill_chunks) + batch.num_decode
        if n <= 0:
            return StepBreakdown(linear=0.0, attention=0.0, lm_head=0.0, comm=0.0,
                                 overhead=0.0, bound="memory")
        comm = n * c.comm_s_per_token + c.comm_fixed_s
        compute, memory = linear_compute_memory_s(c, n)
        return StepBreakdown(
            linear=self._linear_time(n) - comm - c.step_overhead_s,
            attention=self._attention_time(batch),
            lm_head=self._lm_head_time(rows),
            comm=comm, overhead=c.step_overhead_s,
            bound="compute" if compute > memory else "memory",
        )
