"""Derived answers: TTFT of a lone request, decode speed vs batch, ridge point, and the
maximum offline output throughput of one replica.

**TTFT of a lone request** (empty engine): the prompt of I tokens is prefilled in
chunks of at most ``max_num_batched_tokens`` (chunked prefill); each chunk is one step
whose attention sees the chunks before it::

    ttft = t_req + Σ_j t_step(prefill chunk n_j after c_j cached tokens)

The first output token is sampled at the end of the last chunk; ``t_req`` is the
engine's fixed per-request cost (``Efficiency.request_overhead_s``, 0 unless an engine
profile of :mod:`servelab.perf.engines` sets it).

**Decode speed**: a step of B sequences each holding ``context`` tokens takes
``t_step(B, C = B·context)``; per-sequence speed is ``1/t_step`` tokens/s and the
replica's is ``B/t_step``.

**Ridge point**: the smallest decode batch whose weight GEMMs are compute-bound
(FLOP time ≥ byte time). Attention never turns compute-bound in decode: its
arithmetic intensity is about ``n_heads/n_kv_heads`` FLOP per KV byte whatever B.

**Maximum offline throughput** (all requests queued, fixed I input and O output
tokens). The concurrency is the number of sequences whose full KV (I + O tokens,
reserved up front as TensorRT-LLM's guaranteed-no-evict scheduler does and as
vLLM needs to avoid preemption) fits, capped by ``max_num_seqs``::

    B = min(max_num_seqs, ⌊kv_blocks / ⌈(I + O)/block⌉⌋)

Each request costs I prefill rows and O − 1 decode rows (its first output token comes
with the last prefill chunk) and yields O tokens. In steady state each finished
request is replaced by a new one, so an average step carries prefill and decode rows
in the ratio I : (O − 1). Without a token budget a request lives O steps (one to
prefill, O − 1 to decode), so a step carries ``B·(I + O − 1)/O`` rows; the budget caps
it::

    N = min(max_num_batched_tokens, B·(I + O − 1)/O)
    p = N·I/(I + O − 1) prefill rows,  d = N − p decode rows
    output tokens per step = N·O/(I + O − 1)
    throughput = N·O/(I + O − 1) / t_step(p prefill rows, d decode rows)

Decoding sequences hold I + O/2 tokens on average; prefill rows are whole prompts
(⌊p/I⌋ of them) plus a partial chunk at its average position in the prompt.
With pipeline parallelism, ``pp`` micro-batches of B/pp sequences are in flight and a
micro-batch leaves the pipeline every ``t_step/pp``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .deployment import StepBatch
from .memory import MemoryBudget
from .roofline import linear_compute_memory_s
from .step import StepModel

__all__ = [
    "DecodePoint", "OfflineThroughput", "ttft_s", "decode_point", "ridge_point",
    "offline_throughput", "step_bound",
]


@dataclass(frozen=True, kw_only=True)
class DecodePoint:
    batch: int
    context_tokens: int
    step_s: float
    tokens_per_s: float            # whole replica: batch / step
    tokens_per_s_per_seq: float    # 1 / step
    bound: str                     # "compute" | "memory" (whole step, all operators)


@dataclass(frozen=True, kw_only=True)
class OfflineThroughput:
    concurrency: int               # sequences in flight
    limited_by: str                # "kv_cache" | "max_num_seqs" | "infeasible"
    rows_per_step: float           # prefill + decode token rows per step
    prefill_rows: int
    decode_rows: int
    step_s: float
    output_tokens_per_s: float     # whole replica
    requests_per_s: float


def step_bound(sm: StepModel, batch: StepBatch) -> str:
    """"compute" when the step's summed FLOP time exceeds its summed byte time."""
    c = sm.coeffs
    n = sum(ch[0] for ch in batch.prefill_chunks) + batch.num_decode
    compute, memory = linear_compute_memory_s(c, n)
    pairs = sum(k * ctx + k * (k + 1) / 2 for k, ctx in batch.prefill_chunks)
    kv = sum(k + ctx for k, ctx in batch.prefill_chunks) + batch.decode_context_sum
    layers = c.num_dense_layers + c.num_moe_layers
    compute += layers * (pairs * c.attn_flops_per_pair
                         + batch.decode_context_sum * c.attn_flops_per_ctx) / c.attn_flops_per_s
    memory += layers * kv * c.kv_bytes_per_ctx / c.attn_bytes_per_s
    return "compute" if compute > memory else "memory"


def ttft_s(sm: StepModel, input_tokens: int) -> float:
    """Time to first token of a lone request with ``input_tokens`` of prompt, including
    the engine's fixed per-request cost ``Efficiency.request_overhead_s``."""
    budget = sm.dep.max_num_batched_tokens
    total, done = sm.dep.efficiency.request_overhead_s, 0
    while done < input_tokens:
        n = min(budget, input_tokens - done)
        total += sm.step_time_s(StepBatch(prefill_chunks=((n, done),)))
        done += n
    return total


def decode_point(sm: StepModel, batch: int, context_tokens: int) -> DecodePoint:
    """Decode step of ``batch`` sequences each holding ``context_tokens`` tokens."""
    b = StepBatch(num_decode=batch, decode_context_sum=batch * context_tokens)
    t = sm.step_time_s(b)
    return DecodePoint(batch=batch, context_tokens=context_tokens, step_s=t,
                       tokens_per_s=batch / t, tokens_per_s_per_seq=1.0 / t,
                       bound=step_bound(sm, b))


def _linear_compute_bound(sm: StepModel, n: int) -> bool:
    compute, memory = linear_compute_memory_s(sm.coeffs, n)
    return compute >= memory


def ridge_point(sm: StepModel, limit: int = 1 << 20) -> int | None:
    """Smallest decode batch whose weight GEMMs are compute-bound (None above ``limit``)."""
    if _linear_compute_bound(sm, 1):
        return 1
    hi = 2
    while not _linear_compute_bound(sm, hi):
        hi *= 2
        if hi > limit:
            return None
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _linear_compute_bound(sm, mid):
            hi = mid
        else:
            lo = mid
    return hi


def _prefill_chunks(rows: int, input_tokens: int) -> tuple[tuple[int, int], ...]:
    if rows <= 0:
        return ()
    whole, rest = divmod(rows, input_tokens)
    chunks = [(input_tokens, 0)] * whole
    if rest:
        chunks.append((rest, (input_tokens - rest) // 2))
    return tuple(chunks)


def offline_throughput(sm: StepModel, budget: MemoryBudget, input_tokens: int,
                       output_tokens: int) -> OfflineThroughput:
    """Steady-state output tokens/s of one replica with every request queued (see module doc)."""
    dep = sm.dep
    i, o = max(1, input_tokens), max(1, output_tokens)
    kv_limit = budget.max_concurrency(i + o)
    b = min(dep.max_num_seqs, kv_limit)
    if b < 1:
        return OfflineThroughput(concurrency=0, limited_by="infeasible", rows_per_step=0.0,
                                 prefill_rows=0, decode_rows=0, step_s=math.inf,
                                 output_tokens_per_s=0.0, requests_per_s=0.0)
    limited_by = "kv_cache" if kv_limit < dep.max_num_seqs else "max_num_seqs"
    pp = dep.pp
    micro = max(1.0, b / pp)
    work = i + o - 1
    rows = min(float(dep.max_num_batched_tokens), micro * work / o)
    p = int(round(rows * i / work))
    d = max(0, int(round(rows)) - p)
    if p == 0 and d == 0:
        d = 1
    batch = StepBatch(prefill_chunks=_prefill_chunks(p, i), num_decode=d,
                      decode_context_sum=int(round(d * (i + o / 2))))
    t = sm.step_time_s(batch)
    interval = t / pp
    out_per_step = (p + d) * o / work
    return OfflineThroughput(
        concurrency=b, limited_by=limited_by, rows_per_step=float(p + d),
        prefill_rows=p, decode_rows=d, step_s=t,
        output_tokens_per_s=out_per_step / interval,
        requests_per_s=out_per_step / interval / o,
    )
