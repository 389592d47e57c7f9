"""Everything ``servelab estimate`` reports about one deployment, as plain JSON-ready values.

:func:`estimate_report` gathers the memory budget (:mod:`.memory`), TTFT of a lone
prompt, decode steps at a few batch sizes, the ridge point and the offline throughput
(:mod:`.answers`) for fixed input/output lengths; :func:`deployment_warnings` says what
a user should know before trusting them (a quantized checkpoint modelled at another
dtype, a request longer than the model's context, a KV cache smaller than one request).
"""

from __future__ import annotations

import math
from typing import Any

from .answers import decode_point, offline_throughput, ridge_point, step_bound, ttft_s
from .deployment import Deployment, Efficiency, StepBatch
from .engines import EngineProfile
from .memory import memory_budget
from .quant import WEIGHT_DTYPES
from .step import StepModel

__all__ = ["estimate_report", "deployment_warnings", "DECODE_BATCHES"]

DECODE_BATCHES = (1, 8, 32, 128)


def estimate_report(dep: Deployment, input_tokens: int, output_tokens: int,
                  engine: EngineProfile | None = None) -> dict[str, Any]:
    """Everything ``estimate`` reports, as plain JSON-ready values (``engine``: the
    profile ``dep`` was built with, reported as ``engine`` / ``engine_profile``)."""
    b = memory_budget(dep)
    context = input_tokens + output_tokens
    kv_conc = b.max_concurrency(context)
    out: dict[str, Any] = {
        "model": dep.model.name, "gpu": dep.gpu.name, "tp": dep.tp, "pp": dep.pp, "ep": dep.ep,
        "num_gpus": dep.num_gpus, "weight_dtype": dep.weight_dtype, "kv_dtype": dep.kv_dtype,
        "input_tokens": input_tokens, "output_tokens": output_tokens,
        "gpu_memory_utilization": dep.gpu_memory_utilization,
        "max_num_seqs": dep.max_num_seqs, "max_num_batched_tokens": dep.max_num_batched_tokens,
        "feasible": b.feasible, "reason": b.reason, "notes": list(b.notes),
        "gpu_memory_bytes": b.gpu_memory_bytes, "usable_bytes": b.usable_bytes,
        "weight_bytes": b.weight_bytes, "weight_bytes_per_replica": b.weight_bytes_per_replica,
        "activation_bytes": b.activation_bytes, "overhead_bytes": b.overhead_bytes,
        "kv_bytes": b.kv_bytes, "kv_bytes_per_token": b.kv_bytes_per_token,
        "kv_bytes_per_token_per_gpu": b.kv_bytes_per_token_per_gpu,
        "kv_capacity_tokens": b.kv_capacity_tokens, "kv_blocks": b.kv_blocks,
        # one token per decoding sequence: the step's token budget caps the batch too
        "max_concurrency": kv_conc,
        "max_batch": min(kv_conc, dep.max_num_seqs, dep.max_num_batched_tokens),
        "ttft_s": None, "prefill_bound": None, "decode_context_tokens": None,
        "decode_step_s": {}, "decode_tokens_per_s": {}, "decode_bound": {},
        "ridge_batch": None, "offline_output_tokens_per_s": 0.0, "offline": None,
        "efficiency": {k: getattr(dep.efficiency, k) for k in Efficiency.__dataclass_fields__},
        "engine": engine.name if engine is not None else None,
        "engine_profile": engine.to_dict() if engine is not None else None,
    }
    if not b.feasible:
        return out
    sm = StepModel(dep)
    out["compute_dtype"] = sm.coeffs.compute_dtype
    out["ttft_s"] = ttft_s(sm, input_tokens)
    first = min(input_tokens, dep.max_num_batched_tokens)
    out["prefill_bound"] = step_bound(sm, StepBatch(prefill_chunks=((first, 0),)))
    ctx = input_tokens + output_tokens // 2          # a sequence half-way through its output
    out["decode_context_tokens"] = ctx
    batches = [x for x in DECODE_BATCHES if x <= out["max_batch"]]
    if out["max_batch"] >= 1 and out["max_batch"] not in batches:
        batches.append(out["max_batch"])
    for batch in batches:
        p = decode_point(sm, batch, ctx)
        out["decode_step_s"][str(batch)] = p.step_s
        out["decode_tokens_per_s"][str(batch)] = p.tokens_per_s
        out["decode_bound"][str(batch)] = p.bound
    out["ridge_batch"] = ridge_point(sm)
    off = offline_throughput(sm, b, input_tokens, output_tokens)
    out["offline_output_tokens_per_s"] = off.output_tokens_per_s
    out["offline"] = {
        "concurrency": off.concurrency, "limited_by": off.limited_by,
        "prefill_rows_per_step": off.prefill_rows, "decode_rows_per_step": off.decode_rows,
        "step_s": off.step_s if math.isfinite(off.step_s) else None,
        "requests_per_s": off.requests_per_s,
        "output_tokens_per_s_per_gpu": off.output_tokens_per_s / dep.num_gpus,
    }
    return out


def deployment_warnings(dep: Deployment, r: dict[str, Any]) -> list[str]:
    """What the user should know before trusting the numbers: a quantized checkpoint
    modelled at another weight dtype, a request longer than the model's context, or a
    KV cache that holds no whole request."""
    out: list[str] = []
    ckpt = dep.model.checkpoint_dtype
    if ckpt not in ("bf16", "fp16", "fp32") and ckpt != dep.weight_dtype:
        fix = (f"pass --dtype {ckpt} to model the checkpoint as published" if ckpt in WEIGHT_DTYPES
               else f"its format is not modelled (weight dtypes: {', '.join(WEIGHT_DTYPES)})")
        out.append(f"{dep.model.name} is a {ckpt} checkpoint (quantization_config) but is "
                   f"estimated with {dep.weight_dtype} weights; {fix}")
    context = r["input_tokens"] + r["output_tokens"]
    if context > dep.model.max_context:
        out.append(f"a request of {context} tokens exceeds the {dep.model.max_context} token "
                   f"context of {dep.model.name} (max_position_embeddings); the engine rejects it")
    if r["feasible"] and r["max_concurrency"] < 1:
        out.append(f"the KV cache holds {r['kv_capacity_tokens']:,} tokens, less than one "
                   f"request of {context} tokens: no request of this length can run "
                   f"(vLLM refuses to start when max_model_len exceeds it)")
    return out
