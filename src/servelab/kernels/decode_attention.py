"""Decode attention over a paged KV cache, split-K ("flash-decoding") in Triton.

One query token per sequence attends to its whole context, stored in pages of
``PAGE_TOKENS`` = 16 tokens addressed through a block table (vLLM's PagedAttention
layout, Kwon et al. 2023). Grouped-query attention: H_q query heads share H_kv KV heads
(G = H_q / H_kv). Flash-decoding (Dao et al. 2023, "Flash-Decoding for long-context
inference") splits each sequence's context into S chunks processed in parallel:

  stage 1, grid (B, H_kv, S): for the G query heads of one KV head, online softmax over
    the chunk's tokens (Milakov & Gimelshein 2018) → partial output o_s and
    log-sum-exp ℓ_s (fp32). The G heads are processed together as one [G, D]·[D, N]
    dot, so each K/V element is read once per KV head, not once per query head.
  stage 2, grid (B, H_q): o = Σ_s exp(ℓ_s − ℓ) · o_s with ℓ = log Σ_s exp(ℓ_s).

Layout: q [B, H_q, D]; k_cache, v_cache [num_pages, 16, H_kv, D]; block_tables
[B, max_pages] int32 (page ids); context_lens [B] int32 (≥ 1 each); out [B, H_q, D].
``max_context`` is a host-side bound (≥ every context length) so that the launch needs
no device→host sync and can be captured in a CUDA graph.

Interpreter path: dot operands are upcast to fp32 (the interpreter's bf16 dot is wrong).
On a GPU the softmax weights are rounded to the KV dtype before the p·v dot, as in
FlashAttention. Imports torch and triton.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ._deps import interpreting
from .counts import PAGE_TOKENS
from .matmul import num_sms

__all__ = ["decode_attention", "decode_attention_reference", "gather_kv",
           "decode_attention_sdpa", "decode_attention_eager", "choose_splits", "BLOCK_N"]

BLOCK_N = 64   # tokens per inner iteration (4 pages)


@triton.jit
def _stage1(Q, K, V, BT, CL, PO, PL, sm_scale, tokens_per_split, group, head_dim,
            sqb, sqh, skp, skt, skh, svp, svt, svh, sbt, spb, sph, sps, slb, slh,
            PAGE: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
            BLOCK_N: tl.constexpr, UPCAST: tl.constexpr):
    b = tl.program_id(0)
    kvh = tl.program_id(1)
    split = tl.program_id(2)
    ctx = tl.load(CL + b)
    start = split * tokens_per_split
    end = tl.minimum(start + tokens_per_split, ctx)
    hs = tl.arange(0, BLOCK_H)
    heads = kvh * group + hs
    hmask = hs < group
    d = tl.arange(0, BLOCK_D)
    dmask = d < head_dim
    q = tl.load(Q + b * sqb + heads[:, None] * sqh + d[None, :],
                mask=hmask[:, None] & dmask[None, :], other=0.0)
    if UPCAST:
        q = q.to(tl.float32)
    m_i = tl.full((BLOCK_H,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_H,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_H, BLOCK_D), dtype=tl.float32)
    for t0 in range(start, end, BLOCK_N):
        t = t0 + tl.arange(0, BLOCK_N)
        tmask = t < end
        page = tl.load(BT + b * sbt + t // PAGE, mask=tmask, other=0).to(tl.int64)
        slot = t % PAGE
        kv_mask = tmask[:, None] & dmask[None, :]
        k = tl.load(K + page[:, None] * skp + slot[:, None] * skt + kvh * skh + d[None, :],
                    mask=kv_mask, other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
        s = tl.dot(q, tl.trans(k)) * sm_scale
        s = tl.where(tmask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp(s - m_new[:, None])
        alpha = tl.exp(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(V + page[:, None] * svp + slot[:, None] * svt + kvh * svh + d[None, :],
                    mask=kv_mask, other=0.0)
        if UPCAST:
            v = v.to(tl.float32)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    nonempty = l_i > 0.0
    o = acc / tl.where(nonempty, l_i, 1.0)[:, None]
    lse = tl.where(nonempty, m_i + tl.log(tl.where(nonempty, l_i, 1.0)), float("-inf"))
    tl.store(PO + b * spb + heads[:, None] * sph + split * sps + d[None, :], o,
             mask=hmask[:, None] & dmask[None, :])
    tl.store(PL + b * slb + heads * slh + split, lse, mask=hmask)


@triton.jit
def _stage2(PO, PL, OUT, num_splits, head_dim, spb, sph, sps, slb, slh, sob, soh,
            BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    h = tl.program_id(1)
    s = tl.arange(0, BLOCK_S)
    smask = s < num_splits
    d = tl.arange(0, BLOCK_D)
    dmask = d < head_dim
    lse = tl.load(PL + b * slb + h * slh + s, mask=smask, other=float("-inf"))
    m = tl.max(lse, axis=0)
    w = tl.exp(lse - m)
    w = w / tl.sum(w, axis=0)
    o = tl.load(PO + b * spb + h * sph + s[:, None] * sps + d[None, :],
                mask=smask[:, None] & dmask[None, :], other=0.0)
    out = tl.sum(o * w[:, None], axis=0)
    tl.store(OUT + b * sob + h * soh + d, out.to(OUT.dtype.element_ty), mask=dmask)


def choose_splits(batch: int, heads_kv: int, max_context: int, sms: int) -> int:
    """Splits per sequence: enough programs for ~2 waves over the SMs, never more splits
    than BLOCK_N-token chunks of the longest context."""
    want = math.ceil(2 * sms / max(1, batch * heads_kv))
    return max(1, min(want, math.ceil(max_context / BLOCK_N), 256))


def decode_attention(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
    block_tables: torch.Tensor, context_lens: torch.Tensor, *, max_context: int,
    sm_scale: float | None = None, num_splits: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Split-K paged decode attention; returns out [B, H_q, D] in q's dtype."""
    batch, heads_q, head_dim = q.shape
    _, page, heads_kv, d_k = k_cache.shape
    if page != PAGE_TOKENS or d_k != head_dim or heads_q % heads_kv:
        raise ValueError(
            f"need page size {PAGE_TOKENS}, matching head_dim and H_q % H_kv == 0; got "
            f"page {page}, head_dim {head_dim}/{d_k}, heads {heads_q}/{heads_kv}")
    if q.stride(-1) != 1 or k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1:
        raise ValueError("q, k_cache and v_cache need a contiguous last dim")
    group = heads_q // heads_kv
    sm_scale = 1.0 / math.sqrt(head_dim) if sm_scale is None else sm_scale
    splits = num_splits or choose_splits(batch, heads_kv, max_context, num_sms(q.device))
    per_split = math.ceil(math.ceil(max_context / splits) / BLOCK_N) * BLOCK_N
    splits = math.ceil(max_context / per_split)
    out = torch.empty_like(q) if out is None else out
    po = torch.empty((batch, heads_q, splits, head_dim), dtype=torch.float32, device=q.device)
    pl = torch.empty((batch, heads_q, splits), dtype=torch.float32, device=q.device)
    block_d = max(16, triton.next_power_of_2(head_dim))
    _stage1[(batch, heads_kv, splits)](
        q, k_cache, v_cache, block_tables, context_lens, po, pl, sm_scale, per_split,
        group, head_dim, q.stride(0), q.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2), block_tables.stride(0),
        po.stride(0), po.stride(1), po.stride(2), pl.stride(0), pl.stride(1),
        PAGE=PAGE_TOKENS, BLOCK_H=max(16, triton.next_power_of_2(group)), BLOCK_D=block_d,
        BLOCK_N=BLOCK_N, UPCAST=interpreting() and q.dtype != torch.float32,
        num_warps=4, num_stages=2,
    )
    _stage2[(batch, heads_q)](
        po, pl, out, splits, head_dim, po.stride(0), po.stride(1), po.stride(2),
        pl.stride(0), pl.stride(1), out.stride(0), out.stride(1),
        BLOCK_S=triton.next_power_of_2(splits), BLOCK_D=block_d, num_warps=4,
    )
    return out


def gather_kv(cache: torch.Tensor, block_tables: torch.Tensor, max_context: int) -> torch.Tensor:
    """Dense [B, H_kv, max_context, D] copy of a paged cache (positions past a sequence's
    context hold whatever its pages hold; mask them)."""
    pages = math.ceil(max_context / PAGE_TOKENS)
    g = cache[block_tables[:, :pages].long()]           # [B, pages, 16, H_kv, D]
    b, _, _, h, d = g.shape
    return g.reshape(b, pages * PAGE_TOKENS, h, d)[:, :max_context].transpose(1, 2)


def _mask(context_lens: torch.Tensor, max_context: int) -> torch.Tensor:
    pos = torch.arange(max_context, device=context_lens.device)
    return pos[None, :] < context_lens[:, None].long()  # [B, T]


def decode_attention_reference(q, k_cache, v_cache, block_tables, context_lens, *,
                               max_context, sm_scale=None):
    """fp32 math reference: gather, repeat KV heads, masked softmax(q·kᵀ)·v."""
    head_dim = q.shape[-1]
    sm_scale = 1.0 / math.sqrt(head_dim) if sm_scale is None else sm_scale
    group = q.shape[1] // k_cache.shape[2]
    k = gather_kv(k_cache, block_tables, max_context).float().repeat_interleave(group, 1)
    v = gather_kv(v_cache, block_tables, max_context).float().repeat_interleave(group, 1)
    s = torch.einsum("bhd,bhtd->bht", q.float(), k) * sm_scale
    s = s.masked_fill(~_mask(context_lens, max_context)[:, None, :], float("-inf"))
    return torch.einsum("bht,bhtd->bhd", torch.softmax(s, dim=-1), v)


def decode_attention_eager(q, k_cache, v_cache, block_tables, context_lens, *,
                           max_context, sm_scale=None, out=None):
    """Naive eager baseline: gather pages into dense KV, repeat KV heads, masked matmul,
    softmax in fp32, matmul — in the input dtype except the softmax."""
    head_dim = q.shape[-1]
    sm_scale = 1.0 / math.sqrt(head_dim) if sm_scale is None else sm_scale
    group = q.shape[1] // k_cache.shape[2]
    k = gather_kv(k_cache, block_tables, max_context).repeat_interleave(group, 1)
    v = gather_kv(v_cache, block_tables, max_context).repeat_interleave(group, 1)
    s = torch.matmul(q.unsqueeze(2), k.transpose(-1, -2)).squeeze(2) * sm_scale
    s = s.float().masked_fill(~_mask(context_lens, max_context)[:, None, :], float("-inf"))
    p = torch.softmax(s, dim=-1).to(q.dtype)
    o = torch.matmul(p.unsqueeze(2), v).squeeze(2)
    if out is not None:
        out.copy_(o)
        return out
    return o


def decode_attention_sdpa(q, k_cache, v_cache, block_tables, context_lens, *,
                          max_context, sm_scale=None, out=None, dense_kv=None):
    """SDPA baseline: gather pages into dense KV (or use ``dense_kv`` = (k, v) already
    dense, [B, H_kv, T, D]), then ``F.scaled_dot_product_attention`` with GQA and a mask."""
    k, v = dense_kv if dense_kv is not None else (
        gather_kv(k_cache, block_tables, max_context), gather_kv(v_cache, block_tables, max_context))
    mask = _mask(context_lens, k.shape[2])[:, None, None, :]
    o = torch.nn.functional.scaled_dot_product_attention(
        q.unsqueeze(2), k, v, attn_mask=mask, scale=sm_scale, enable_gqa=True).squeeze(2)
    if out is not None:
        out.copy_(o)
        return out
    return o
