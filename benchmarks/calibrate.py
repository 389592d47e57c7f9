"""Calibrate the roofline model against TensorRT-LLM's published offline throughput.

Data: ``benchmarks/data/trtllm_throughput.csv`` — every row of the "Throughput
Measurements" tables of TensorRT-LLM's performance overview (v0.17 and v1.0 docs) for
models and GPUs in servelab's catalog, with its source. The published metric is total
output tokens/s of the replica with every request queued (``trtllm-bench throughput``).

Each row is predicted with :func:`servelab.perf.answers.offline_throughput` under the
benchmark's settings: ``max_num_seqs`` 4096 and ``max_num_batched_tokens`` 8192 (the
"Max Runtime Batch Size"/"Max Runtime Tokens" printed in the doc's example), and KV
memory = 95 % of the memory left after weights, activations and runtime overhead
(``--kv_cache_free_gpu_mem_fraction 0.95``, as the doc says was used in most cases),
counted from the device capacity the engine sees (``GPU.reported_memory_bytes``,
nvidia-smi memory.total; see :func:`engine_gpu`).

Fit: a handful of GLOBAL physical parameters (GEMM compute and memory efficiency,
attention memory efficiency, link efficiency, per-step and per-sequence overhead; attention
compute efficiency is not identified by these rows and stays at its prior) by
coordinate descent over grids, minimising the mean |log(predicted/published)| on the
TRAINING rows only (v0.17, dense models, H100/A100/L40S). Held out: every H200 row,
every MoE row, every v1.0 row (other software version, B200, FP4). Nothing is tuned
per row. Reports the median absolute percentage error (MdAPE) on each split.

    python benchmarks/calibrate.py            # fit, print, write benchmarks/results/calibration.json
    python benchmarks/calibrate.py --no-fit   # evaluate the current defaults only
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import math
import statistics
import sys
import time
from pathlib import Path

from servelab.catalog import GPU, get_gpu, get_model
from servelab.perf import Deployment, Efficiency, StepModel, memory_budget
from servelab.perf.answers import offline_throughput

# `make bench` writes to $SERVELAB_BENCH_OUT (outside tracked files); `make bench-record`
# copies those results here, into the committed benchmarks/results/.
_RESULTS = Path(__import__("os").environ.get("SERVELAB_BENCH_OUT") or Path(__file__).resolve().parent / "results")

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "trtllm_throughput.csv"
OUT = _RESULTS / "calibration.json"

KV_FREE_FRACTION = 0.95
# Device capacity the engine works from: "reported" (nvidia-smi memory.total, what
# cudaMemGetInfo sees) or "datasheet" (the catalog's decimal GB; reproduces the earlier calibration).
DEVICE_MEMORY = "reported"
MAX_NUM_SEQS = 4096
MAX_NUM_BATCHED_TOKENS = 8192

GRIDS = {
    "compute": [0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90],
    "memory": [0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95],
    # attention_compute is NOT fitted: the training rows do not identify it (0.2–0.6 give
    # mean |log error| within 0.0003 of each other), so it stays at its FlashAttention prior.
    "attention_memory": [0.40, 0.50, 0.60, 0.70, 0.80, 0.90],
    "comm": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    "step_overhead_s": [0.0, 0.5e-3, 1e-3, 2e-3, 3e-3, 4e-3, 6e-3, 8e-3],
    "seq_overhead_s": [0.0, 1e-6, 2e-6, 4e-6, 6e-6, 8e-6, 12e-6, 16e-6, 24e-6],
}


def is_training(row: dict) -> bool:
    return (row["trtllm_version"] == "v0.17" and row["gpu"] in ("h100-sxm", "a100-80g", "l40s")
            and not row["model"].startswith(("mixtral", "qwen3")))


def load_rows() -> list[dict]:
    rows = []
    with DATA.open() as f:
        for r in csv.DictReader(f):
            for k in ("tp", "pp", "ep", "isl", "osl"):
                r[k] = int(r[k])
            r["output_tokens_per_s"] = float(r["output_tokens_per_s"])
            rows.append(r)
    return rows


def engine_gpu(gpu: GPU) -> GPU:
    """The GPU as the engine sees it: ``DEVICE_MEMORY = "reported"`` uses the capacity the
    driver reports (nvidia-smi memory.total, e.g. 81,559 MiB = 85.5e9 B on an H100 80GB),
    which is what ``cudaMemGetInfo`` and therefore TensorRT-LLM's free-memory fraction and
    vLLM's ``gpu_memory_utilization`` start from; "datasheet" keeps the catalog's decimal GB."""
    if DEVICE_MEMORY == "reported" and gpu.reported_memory_bytes > 0:
        return dataclasses.replace(gpu, memory_bytes=gpu.reported_memory_bytes)
    return gpu


def trtllm_deployment(base: Deployment, kv_free_fraction: float) -> Deployment:
    """``base`` with TensorRT-LLM's KV rule: the KV cache gets ``kv_free_fraction`` of the
    memory left free after weights, activations and runtime buffers."""
    full = memory_budget(dataclasses.replace(base, gpu_memory_utilization=1.0))
    free = full.kv_bytes if full.feasible else 0.0
    mem = base.gpu.memory_bytes
    return dataclasses.replace(base, gpu_memory_utilization=(mem - (1 - kv_free_fraction) * free) / mem)


def set_device_memory(kind: str) -> None:
    global DEVICE_MEMORY
    if kind not in ("reported", "datasheet"):
        raise ValueError(f"device memory {kind!r}; valid: reported, datasheet")
    DEVICE_MEMORY = kind


def prepare(row: dict) -> tuple[Deployment, object] | None:
    """The row's deployment and memory budget under trtllm-bench's KV rule (None: does not fit)."""
    base = Deployment(model=get_model(row["model"]), gpu=engine_gpu(get_gpu(row["gpu"])), tp=row["tp"],
                      pp=row["pp"], ep=row["ep"], weight_dtype=row["dtype"],
                      kv_dtype=row["kv_dtype"], gpu_memory_utilization=1.0,
                      max_num_seqs=MAX_NUM_SEQS, max_num_batched_tokens=MAX_NUM_BATCHED_TOKENS)
    full = memory_budget(base)
    if not full.feasible or full.kv_bytes <= 0:
        return None
    dep = trtllm_deployment(base, KV_FREE_FRACTION)
    return dep, memory_budget(dep)


def predict(prepared, row: dict, eff: Efficiency) -> float:
    if prepared is None:
        return 0.0
    dep, budget = prepared
    dep = dataclasses.replace(dep, efficiency=eff)
    return offline_throughput(StepModel(dep), budget, row["isl"], row["osl"]).output_tokens_per_s


def log_loss(preds: list[float], pubs: list[float]) -> float:
    return statistics.fmean(abs(math.log(max(p, 1e-9) / q)) for p, q in zip(preds, pubs))


def mdape(preds: list[float], pubs: list[float]) -> float:
    return 100 * statistics.median(abs(p - q) / q for p, q in zip(preds, pubs)) if pubs else float("nan")


def fit(rows, prepared, start: Efficiency, passes: int = 3) -> Efficiency:
    # rows the memory model cannot fit at all carry no information about efficiencies
    idx = [i for i, r in enumerate(rows) if is_training(r) and prepared[i] is not None]
    pubs = [rows[i]["output_tokens_per_s"] for i in idx]
    eff = start

    def loss(e: Efficiency) -> float:
        return log_loss([predict(prepared[i], rows[i], e) for i in idx], pubs)

    best = loss(eff)
    for p in range(passes):
        changed = False
        for name, grid in GRIDS.items():
            for v in grid:
                cand = dataclasses.replace(eff, **{name: v})
                val = loss(cand)
                if val < best - 1e-12:
                    best, eff, changed = val, cand, True
        print(f"pass {p + 1}: mean |log error| {best:.4f}  {eff}", file=sys.stderr)
        if not changed:
            break
    return eff


def split_errors(rows: list[dict], preds: list[float]) -> dict:
    """MdAPE of the training split, the held-out split, all rows, and named subsets."""
    def split_err(pred_fn) -> dict:
        sel = [(p, r["output_tokens_per_s"]) for p, r in zip(preds, rows) if pred_fn(r)]
        return {"rows": len(sel), "mdape_pct": round(mdape([a for a, _ in sel], [b for _, b in sel]), 2)}

    # "held_out" is every row whose role is validate: the global training rows and the rows
    # other fits use (Mixtral on A100/L40S for expert_compute, B200 Llama-3.3-70B for the
    # Blackwell family; benchmarks/calibrate_families.py) are both excluded.
    val = lambda r: r.get("role", "validate") == "validate"   # noqa: E731
    groups = {
        "train": split_err(is_training),
        "other_fit_rows": split_err(lambda r: not is_training(r) and not val(r)),
        "held_out": split_err(val),
        "all": split_err(lambda r: True),
    }
    for key, fn in {
        "held_out_h200_v0.17_dense": lambda r: val(r) and r["gpu"] == "h200" and r["trtllm_version"] == "v0.17"
        and not r["model"].startswith("mixtral"),
        "held_out_h200_all": lambda r: val(r) and r["gpu"] == "h200",
        "held_out_moe_mixtral_v0.17": lambda r: val(r) and r["model"].startswith("mixtral"),
        "held_out_v1.0_all": lambda r: val(r) and r["trtllm_version"] == "v1.0",
        "held_out_v1.0_b200_fp4": lambda r: val(r) and r["gpu"] == "b200",
        "held_out_v1.0_qwen3_moe": lambda r: val(r) and r["model"].startswith("qwen3"),
    }.items():
        groups[key] = split_err(fn)
    for gpu in sorted({r["gpu"] for r in rows}):
        groups[f"gpu_{gpu}"] = split_err(lambda r, g=gpu: r["gpu"] == g)
    return groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-fit", action="store_true", help="evaluate the current Efficiency defaults only")
    ap.add_argument("--device-memory", choices=("reported", "datasheet"), default=DEVICE_MEMORY,
                    help="device capacity the engine starts from (default: %(default)s)")
    args = ap.parse_args()
    set_device_memory(args.device_memory)
    t_start = time.time()
    rows = load_rows()
    prepared = [prepare(r) for r in rows]
    start = Efficiency()   # the current defaults (priors before the first fit)
    eff = start if args.no_fit else fit(rows, prepared, start)

    preds = [predict(p, r, eff) for p, r in zip(prepared, rows)]
    print(f"{'model':16s} {'gpu':9s} {'tp':>2s} {'dtype':5s} {'isl':>6s} {'osl':>5s} "
          f"{'published':>10s} {'predicted':>10s} {'error':>7s}  split")
    for r, p in zip(rows, preds):
        q = r["output_tokens_per_s"]
        split = "train" if is_training(r) else ("held-out" if r["role"] == "validate" else "other fit")
        print(f"{r['model']:16s} {r['gpu']:9s} {r['tp']:2d} {r['dtype']:5s} {r['isl']:6d} {r['osl']:5d} "
              f"{q:10.0f} {p:10.0f} {100 * (p - q) / q:+6.1f}%  {split} {r['trtllm_version']}")

    groups = split_errors(rows, preds)
    print()
    for k, v in groups.items():
        print(f"MdAPE {k:28s} {v['mdape_pct']:6.1f}%  ({v['rows']} rows)")
    print(f"fitted: {eff}")

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "what": "servelab roofline offline throughput vs TensorRT-LLM perf overview",
        "data": str(DATA.relative_to(HERE.parent)),
        "data_sha256": hashlib.sha256(DATA.read_bytes()).hexdigest(),
        "settings": {"kv_free_fraction": KV_FREE_FRACTION, "max_num_seqs": MAX_NUM_SEQS,
                     "device_memory": DEVICE_MEMORY,
                     "max_num_batched_tokens": MAX_NUM_BATCHED_TOKENS},
        "fitted": not args.no_fit,
        "objective": "mean |log(predicted/published)| on training rows",
        "efficiency": dataclasses.asdict(eff),
        "start": dataclasses.asdict(start),
        "mdape": groups,
        "rows": [{**{k: r[k] for k in ("model", "gpu", "tp", "ep", "dtype", "kv_dtype", "isl", "osl",
                                       "trtllm_version")},
                  "published": r["output_tokens_per_s"], "predicted": round(p, 1),
                  "split": "train" if is_training(r) else ("held-out" if r["role"] == "validate" else "other fit")}
                 for r, p in zip(rows, preds)],
        "elapsed_s": round(time.time() - t_start, 1),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
