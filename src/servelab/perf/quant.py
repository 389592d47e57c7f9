"""Weight and KV-cache precisions: storage bytes per element and the GEMM compute dtype.

Storage per weight of a quantized linear layer (metadata included):

* ``bf16``/``fp16``: 2 bytes.
* ``fp8`` (E4M3, per-tensor or per-channel scales as in vLLM's ``Fp8LinearMethod`` and
  the NVIDIA/neuralmagic FP8 checkpoints): 1 byte; scales are one float per tensor or
  per output channel, < 0.1 % and ignored. DeepSeek-V3's 128×128 block scales add
  4/16384 bytes per weight, also ignored.
* ``int8`` (W8A8, SmoothQuant / compressed-tensors, per-channel scales): 1 byte.
* ``int4`` (AWQ / GPTQ, group size 128): the checkpoint layout (AutoGPTQ/AutoAWQ, as
  loaded by vLLM) is ``qweight`` int32 packing 8 nibbles, ``scales`` fp16 of shape
  ``[in/128, out]`` and ``qzeros`` int32 packing 8 zero points, ``[in/128, out/8]``:
  ``0.5 + (2 + 0.5)/128 = 0.51953125`` bytes per weight.
* ``fp4`` (NVFP4: E2M1 values with one FP8 E4M3 scale per 16 elements, NVIDIA
  "Introducing NVFP4", 2025): ``0.5 + 1/16 = 0.5625`` bytes per weight.

Only the decoder's linear layers are quantized; embeddings, the LM head, norms,
biases and the MoE router stay in bf16 (as in the published FP8/AWQ/GPTQ checkpoints,
whose ``lm_head`` and ``embed_tokens`` are unquantized).

GEMM compute dtype: fp8/int8/fp4 weights run on fp8/int8/fp4 tensor cores where the GPU
has them (activations are quantized on the fly: W8A8, W4A4). Where it does not (fp8 on
A100, fp4 before Blackwell), the weights are dequantized inside the GEMM and the math
runs in bf16 ("weight-only", e.g. vLLM's Marlin FP8 kernel on Ampere): memory traffic
shrinks, compute peak does not. int4 AWQ/GPTQ is always weight-only (W4A16).
"""

from __future__ import annotations

from ..catalog.gpus import GPU
from ..errors import ConfigError
from ..units import dtype_bytes

__all__ = [
    "WEIGHT_DTYPES", "KV_DTYPES", "UNQUANTIZED_BYTES", "INT4_GROUP_SIZE",
    "weight_storage_bytes", "kv_storage_bytes", "gemm_compute_dtype", "peak_flops",
]

WEIGHT_DTYPES = ("bf16", "fp16", "fp8", "int8", "int4", "fp4")
KV_DTYPES = ("bf16", "fp16", "fp8")
UNQUANTIZED_BYTES = dtype_bytes("bf16")   # bf16 embeddings, LM head, norms, router
INT4_GROUP_SIZE = 128          # AWQ/GPTQ default group size

# Element widths come from servelab.units.DTYPE_BYTES; only the per-group metadata of
# the block-quantized formats is specific to weight storage (module docstring).
_WEIGHT_BYTES = {
    **{d: dtype_bytes(d) for d in ("bf16", "fp16", "fp8", "int8")},
    # nibble + fp16 scale + 4-bit zero point per group of INT4_GROUP_SIZE
    "int4": dtype_bytes("int4") + (dtype_bytes("fp16") + dtype_bytes("int4")) / INT4_GROUP_SIZE,
    # NVFP4: E2M1 nibble + one FP8 E4M3 scale per 16 elements
    "fp4": dtype_bytes("fp4") + dtype_bytes("fp8") / 16,
}
_KV_BYTES = {d: dtype_bytes(d) for d in KV_DTYPES}


def weight_storage_bytes(dtype: str) -> float:
    """Bytes per weight of a quantized linear layer, metadata included."""
    try:
        return _WEIGHT_BYTES[dtype]
    except KeyError:
        raise ConfigError(
            f"unknown weight dtype {dtype!r}; valid: {', '.join(WEIGHT_DTYPES)}"
        ) from None


def kv_storage_bytes(dtype: str) -> float:
    """Bytes per element of the KV cache."""
    try:
        return _KV_BYTES[dtype]
    except KeyError:
        raise ConfigError(f"unknown KV dtype {dtype!r}; valid: {', '.join(KV_DTYPES)}") from None


def peak_flops(gpu: GPU, dtype: str) -> float:
    """Dense peak FLOP/s of ``gpu`` for ``dtype`` (fp16 and bf16 stand in for each other)."""
    table = gpu.peak_flops
    value = table.get(dtype)
    if not value and dtype in ("bf16", "fp16"):
        value = table.get("fp16" if dtype == "bf16" else "bf16")
    if not value:
        have = ", ".join(k for k, v in table.items() if v) or "none"
        raise ConfigError(
            f"GPU {gpu.name!r} has no {dtype} peak FLOP/s in the catalog (has: {have})"
        )
    return float(value)


def gemm_compute_dtype(gpu: GPU, weight_dtype: str) -> tuple[str, str]:
    """(dtype the GEMM math runs in, note for the user; "" when nothing to say)."""
    weight_storage_bytes(weight_dtype)  # validates the name
    if weight_dtype in ("bf16", "fp16"):
        return weight_dtype, ""
    if weight_dtype == "int4":
        return "bf16", "int4 (AWQ/GPTQ) runs weight-only: dequantized to bf16 in the GEMM (W4A16)"
    if gpu.peak_flops.get(weight_dtype):
        return weight_dtype, ""
    return "bf16", (
        f"{gpu.name} has no {weight_dtype} tensor cores: {weight_dtype} weights run "
        f"weight-only (dequantized to bf16 in the GEMM); memory shrinks, compute peak is bf16"
    )
