"""Matmul C[M,N] = A[M,K]·B[K,N] in Triton: a tiled schedule and a persistent schedule.

- Tiled: one program per BLOCK_M×BLOCK_N output tile, tiles ordered in groups of
  GROUP_M rows so that neighbouring programs share A and B tiles in L2 (the Triton
  matmul tutorial's "grouped ordering").
- Persistent: as many programs as streaming multiprocessors; each walks the tile list
  with stride = #programs (same grouped order), so launch and tail costs are paid once
  (Triton tutorial 09 "persistent matmul").

Accumulation in fp32; one rounding to C's dtype. FLOPs 2·M·N·K, compulsory bytes
(M·K + K·N + M·N)·b (:func:`servelab.kernels.counts.matmul_work`).

Interpreter path: Triton's interpreter computes bf16 ``tl.dot`` wrongly, so when
``TRITON_INTERPRET`` is set the kernels upcast both operands to fp32 before the dot
(``UPCAST``); multi-config autotuning needs a GPU driver, so the interpreter uses one
fixed config. On a GPU, fp32 inputs run as TF32. Imports torch and triton.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._deps import interpreting

__all__ = ["matmul", "matmul_persistent", "matmul_reference", "num_sms", "gpu_config"]


@triton.jit
def _tile_coords(tile, num_m, num_n, GROUP_M: tl.constexpr):
    per_group = GROUP_M * num_n
    group = tile // per_group
    first_m = group * GROUP_M
    size_m = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + ((tile % per_group) % size_m)
    pid_n = (tile % per_group) // size_m
    return pid_m, pid_n


@triton.jit
def _tile(A, B, C, M, N, K, sam, sak, sbk, sbn, scm, scn, pid_m, pid_n,
          BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, UPCAST: tl.constexpr):
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    a_ptr = A + rm[:, None].to(tl.int64) * sam + rk[None, :] * sak
    b_ptr = B + rk[:, None].to(tl.int64) * sbk + rn[None, :] * sbn
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, tl.cdiv(K, BK)):
        k_left = K - k0 * BK
        a = tl.load(a_ptr, mask=(rm[:, None] < M) & (rk[None, :] < k_left), other=0.0)
        b = tl.load(b_ptr, mask=(rk[:, None] < k_left) & (rn[None, :] < N), other=0.0)
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc)
        a_ptr += BK * sak
        b_ptr += BK * sbk
    c_ptr = C + rm[:, None].to(tl.int64) * scm + rn[None, :] * scn
    tl.store(c_ptr, acc.to(C.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def _matmul_tiled_kernel(A, B, C, M, N, K, sam, sak, sbk, sbn, scm, scn,
                         BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                         GROUP_M: tl.constexpr, UPCAST: tl.constexpr):
    num_m = tl.cdiv(M, BM)
    num_n = tl.cdiv(N, BN)
    pid_m, pid_n = _tile_coords(tl.program_id(0), num_m, num_n, GROUP_M)
    _tile(A, B, C, M, N, K, sam, sak, sbk, sbn, scm, scn, pid_m, pid_n, BM, BN, BK, UPCAST)


@triton.jit
def _matmul_persistent_kernel(A, B, C, M, N, K, sam, sak, sbk, sbn, scm, scn, NUM_PROGS,
                              BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                              GROUP_M: tl.constexpr, UPCAST: tl.constexpr):
    num_m = tl.cdiv(M, BM)
    num_n = tl.cdiv(N, BN)
    for tile in range(tl.program_id(0), num_m * num_n, NUM_PROGS):
        pid_m, pid_n = _tile_coords(tile, num_m, num_n, GROUP_M)
        _tile(A, B, C, M, N, K, sam, sak, sbk, sbn, scm, scn, pid_m, pid_n, BM, BN, BK, UPCAST)


# (BM, BN, BK, GROUP_M, num_warps, num_stages). GPU configs follow the Triton matmul
# tutorial's H100 list; small-M configs serve decode shapes (M ≤ 64), where the kernel is
# bound by reading B and wants many programs along N.
_INTERP_CONFIG = (32, 32, 32, 4, 4, 1)


def gpu_config(m: int, n: int, k: int, sms: int) -> tuple[int, int, int, int, int, int]:
    if m <= 16:   # weight-read bound: narrower N tiles when 64-wide ones leave SMs idle
        return (16, 64 if triton.cdiv(n, 64) >= 2 * sms else 32, 256, 1, 4, 4)
    if m <= 64:
        return (64, 64, 128, 1, 4, 4)
    if m <= 256:
        return (128, 128, 64, 8, 8, 3)
    return (128, 256, 64, 8, 8, 3)


_SMS_CACHE: dict[int, int] = {}


def num_sms(device: torch.device) -> int:
    """Streaming multiprocessors of ``device`` (4 for CPU tensors in the interpreter)."""
    if device.type != "cuda":
        return 4
    idx = device.index if device.index is not None else torch.cuda.current_device()
    if idx not in _SMS_CACHE:
        _SMS_CACHE[idx] = torch.cuda.get_device_properties(idx).multi_processor_count
    return _SMS_CACHE[idx]


def _launch(a, b, out, persistent, config=None):
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"shapes {tuple(a.shape)} and {tuple(b.shape)} do not multiply")
    if a.dtype != b.dtype:
        raise ValueError(f"dtypes differ: {a.dtype} vs {b.dtype}")
    m, k = a.shape
    n = b.shape[1]
    out = torch.empty((m, n), dtype=a.dtype, device=a.device) if out is None else out
    interp = interpreting()
    if config is None:
        config = _INTERP_CONFIG if interp else gpu_config(m, n, k, num_sms(a.device))
    bm, bn, bk, group, warps, stages = config
    upcast = interp and a.dtype != torch.float32
    args = (a, b, out, m, n, k, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
            out.stride(0), out.stride(1))
    tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
    meta = dict(BM=bm, BN=bn, BK=bk, GROUP_M=group, UPCAST=upcast,
                num_warps=warps, num_stages=stages)
    if persistent:
        progs = min(num_sms(a.device), tiles)
        _matmul_persistent_kernel[(progs,)](*args, progs, **meta)
    else:
        _matmul_tiled_kernel[(tiles,)](*args, **meta)
    return out


Config = tuple[int, int, int, int, int, int]


def matmul(a: torch.Tensor, b: torch.Tensor, *, out: torch.Tensor | None = None,
           config: Config | None = None) -> torch.Tensor:
    """Tiled-schedule Triton matmul ``a @ b`` (fp16/bf16; fp32 runs as TF32 on a GPU).
    ``config`` = (BM, BN, BK, GROUP_M, num_warps, num_stages) overrides the heuristic."""
    return _launch(a, b, out, persistent=False, config=config)


def matmul_persistent(a: torch.Tensor, b: torch.Tensor, *, out: torch.Tensor | None = None,
                      config: Config | None = None) -> torch.Tensor:
    """Persistent-schedule Triton matmul ``a @ b`` (one program per SM)."""
    return _launch(a, b, out, persistent=True, config=config)


def matmul_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """fp32 reference on the same (rounded) inputs, TF32 off."""
    return torch.matmul(a.float(), b.float())
