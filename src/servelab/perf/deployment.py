"""What is being served, and the batch one engine step processes.

:class:`Deployment` is a model on a GPU type with its parallelism, precisions and the
engine limits that matter to the performance model (vLLM's names and defaults).
:func:`validate_deployment` rejects impossible values with a :class:`ConfigError`
naming the valid ones, and returns notes on how the configuration will really run
(e.g. fp8 weights on a GPU without fp8 tensor cores run weight-only).

:class:`Efficiency` holds the few physical parameters of the roofline model: achieved
fractions of peak and fixed latencies. Their defaults are a global fit (see below and
``benchmarks/calibrate.py``); nothing is tuned per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..catalog.gpus import GPU
from ..catalog.models import ModelSpec
from ..errors import ConfigError
from .quant import KV_DTYPES, WEIGHT_DTYPES, gemm_compute_dtype, peak_flops

__all__ = ["Efficiency", "Deployment", "StepBatch", "validate_deployment", "FIT_NOTE"]

# Where the Efficiency defaults come from (updated by benchmarks/calibrate.py's fit).
FIT_NOTE = ("global efficiency defaults fitted on 131 rows of the TensorRT-LLM v0.17 perf overview "
            "(dense models, H100/A100/L40S; benchmarks/calibrate.py) plus one MoE grouped-GEMM "
            "efficiency fitted on the MoE fit rows: offline-throughput MdAPE 7.4% on the 131, 9.6% on "
            "the 242 validate rows of those tables (H200 v0.17 dense 5.7%, all H200 8.0%, Mixtral "
            "8.7%, v1.0 12.5%, B200 FP4 34.9%); each GPU family then moves from them by its own fit "
            "(servelab.perf.families; held-out accuracy: README, benchmarks/validate.py --held-out)")


@dataclass(frozen=True, kw_only=True)
class Efficiency:
    """Achieved fractions of peak and fixed latencies; fitted by benchmarks/calibrate.py.

    Priors before fitting, and where they come from:

    * ``compute`` 0.7: large bf16/fp8 GEMMs reach 70–80 % of dense peak on H100
      (cuBLAS; e.g. ~700 of 989 TFLOP/s bf16 in NVIDIA's Transformer Engine benchmarks).
    * ``memory`` 0.8: streaming kernels reach 80–90 % of HBM peak (H100 copy
      bandwidth ≈ 2.9–3.0 of 3.35 TB/s).
    * ``attention_compute`` 0.5 / ``attention_memory`` 0.7: FlashAttention-2 reaches
      ~50–70 % of peak FLOP/s in the forward pass (Dao 2023, arXiv:2307.08691); paged
      decode attention reads KV at 60–80 % of HBM peak (vLLM/FlashInfer kernel reports).
    * ``comm`` 0.7: NCCL ring all-reduce bus bandwidth ≈ 70–80 % of NVLink peak
      (nccl-tests on DGX H100: ~360 of 450 GB/s per direction at large sizes).
    * ``comm_latency_s`` 10 µs: one small all-reduce / p2p send on NVLink (nccl-tests
      small-message latency ≈ 10–25 µs; vLLM's custom all-reduce ≈ 5–10 µs).
    * ``step_overhead_s``: scheduler, input preparation, sampling and launch gaps per
      engine step; no datasheet exists — it is a fitted parameter.
    * ``seq_overhead_s``: per sequence per step (sampling, stop checks, scheduler
      bookkeeping); likewise fitted. Linear in the batch size, so decode stays affine.

    FITTED defaults (below) replace the priors: see ``FIT_NOTE``.
    """
    # FITTED (benchmarks/calibrate.py; see FIT_NOTE). Priors in the docstring.
    compute: float = 0.65          # fraction of dense peak FLOP/s reached by GEMMs (prior 0.7)
    memory: float = 0.7            # fraction of peak HBM bandwidth reached by streaming reads (prior 0.8)
    attention_compute: float = 0.5 # fraction of bf16 peak reached by attention math (prior 0.5; not identified, not fitted)
    attention_memory: float = 0.7  # fraction of HBM peak reached reading the KV cache (prior 0.7)
    comm: float = 0.5              # fraction of link bandwidth reached by all-reduce / p2p (prior 0.7)
    comm_latency_s: float = 10e-6  # fixed latency of one collective or p2p transfer (prior, not fitted)
    step_overhead_s: float = 0.0   # fixed per engine step (scheduler, launch, sampling); fitted 0
    seq_overhead_s: float = 0.0    # per sequence in the step (sampling, bookkeeping); fitted 0
    # Routed-expert (MoE) grouped GEMMs reach this fraction of the dense GEMMs' FLOP rate:
    # tokens are permuted to their experts and each expert multiplies only its share of the
    # batch (Σ over E experts of ⌈N·k/E⌉-row GEMMs, padded to the tile), so the FLOP rate is
    # below a dense GEMM of N rows. Prior 1.0 (no penalty). FITTED: 0.7 by
    # benchmarks/calibrate_families.py on the 46 MoE rows with role "fit" (Mixtral-8x7B on
    # A100/L40S, v0.17 perf overview; vLLM CI Mixtral on H200): mean |log error| 0.132 -> 0.075.
    expert_compute: float = 0.7
    # Fixed cost per request added to its time to first token, outside the GPU steps
    # (tokenisation, HTTP, enqueueing, detokenising the first token). Not identified by
    # the offline-throughput fit (it does not delay the steps): 0 here; set per engine
    # by servelab.perf.engines (see docs/perf.md "Engine profiles").
    request_overhead_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Deployment:
    model: ModelSpec
    gpu: GPU
    tp: int = 1
    pp: int = 1
    ep: int = 1                    # expert-parallel degree (MoE only): experts sharded over ep of the tp GPUs of a stage
    weight_dtype: str = "bf16"     # bf16 | fp16 | fp8 | int8 | int4 (AWQ/GPTQ, group 128) | fp4 (NVFP4)
    kv_dtype: str = "bf16"         # bf16 | fp16 | fp8
    gpu_memory_utilization: float = 0.9   # vLLM's fraction of GPU memory the engine may use
    max_num_seqs: int = 256        # vLLM default scheduler limit
    max_num_batched_tokens: int = 8192    # token budget per step (chunked prefill)
    block_size: int = 16           # KV block size in tokens (vLLM default)
    efficiency: Efficiency = field(default_factory=Efficiency)

    @property
    def num_gpus(self) -> int:
        return self.tp * self.pp


@dataclass(frozen=True, slots=True)
class StepBatch:
    """One engine step: prefill chunks and decoding sequences.

    ``prefill_chunks``: (new_tokens, context_before) per prefilling sequence — the chunk
    length this step and the tokens already in that sequence's KV cache.
    Decode step time depends on the decoding sequences only through their count and
    the sum of their contexts (the attention term is linear in context).
    """
    prefill_chunks: tuple[tuple[int, int], ...] = ()
    num_decode: int = 0
    decode_context_sum: int = 0


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def validate_deployment(dep: Deployment) -> tuple[str, ...]:
    """Raise ConfigError for impossible values; return notes on how it will run."""
    m, g = dep.model, dep.gpu
    if dep.weight_dtype not in WEIGHT_DTYPES:
        raise ConfigError(
            f"unknown weight dtype {dep.weight_dtype!r}; valid: {', '.join(WEIGHT_DTYPES)}")
    if dep.kv_dtype not in KV_DTYPES:
        raise ConfigError(f"unknown KV dtype {dep.kv_dtype!r}; valid: {', '.join(KV_DTYPES)}")
    heads = m.num_attention_heads
    valid_tp = [d for d in _divisors(heads) if d <= g.gpus_per_node
                and (m.mla is not None or m.num_kv_heads % d == 0 or d % m.num_kv_heads == 0)]
    if dep.tp < 1 or heads % dep.tp:
        raise ConfigError(
            f"tp={dep.tp} must divide the {heads} attention heads of {m.name}; "
            f"valid tp: {', '.join(map(str, valid_tp))}")
    if m.mla is None and m.num_kv_heads % dep.tp and dep.tp % m.num_kv_heads:
        raise ConfigError(
            f"tp={dep.tp} and the {m.num_kv_heads} KV heads of {m.name} must divide one "
            f"another; valid tp: {', '.join(map(str, valid_tp))}")
    if dep.tp > g.gpus_per_node:
        raise ConfigError(
            f"tp={dep.tp} exceeds the {g.gpus_per_node} GPUs of one {g.name} node; "
            f"valid tp: {', '.join(map(str, valid_tp))} (use pp across nodes)")
    if dep.pp < 1 or dep.pp > m.num_layers:
        raise ConfigError(f"pp={dep.pp} must be between 1 and the {m.num_layers} layers of {m.name}")
    if m.moe is None:
        if dep.ep != 1:
            raise ConfigError(f"ep={dep.ep} needs a mixture-of-experts model; {m.name} is dense (valid ep: 1)")
    else:
        valid_ep = [d for d in _divisors(dep.tp) if m.moe.num_experts % d == 0]
        if dep.ep not in valid_ep:
            raise ConfigError(
                f"ep={dep.ep} must divide tp={dep.tp} and the {m.moe.num_experts} experts; "
                f"valid ep: {', '.join(map(str, valid_ep))}")
    if not 0.0 < dep.gpu_memory_utilization <= 1.0:
        raise ConfigError(
            f"gpu_memory_utilization={dep.gpu_memory_utilization} must be in (0, 1]")
    for name in ("max_num_seqs", "max_num_batched_tokens", "block_size"):
        if getattr(dep, name) < 1:
            raise ConfigError(f"{name}={getattr(dep, name)} must be at least 1")
    peak_flops(g, "bf16")  # every GPU must at least have a bf16 rate to be modelled
    dtype, note = gemm_compute_dtype(g, dep.weight_dtype)
    return (note,) if note else ()
