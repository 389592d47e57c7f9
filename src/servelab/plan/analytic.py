"""Steps 2, 3, 5, 6 and 8 for one candidate, from the analytical performance model.

Everything here comes from :mod:`servelab.perf` (memory budget and roofline step
times); this module only evaluates it at the workload's lengths.

* Step 2/3 — weight bytes (whole replica and per GPU) and KV bytes per token.
* Step 5 — KV capacity (tokens) → max concurrency at the workload's mean context
  ``in_mean + out_mean`` and at its p95 context, capped by ``max_num_seqs``.
* Step 6 — roofline. Ridge point ``I* = peak FLOP/s / HBM bytes/s`` (FLOP/byte, GEMM
  compute dtype). Operational intensity of a decode step of batch B at average
  context c̄ = in_mean + out_mean/2 (per replica):
  ``I(B) = (2·P_active·B + 4·L·H·d·B·c̄) / (W + B·c̄·kv_bytes_per_token)``;
  of a lone prefill of n tokens: ``(2·P_active·n + 2·L·H·d·n²) / (W + n·kv_bytes_per_token)``.
  Bound type = compute when I > I*, memory otherwise. Times are the perf model's.
* Step 8 — latency–throughput curve: a decode step of B sequences at c̄ takes
  ``TPOT(B) = t0(B) + t1·B·c̄`` (``StepModel.decode_affine``), giving B/TPOT output
  tokens/s. The largest B with TPOT(B) ≤ the TPOT SLO is the SLO batch; by Little's law
  the request rate that keeps B sequences decoding is ``λ_B = B / (out_mean · TPOT(B))``.
* Saturation rate (SLO-free) of one replica, at full concurrency B_max (KV- or
  ``max_num_seqs``-limited): each step decodes B_max sequences and prefills
  ``p = B_max · in_mean / out_mean`` prompt tokens, so
  ``λ_sat = B_max / (out_mean · t_step(B_max decodes + p prefill tokens))``
  (:func:`saturation_rps`), with ``in_mean`` reduced by the workload's cacheable
  fraction (shared prefixes, conversation history) as an ideal prefix cache would.
  The capacity search starts there and may gallop above it.

Units: bytes, seconds, FLOP/byte, tokens/s, requests/s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..perf import Deployment, StepBatch, StepModel, memory_budget
from ..perf.memory import kv_bytes_per_token, weight_bytes_total
from ..perf.quant import gemm_compute_dtype, peak_flops
from ..perf.shapes import active_params

__all__ = ["CurvePoint", "Analytic", "analyze", "saturation_rps", "DEFAULT_CURVE_BATCHES"]

DEFAULT_CURVE_BATCHES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


@dataclass(frozen=True, kw_only=True)
class CurvePoint:
    batch: int
    tpot_s: float
    output_tokens_per_s: float
    request_rate_rps: float          # Little's law: B / (out_mean · TPOT)
    intensity_flop_per_byte: float
    bound: str


@dataclass(frozen=True, kw_only=True)
class Analytic:
    feasible: bool
    reason: str
    notes: tuple[str, ...] = ()
    memory: dict[str, float] = field(default_factory=dict)    # step 5 breakdown (bytes, per GPU)
    weight_bytes_replica: float = 0.0
    weight_bytes_model: float = 0.0                            # unsharded, this dtype
    kv_bytes_per_token: float = 0.0
    kv_capacity_tokens: int = 0
    max_concurrency_mean_ctx: int = 0
    max_concurrency_p95_ctx: int = 0
    ridge_flop_per_byte: float = 0.0
    prefill_s: float = 0.0                                     # lone prompt of in_p50 tokens
    prefill_intensity: float = 0.0
    prefill_bound: str = ""
    decode_step_b1_s: float = 0.0
    curve: tuple[CurvePoint, ...] = ()
    slo_batch: int = 0                                         # largest B with TPOT ≤ SLO
    slo_rate_rps: float = 0.0                                  # λ at slo_batch
    saturation_rps: float = 0.0
    compute_dtype: str = "bf16"
    peak_flops_per_s: float = 0.0                              # GEMM dtype, dense, per GPU
    hbm_bytes_per_s: float = 0.0                               # per GPU

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["curve"] = [asdict(p) for p in self.curve]
        d["notes"] = list(self.notes)
        return d


def _decode_tpot(sm: StepModel, b: int, ctx: float) -> float:
    t0, t1 = sm.decode_affine(b)
    return t0 + t1 * b * ctx


def saturation_rps(sm: StepModel, *, batch: int, in_mean: float, out_mean: float, c_avg: float,
                   token_budget: int) -> float:
    """Steady state at full concurrency: every step decodes ``batch`` sequences and
    prefills ``p = batch · in_mean / out_mean`` prompt tokens (each request's prompt
    spread over its output steps, as chunked prefill does), so
    ``λ_sat = batch / (out_mean · t_step(batch, p))``. Mixed steps read the weights once,
    which is why prefill is nearly free while decode is memory-bound."""
    p = min(token_budget, max(0, round(batch * in_mean / max(out_mean, 1.0))))
    chunks = ((p, 0),) if p else ()
    t = sm.step_time_s(StepBatch(prefill_chunks=chunks, num_decode=batch,
                                 decode_context_sum=round(batch * c_avg)))
    return batch / (max(out_mean, 1.0) * t)


def analyze(dep: Deployment, *, in_mean: float, in_p50: float, out_mean: float,
            ctx_p95: float, tpot_slo_s: float | None, cached_fraction: float = 0.0) -> Analytic:
    """The analytic view of one deployment at the workload's lengths (module docstring)."""
    budget = memory_budget(dep)
    mem = {"gpu_memory_bytes": budget.gpu_memory_bytes, "usable_bytes": budget.usable_bytes,
           "weight_bytes": budget.weight_bytes, "activation_bytes": budget.activation_bytes,
           "overhead_bytes": budget.overhead_bytes, "kv_bytes": budget.kv_bytes}
    w_model = weight_bytes_total(dep.model, dep.weight_dtype)
    kvpt = kv_bytes_per_token(dep.model, dep.kv_dtype)
    notes = tuple(budget.notes)
    if not budget.feasible:
        return Analytic(feasible=False, reason=budget.reason, notes=notes, memory=mem,
                        weight_bytes_model=w_model, kv_bytes_per_token=kvpt)
    mean_ctx = max(1, round(in_mean + out_mean))
    cap_mean = min(budget.max_concurrency(mean_ctx), dep.max_num_seqs)
    cap_p95 = min(budget.max_concurrency(max(1, round(ctx_p95))), dep.max_num_seqs)
    if cap_mean < 1:
        return Analytic(feasible=False, notes=notes, memory=mem, weight_bytes_model=w_model,
                        kv_bytes_per_token=kvpt, kv_capacity_tokens=budget.kv_capacity_tokens,
                        reason=f"KV cache holds {budget.kv_capacity_tokens} tokens, less than one "
                               f"request's mean context of {mean_ctx} tokens")
    sm = StepModel(dep)
    cdtype, _ = gemm_compute_dtype(dep.gpu, dep.weight_dtype)
    peak = peak_flops(dep.gpu, cdtype)
    ridge = peak / dep.gpu.hbm_bytes_per_s
    m = dep.model
    p_act = float(active_params(m))
    attn_w = m.num_layers * m.num_attention_heads * m.head_dim   # L·H·d
    w_rep = budget.weight_bytes_per_replica or w_model
    c_avg = in_mean + out_mean / 2.0

    def decode_intensity(b: int) -> float:
        return (2 * p_act * b + 4 * attn_w * b * c_avg) / (w_rep + b * c_avg * kvpt)

    n = max(1, round(in_p50))
    prefill_s = sm.step_time_s(StepBatch(prefill_chunks=((n, 0),)))
    pre_int = (2 * p_act * n + 2 * attn_w * n * n) / (w_rep + n * kvpt)
    batches = sorted({b for b in DEFAULT_CURVE_BATCHES if b <= cap_mean} | {cap_mean})
    curve = []
    for b in batches:
        tpot = _decode_tpot(sm, b, c_avg)
        inten = decode_intensity(b)
        curve.append(CurvePoint(batch=b, tpot_s=tpot, output_tokens_per_s=b / tpot,
                                request_rate_rps=b / (out_mean * tpot) if out_mean > 0 else 0.0,
                                intensity_flop_per_byte=inten,
                                bound="compute" if inten > ridge else "memory"))
    slo_b = 0
    if tpot_slo_s is None:
        slo_b = cap_mean
    elif _decode_tpot(sm, 1, c_avg) <= tpot_slo_s:
        lo, hi = 1, cap_mean                       # TPOT(B) is non-decreasing in B
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _decode_tpot(sm, mid, c_avg) <= tpot_slo_s:
                lo = mid
            else:
                hi = mid - 1
        slo_b = lo
    slo_rate = slo_b / (out_mean * _decode_tpot(sm, slo_b, c_avg)) if slo_b and out_mean > 0 else 0.0
    sat = saturation_rps(sm, batch=cap_mean, in_mean=in_mean * (1.0 - cached_fraction), out_mean=out_mean,
                         c_avg=c_avg,
                         token_budget=dep.max_num_batched_tokens)
    return Analytic(
        feasible=True, reason="", notes=notes, memory=mem, weight_bytes_replica=w_rep,
        weight_bytes_model=w_model, kv_bytes_per_token=kvpt,
        kv_capacity_tokens=budget.kv_capacity_tokens, max_concurrency_mean_ctx=cap_mean,
        max_concurrency_p95_ctx=cap_p95, ridge_flop_per_byte=ridge, prefill_s=prefill_s,
        prefill_intensity=pre_int, prefill_bound="compute" if pre_int > ridge else "memory",
        decode_step_b1_s=_decode_tpot(sm, 1, c_avg), curve=tuple(curve), slo_batch=slo_b,
        slo_rate_rps=slo_rate, saturation_rps=sat, compute_dtype=cdtype, peak_flops_per_s=peak,
        hbm_bytes_per_s=dep.gpu.hbm_bytes_per_s)
