"""`servelab estimate`: memory budget, latency and throughput of one deployment."""

from __future__ import annotations

import json
import math
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.console import Console
from rich.table import Table

from ..catalog import get_gpu, get_model
from ..errors import ConfigError
from ..perf import Deployment, StepModel, memory_budget
from ..perf.answers import decode_point, offline_throughput, ridge_point, step_bound, ttft_s
from ..perf.deployment import FIT_NOTE, Efficiency, StepBatch
from ..perf.engines import DEFAULT_ENGINE, EngineProfile, engine_names, get_engine
from ..perf.quant import WEIGHT_DTYPES
from ..units import fmt_bytes, fmt_seconds

__all__ = ["register", "estimate"]

DECODE_BATCHES = (1, 8, 32, 128)


def _build(model: str, gpu: str, tp: int, pp: int, ep: int, dtype: str, kv_dtype: str,
           util: float, max_num_seqs: int, max_tokens: int,
           engine: EngineProfile | None = None) -> Deployment:
    """The deployment as ``engine`` runs it (``util`` read under the engine's KV memory
    rule: vLLM's gpu_memory_utilization, TensorRT-LLM's free-memory fraction)."""
    dep = Deployment(model=get_model(model), gpu=get_gpu(gpu), tp=tp, pp=pp, ep=ep,
                     weight_dtype=dtype.lower(), kv_dtype=kv_dtype.lower(),
                     gpu_memory_utilization=util, max_num_seqs=max_num_seqs,
                     max_num_batched_tokens=max_tokens)
    return engine.deployment(dep) if engine is not None else dep


def estimate_dict(dep: Deployment, input_tokens: int, output_tokens: int,
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


def _deployment_warnings(dep: Deployment, r: dict[str, Any]) -> list[str]:
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


def _print_table(r: dict[str, Any]) -> None:
    con = Console()
    head = (f"{r['model']} on {r['num_gpus']}× {r['gpu']} (TP{r['tp']}"
            + (f" PP{r['pp']}" if r["pp"] > 1 else "") + (f" EP{r['ep']}" if r["ep"] > 1 else "")
            + f"), weights {r['weight_dtype']}, KV {r['kv_dtype']}, "
            f"{r['input_tokens']} in / {r['output_tokens']} out"
            + (f", engine {r['engine']}" if r.get("engine") else ""))
    con.print(f"[bold]{head}[/bold]")
    if r.get("calibration"):
        cal = r["calibration"]
        con.print(f"efficiency from calibration {cal['path']} (sha256 {cal['sha256'][:12]}…)")
    for note in r["notes"]:
        con.print(f"[yellow]note:[/yellow] {escape(str(note))}")

    mem = Table(title="Memory per GPU")
    mem.add_column("item")
    mem.add_column("bytes", justify="right")
    for label, key in (("GPU memory", "gpu_memory_bytes"),
                       (f"usable (gpu_memory_utilization {r['gpu_memory_utilization']:g})", "usable_bytes"),
                       ("weights", "weight_bytes"), ("activations (peak)", "activation_bytes"),
                       ("runtime overhead", "overhead_bytes"), ("KV cache", "kv_bytes")):
        mem.add_row(label, fmt_bytes(r[key]))
    con.print(mem)
    if not r["feasible"]:
        con.print(f"[bold red]infeasible:[/bold red] {r['reason']}")
        return

    cap = Table(title="KV cache")
    cap.add_column("quantity")
    cap.add_column("value", justify="right")
    cap.add_row("KV bytes per token (replica / per GPU)",
                f"{r['kv_bytes_per_token']:,.0f} / {r['kv_bytes_per_token_per_gpu']:,.0f}")
    cap.add_row("KV capacity (tokens / blocks)", f"{r['kv_capacity_tokens']:,} / {r['kv_blocks']:,}")
    cap.add_row(f"max concurrency at {r['input_tokens'] + r['output_tokens']} tokens",
                f"{r['max_concurrency']:,}")
    cap.add_row(f"max batch (also ≤ max_num_seqs {r['max_num_seqs']}, max_num_batched_tokens "
                f"{r['max_num_batched_tokens']})", f"{r['max_batch']:,}")
    con.print(cap)

    lat = Table(title=f"Decode steps (each sequence at {r['decode_context_tokens']} tokens of context)")
    for col in ("batch", "step", "tokens/s (replica)", "tokens/s per sequence", "bound"):
        lat.add_column(col, justify="right")
    for batch, step in r["decode_step_s"].items():
        lat.add_row(batch, fmt_seconds(step), f"{r['decode_tokens_per_s'][batch]:,.0f}",
                    f"{1 / step:,.1f}", r["decode_bound"][batch])
    con.print(lat)

    off = r["offline"]
    summary = Table(title="Latency and throughput")
    summary.add_column("quantity")
    summary.add_column("value", justify="right")
    summary.add_row(f"TTFT, lone request of {r['input_tokens']} tokens ({r['prefill_bound']}-bound)",
                    fmt_seconds(r["ttft_s"]))
    summary.add_row("ridge point (decode batch where GEMMs turn compute-bound)",
                    f"{r['ridge_batch']:,}" if r["ridge_batch"] else "never")
    summary.add_row(f"offline output throughput (batch {off['concurrency']:,}, limited by {off['limited_by']})",
                    f"{r['offline_output_tokens_per_s']:,.0f} tokens/s")
    summary.add_row("  per GPU", f"{off['output_tokens_per_s_per_gpu']:,.0f} tokens/s")
    con.print(summary)
    con.print(f"[dim]{FIT_NOTE}[/dim]")


def estimate(
    model: str = typer.Option("llama-3.1-8b", "--model", "-m",
                              help="Built-in model id, or a path to a Hugging Face config.json."),
    gpu: str = typer.Option("h100-sxm", "--gpu", "-g", help="GPU id (see `servelab catalog gpus`)."),
    tp: int = typer.Option(1, "--tp", help="Tensor-parallel degree."),
    pp: int = typer.Option(1, "--pp", help="Pipeline-parallel degree."),
    ep: int = typer.Option(1, "--ep", help="Expert-parallel degree (MoE; divides tp)."),
    dtype: str = typer.Option("bf16", "--dtype", help="Weights: bf16, fp16, fp8, int8, int4 (AWQ/GPTQ g128), fp4."),
    kv_dtype: str = typer.Option("bf16", "--kv-dtype", help="KV cache: bf16, fp16, fp8."),
    input_tokens: int = typer.Option(2048, "--input", min=1, help="Prompt tokens per request."),
    output_tokens: int = typer.Option(256, "--output", min=1, help="Output tokens per request."),
    engine: str = typer.Option(DEFAULT_ENGINE, "--engine",
                               help=f"Engine profile: {' | '.join(engine_names())} (runtime overheads, KV rule)."),
    gpu_memory_utilization: float = typer.Option(0.9, "--gpu-memory-utilization",
                                                 help="Memory fraction under the engine's rule: of the whole GPU "
                                                      "(vllm), of the memory free after weights (trtllm)."),
    max_num_seqs: int = typer.Option(256, "--max-num-seqs", help="Most sequences per step (vLLM)."),
    max_num_batched_tokens: int = typer.Option(8192, "--max-num-batched-tokens",
                                               help="Token budget per step (chunked prefill)."),
    calibration: Optional[str] = typer.Option(
        None, "--calibration", help="Calibration JSON (`servelab calibrate`): its efficiency replaces "
                                    "the engine profile's; the engine still sets the KV memory rule."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Memory budget, KV capacity, TTFT, decode speed and offline throughput of one deployment."""
    from ._calibration import load as load_cal
    try:
        profile = get_engine(engine)
        dep = _build(model, gpu, tp, pp, ep, dtype, kv_dtype, gpu_memory_utilization,
                     max_num_seqs, max_num_batched_tokens, profile)
        cal = load_cal(calibration) if calibration else None
        warnings: list[str] = []
        if cal is not None:
            dep = cal.apply(dep)
            diff = cal.differences(dep)
            if diff:
                warnings.append(f"calibration {calibration} was fitted on another deployment "
                                f"({'; '.join(diff)}); its efficiencies may not carry over")
        result = estimate_dict(dep, input_tokens, output_tokens, profile)
        warnings += _deployment_warnings(dep, result)
        result["engine_memory_fraction"] = gpu_memory_utilization   # as given, under the engine's rule
        result["efficiency_source"] = "calibration" if cal is not None else f"engine profile {profile.name}"
        result["calibration"] = cal.to_dict() if cal is not None else None
        result["warnings"] = warnings
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)
    if json_out:
        typer.echo(json.dumps(result, indent=2, allow_nan=False))
    else:
        _print_table(result)


def register(app: typer.Typer) -> None:
    """Add ``estimate`` to the app."""
    app.command("estimate")(estimate)
