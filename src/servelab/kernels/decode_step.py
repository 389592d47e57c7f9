"""One decoder layer's decode step, composed from the lab's kernels.

For a batch of B sequences, each with one new token (residual stream x [B, hidden]) and
a resident paged KV cache (context lengths c_b, excluding the new token):

    h  = RMSNorm(x; w_attn)                               rmsnorm
    q, k, v = split(h · W_qkv)                            matmul  [hidden, (H_q+2H_kv)·D]
    cache[c_b] ← k, v                                     index write (torch)
    a  = Attention(q; cache[0..c_b])                      decode_attention (GQA, paged)
    x' = x + a · W_o;  h' = RMSNorm(x'; w_mlp)            matmul, rmsnorm_residual
    g, u = split(h' · W_gate_up)                          matmul  [hidden, 2·ffn]
    y  = x' + (SiLU(g) ⊙ u) · W_down                      torch SiLU·mul, matmul

A Llama layer without rotary embeddings (RoPE is elementwise on q/k and does not change
the memory traffic that dominates decode; it is left out). The step is idempotent —
replaying it rewrites the same cache slots with the same values — so it can be captured
in a CUDA graph once and replayed for timing. Providers: ``triton`` (the lab's kernels),
``eager`` (Hugging Face-style eager RMSNorm, ``torch.matmul``, gather + SDPA). Work counted
in :func:`servelab.kernels.counts.decode_step_work`. Imports torch and triton.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .counts import PAGE_TOKENS, LayerDims
from .decode_attention import decode_attention, decode_attention_reference, decode_attention_sdpa
from .matmul import matmul
from .rmsnorm import rmsnorm, rmsnorm_eager, rmsnorm_reference

__all__ = ["LayerWeights", "DecodeState", "make_layer", "make_state", "decode_step",
           "decode_step_reference", "PROVIDERS"]

PROVIDERS: tuple[str, ...] = ("triton", "eager")


@dataclass(frozen=True, kw_only=True)
class LayerWeights:
    attn_norm: torch.Tensor   # [hidden]
    wqkv: torch.Tensor        # [hidden, (H_q + 2 H_kv) D]
    wo: torch.Tensor          # [H_q D, hidden]
    mlp_norm: torch.Tensor    # [hidden]
    w_gate_up: torch.Tensor   # [hidden, 2 ffn]
    w_down: torch.Tensor      # [ffn, hidden]


@dataclass(frozen=True, kw_only=True)
class DecodeState:
    x: torch.Tensor             # [B, hidden] residual stream of the new tokens
    k_cache: torch.Tensor       # [pages, 16, H_kv, D]
    v_cache: torch.Tensor
    block_tables: torch.Tensor  # [B, max_pages] int32, room for c_b + 1 tokens
    context_lens: torch.Tensor  # [B] int32, c_b (without the new token)
    max_context: int            # host bound on c_b + 1


def make_layer(dims: LayerDims, dtype: torch.dtype, device, gen: torch.Generator) -> LayerWeights:
    """Random weights scaled by 1/sqrt(fan_in) so activations stay O(1)."""
    def w(k: int, n: int) -> torch.Tensor:
        return (torch.randn(k, n, generator=gen, device=device) / math.sqrt(k)).to(dtype)

    def norm() -> torch.Tensor:
        return (1 + 0.1 * torch.randn(dims.hidden, generator=gen, device=device)).to(dtype)

    qkv_n = (dims.heads + 2 * dims.kv_heads) * dims.head_dim
    return LayerWeights(
        attn_norm=norm(), wqkv=w(dims.hidden, qkv_n), wo=w(dims.heads * dims.head_dim, dims.hidden),
        mlp_norm=norm(), w_gate_up=w(dims.hidden, 2 * dims.ffn), w_down=w(dims.ffn, dims.hidden),
    )


def make_state(dims: LayerDims, context_lens: list[int], dtype: torch.dtype, device,
               gen: torch.Generator) -> DecodeState:
    """A batch with resident KV of the given lengths in randomly permuted pages."""
    pages_per = [(c + 1 + PAGE_TOKENS - 1) // PAGE_TOKENS for c in context_lens]
    n_pages = sum(pages_per)
    perm = torch.randperm(n_pages, generator=gen, device=gen.device).cpu()
    table = torch.zeros(len(context_lens), max(pages_per), dtype=torch.int32)
    i = 0
    for b, p in enumerate(pages_per):
        table[b, :p] = perm[i:i + p]
        i += p
    shape = (n_pages, PAGE_TOKENS, dims.kv_heads, dims.head_dim)
    return DecodeState(
        x=torch.randn(len(context_lens), dims.hidden, generator=gen, device=device).to(dtype),
        k_cache=torch.randn(shape, generator=gen, device=device).to(dtype),
        v_cache=torch.randn(shape, generator=gen, device=device).to(dtype),
        block_tables=table.to(device),
        context_lens=torch.tensor(context_lens, dtype=torch.int32, device=device),
        max_context=max(context_lens) + 1,
    )


def _write_kv(state: DecodeState, k: torch.Tensor, v: torch.Tensor) -> None:
    pos = state.context_lens.long()
    page = state.block_tables.gather(1, (pos // PAGE_TOKENS)[:, None]).squeeze(1).long()
    slot = page * PAGE_TOKENS + pos % PAGE_TOKENS
    h, d = k.shape[1], k.shape[2]
    state.k_cache.view(-1, h, d)[slot] = k
    state.v_cache.view(-1, h, d)[slot] = v


def decode_step(weights: LayerWeights, dims: LayerDims, state: DecodeState, *,
                provider: str = "triton", out: torch.Tensor | None = None) -> torch.Tensor:
    """Run the layer's decode step with ``provider``; writes the new K/V into the cache."""
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
    tri = provider == "triton"
    mm = matmul if tri else torch.matmul
    x, b = state.x, state.x.shape[0]
    hq, hkv, d = dims.heads, dims.kv_heads, dims.head_dim
    h = rmsnorm(x, weights.attn_norm, dims.eps) if tri else rmsnorm_eager(x, weights.attn_norm, dims.eps)
    qkv = mm(h, weights.wqkv)
    q = qkv[:, : hq * d].reshape(b, hq, d)
    k = qkv[:, hq * d: (hq + hkv) * d].reshape(b, hkv, d)
    v = qkv[:, (hq + hkv) * d:].reshape(b, hkv, d)
    _write_kv(state, k, v)
    ctx = state.context_lens + 1
    attn_fn = decode_attention if tri else decode_attention_sdpa
    a = attn_fn(q.contiguous(), state.k_cache, state.v_cache, state.block_tables, ctx,
                max_context=state.max_context)
    o = mm(a.reshape(b, hq * d), weights.wo)
    if tri:
        resid = torch.empty_like(x)
        h2 = rmsnorm(o, weights.mlp_norm, dims.eps, residual=x, residual_out=resid)
    else:
        resid = x + o
        h2 = rmsnorm_eager(resid, weights.mlp_norm, dims.eps)
    gu = mm(h2, weights.w_gate_up)
    act = torch.nn.functional.silu(gu[:, : dims.ffn]) * gu[:, dims.ffn:]
    y = mm(act, weights.w_down)
    if out is None:
        return resid + y
    return torch.add(resid, y, out=out)


def decode_step_reference(weights: LayerWeights, dims: LayerDims, state: DecodeState) -> torch.Tensor:
    """fp32 reference on the pre-step state (does not modify the cache)."""
    f = {name: getattr(weights, name).float() for name in LayerWeights.__dataclass_fields__}
    x, b = state.x.float(), state.x.shape[0]
    hq, hkv, d = dims.heads, dims.kv_heads, dims.head_dim
    h, _ = rmsnorm_reference(x, f["attn_norm"], dims.eps)
    qkv = h @ f["wqkv"]
    q = qkv[:, : hq * d].reshape(b, hq, d)
    k = qkv[:, hq * d: (hq + hkv) * d].reshape(b, hkv, d)
    v = qkv[:, (hq + hkv) * d:].reshape(b, hkv, d)
    ref_state = DecodeState(
        x=state.x, k_cache=state.k_cache.float().clone(), v_cache=state.v_cache.float().clone(),
        block_tables=state.block_tables, context_lens=state.context_lens,
        max_context=state.max_context)
    _write_kv(ref_state, k, v)
    a = decode_attention_reference(q, ref_state.k_cache, ref_state.v_cache, state.block_tables,
                                   state.context_lens + 1, max_context=state.max_context)
    resid = x + a.reshape(b, hq * d) @ f["wo"]
    h2, _ = rmsnorm_reference(resid, f["mlp_norm"], dims.eps)
    gu = h2 @ f["w_gate_up"]
    act = torch.nn.functional.silu(gu[:, : dims.ffn]) * gu[:, dims.ffn:]
    return resid + act @ f["w_down"]
