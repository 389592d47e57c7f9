"""Hand-counted memory traffic and arithmetic of every kernel in the lab.

Bytes are the *compulsory* DRAM traffic: every input element read once, every output
element written once, nothing re-read (perfect caching of reused tiles). Achieved GB/s
= bytes / time is therefore a lower bound on the real traffic rate, and a kernel can
only approach 100% of copy bandwidth if it is this efficient. FLOPs count a multiply
and an add as two FLOPs; elementwise ops count one FLOP each. Decimal units throughout
(GB = 1e9 B, TFLOP = 1e12 FLOP; :mod:`servelab.units`).

Per kernel (b = bytes per element of the storage dtype):

- ``rmsnorm``            y = x·rsqrt(mean(x²)+eps)·w over rows×hidden:
  bytes = rows·hidden·(1 read + 1 write)·b + hidden·b (weight, read once),
  FLOPs = 4·rows·hidden (square, sum, scale by rstd, scale by w).
- ``rmsnorm_residual``   s = x + r; r_out = s; y = rmsnorm(s):
  bytes = rows·hidden·(2 reads + 2 writes)·b + hidden·b, FLOPs = 5·rows·hidden.
- ``matmul`` / ``matmul_persistent``  C[M,N] = A[M,K]·B[K,N]:
  bytes = (M·K + K·N + M·N)·b, FLOPs = 2·M·N·K.
- ``decode_attention``   one query token per sequence, paged KV (page 16 tokens):
  bytes = Σctx·2·H_kv·D·b (K and V) + 2·B·H_q·D·b (q read, out write)
          + Σ⌈ctx/16⌉·4 (int32 block-table entries) + B·4 (context lengths),
  FLOPs = 4·Σctx·H_q·D (q·k and p·v; softmax exps not counted).
  The split-K partials (fp32) are not compulsory and not counted.
- ``decode_step``        one decoder layer, one new token per sequence: the weights of
  the QKV, O, gate/up and down projections and both norms, read once; the KV cache read
  by attention (context + the new token) and the new K/V written; activations in and out
  (B·hidden·b each). FLOPs = 2·B·(weight elements of the projections) + attention FLOPs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..units import dtype_bytes

__all__ = [
    "Work", "PAGE_TOKENS", "rmsnorm_work", "matmul_work", "decode_attention_work",
    "LayerDims", "LLAMA_3_1_8B_LAYER", "decode_step_work",
]

# Tokens per KV-cache page (vLLM's default block size).
PAGE_TOKENS = 16
INT32_BYTES = 4


@dataclass(frozen=True, kw_only=True, slots=True)
class Work:
    """Compulsory traffic and arithmetic of one kernel call."""

    bytes: float
    flops: float

    @property
    def intensity_flop_per_byte(self) -> float:
        return self.flops / self.bytes if self.bytes else math.inf


def rmsnorm_work(*, rows: int, hidden: int, dtype: str, residual: bool = False) -> Work:
    """RMSNorm forward (optionally with the fused residual add)."""
    b = dtype_bytes(dtype)
    passes = 4 if residual else 2   # (x, r read; s, y written) or (x read; y written)
    return Work(
        bytes=rows * hidden * passes * b + hidden * b,
        flops=(5 if residual else 4) * rows * hidden,
    )


def matmul_work(*, m: int, n: int, k: int, dtype: str) -> Work:
    """Dense C = A·B with A[m,k], B[k,n], C[m,n], all in ``dtype``."""
    b = dtype_bytes(dtype)
    return Work(bytes=(m * k + k * n + m * n) * b, flops=2.0 * m * n * k)


def decode_attention_work(
    *, context_lens: Sequence[int], heads_q: int, heads_kv: int, head_dim: int, dtype: str,
) -> Work:
    """Paged decode attention: one query per sequence over its whole context."""
    b = dtype_bytes(dtype)
    batch = len(context_lens)
    total_ctx = sum(context_lens)
    pages = sum(math.ceil(c / PAGE_TOKENS) for c in context_lens)
    kv = total_ctx * 2 * heads_kv * head_dim * b
    q_out = 2 * batch * heads_q * head_dim * b
    meta = pages * INT32_BYTES + batch * INT32_BYTES
    return Work(bytes=kv + q_out + meta, flops=4.0 * total_ctx * heads_q * head_dim)


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerDims:
    """One Llama-style decoder layer (GQA attention, SwiGLU MLP)."""

    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    eps: float = 1e-5

    def projection_weight_elements(self) -> int:
        qkv = self.hidden * (self.heads + 2 * self.kv_heads) * self.head_dim
        o = self.heads * self.head_dim * self.hidden
        gate_up = self.hidden * 2 * self.ffn
        down = self.ffn * self.hidden
        return qkv + o + gate_up + down


# Llama-3.1-8B: hidden_size 4096, num_attention_heads 32, num_key_value_heads 8,
# head_dim 128, intermediate_size 14336, rms_norm_eps 1e-5
# (meta-llama/Llama-3.1-8B config.json on Hugging Face).
LLAMA_3_1_8B_LAYER = LayerDims(hidden=4096, heads=32, kv_heads=8, head_dim=128, ffn=14336)


def decode_step_work(*, dims: LayerDims, context_lens: Sequence[int], dtype: str) -> Work:
    """One decoder layer's decode step; ``context_lens`` exclude the new token."""
    b = dtype_bytes(dtype)
    batch = len(context_lens)
    weights = (dims.projection_weight_elements() + 2 * dims.hidden) * b
    attn = decode_attention_work(
        context_lens=[c + 1 for c in context_lens], heads_q=dims.heads,
        heads_kv=dims.kv_heads, head_dim=dims.head_dim, dtype=dtype,
    )
    new_kv = batch * 2 * dims.kv_heads * dims.head_dim * b
    act = 2 * batch * dims.hidden * b
    flops = 2.0 * batch * dims.projection_weight_elements() + attn.flops
    return Work(bytes=weights + attn.bytes + new_kv + act, flops=flops)
