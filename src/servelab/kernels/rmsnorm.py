"""RMSNorm forward in Triton, with and without the fused residual add.

    y = x · rsqrt(mean(x²) + eps) · w                                  (``rmsnorm``)
    s = x + r;  r_out = s;  y = s · rsqrt(mean(s²) + eps) · w          (``rmsnorm_residual``)

Zhang & Sennrich 2019, "Root Mean Square Layer Normalization"; the fused residual
variant has vLLM's ``fused_add_rms_norm`` semantics (the sum becomes the new residual
stream). One program per row; the whole row (hidden ≤ 16384) lives in registers, so x
is read once and y written once: the traffic in :func:`servelab.kernels.counts.rmsnorm_work`.
Math in fp32, one rounding to the output dtype.

Shapes: x, r, y, r_out [rows, hidden] (last dim contiguous), w [hidden].
Imports torch and triton (``gpu`` extra).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["rmsnorm", "rmsnorm_reference", "rmsnorm_eager", "rmsnorm_functional",
           "rmsnorm_residual_eager", "MAX_HIDDEN"]

MAX_HIDDEN = 65536


@triton.jit
def _rmsnorm_kernel(
    X, R, Y, RO, W, n_cols, eps,
    stride_x, stride_r, stride_y, stride_ro,
    HAS_RES: tl.constexpr, BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_RES:
        r = tl.load(R + row * stride_r + cols, mask=mask, other=0.0).to(tl.float32)
        x = x + r
        tl.store(RO + row * stride_ro + cols, x.to(RO.dtype.element_ty), mask=mask)
    mean_sq = tl.sum(x * x, axis=0) / n_cols
    rstd = 1.0 / tl.sqrt(mean_sq + eps)
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + row * stride_y + cols, (x * rstd * w).to(Y.dtype.element_ty), mask=mask)


def _num_warps(block: int) -> int:
    return 4 if block <= 2048 else (8 if block <= 8192 else 16)


def rmsnorm(
    x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5, *,
    residual: torch.Tensor | None = None, out: torch.Tensor | None = None,
    residual_out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Triton RMSNorm of the rows of ``x``; with ``residual``, normalizes ``x + residual``
    and writes the sum to ``residual_out`` (may alias ``residual`` for in-place use)."""
    if x.dim() != 2 or x.stride(-1) != 1:
        raise ValueError(f"x must be 2-D with a contiguous last dim; got shape {tuple(x.shape)}")
    rows, hidden = x.shape
    if hidden > MAX_HIDDEN:
        raise ValueError(f"hidden {hidden} > {MAX_HIDDEN} (one row per program in registers)")
    if weight.shape != (hidden,):
        raise ValueError(f"weight shape {tuple(weight.shape)} != ({hidden},)")
    out = torch.empty_like(x) if out is None else out
    has_res = residual is not None
    if has_res:
        if residual_out is None:
            raise ValueError("residual given without residual_out (pass residual to update in place)")
        r, ro = residual, residual_out
    else:
        r, ro = x, out   # unused by the kernel
    block = triton.next_power_of_2(hidden)
    _rmsnorm_kernel[(rows,)](
        x, r, out, ro, weight, hidden, eps,
        x.stride(0), r.stride(0), out.stride(0), ro.stride(0),
        HAS_RES=has_res, BLOCK=block, num_warps=_num_warps(block),
    )
    return out


def rmsnorm_reference(x, weight, eps=1e-5, residual=None):
    """fp32 reference: returns (y, s) with s = x + residual (or x), both fp32."""
    s = x.float() if residual is None else x.float() + residual.float()
    y = s * torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + eps) * weight.float()
    return y, s


def rmsnorm_eager(x, weight, eps=1e-5, *, out=None):
    """Naive eager baseline (Hugging Face ``LlamaRMSNorm.forward``): upcast, normalize in
    fp32, round to the input dtype, multiply by the weight in the input dtype."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    y = weight * h.to(x.dtype)
    if out is not None:
        out.copy_(y)
        return out
    return y


def rmsnorm_residual_eager(x, weight, eps=1e-5, *, residual, out=None, residual_out=None):
    """Naive eager baseline of the fused variant: ``s = x + r`` in the input dtype, then
    :func:`rmsnorm_eager` of s."""
    s = x + residual
    y = rmsnorm_eager(s, weight, eps, out=out)
    if residual_out is not None:
        residual_out.copy_(s)
    return y


def rmsnorm_functional(x, weight, eps=1e-5, *, residual=None, out=None, residual_out=None):
    """``torch.nn.functional.rms_norm`` baseline (after an eager add for the residual)."""
    s = x if residual is None else x + residual
    y = torch.nn.functional.rms_norm(s, (x.shape[-1],), weight, eps)
    if residual_out is not None:
        residual_out.copy_(s)
    if out is not None:
        out.copy_(y)
        return out
    return y
