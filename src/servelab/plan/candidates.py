"""Step 4: enumerate candidate replica configurations and screen out impossible ones.

A candidate is one replica shape: GPU type × tensor parallel (TP) × pipeline parallel
(PP) × expert parallel (EP, MoE only) × weight dtype × KV-cache dtype. Every
combination is kept — infeasible ones with the reason — so the plan shows what was
ruled out and why. The static rules checked here (memory comes in step 5):

* the GPU has no dense tensor-core rates at all in the catalog (A10G). A GPU without
  tensor cores for the weight dtype (fp8 on A100) stays feasible but is flagged
  weight-only: engines dequantize fp8 weights to bf16 inside the GEMM there (W8A16,
  e.g. vLLM's Marlin FP8 kernel), so memory shrinks and compute does not speed up;
* TP larger than a node (``gpus_per_node``): a TP group all-reduces every layer and
  must stay inside one node's NVLink/PCIe domain;
* attention heads not divisible by TP, or KV heads neither divisible by TP nor
  dividing it (vLLM shards heads evenly and replicates KV heads when TP > KV heads);
* layers fewer than PP stages; EP only for MoE models, equal to TP (experts sharded
  over the TP GPUs of a stage) when enabled;
* no price in the catalog (the plan cannot cost it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

__all__ = ["Candidate", "Screen", "enumerate_candidates", "screen_candidate"]


@dataclass(frozen=True, kw_only=True, order=True)
class Candidate:
    gpu: str
    tp: int = 1
    pp: int = 1
    ep: int = 1
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"

    @property
    def num_gpus(self) -> int:
        return self.tp * self.pp

    @property
    def key(self) -> str:
        """Stable id, e.g. ``h100-sxm/tp2/bf16/kv-fp8`` (``/pp2``, ``/ep8`` when used)."""
        parts = [self.gpu, f"tp{self.tp}"]
        if self.pp > 1:
            parts.append(f"pp{self.pp}")
        if self.ep > 1:
            parts.append(f"ep{self.ep}")
        parts += [self.weight_dtype, f"kv-{self.kv_dtype}"]
        return "/".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["key"] = self.key
        d["num_gpus"] = self.num_gpus
        return d


@dataclass(frozen=True, kw_only=True)
class Screen:
    feasible: bool
    reason: str = ""                 # why not, when not feasible
    notes: tuple[str, ...] = ()      # caveats on feasible candidates


def enumerate_candidates(*, model: Any, gpus: Sequence[Any], weight_dtypes: Sequence[str],
                         kv_dtypes: Sequence[str] | None = None,
                         tps: Iterable[int] = (1, 2, 4, 8), pps: Iterable[int] = (1,)) -> list[Candidate]:
    """The full cross product (feasible or not), in a deterministic order."""
    kv_dtypes = list(kv_dtypes) if kv_dtypes else list(weight_dtypes)
    out: list[Candidate] = []
    for gpu in gpus:
        for tp in tps:
            for pp in pps:
                eps = (1, tp) if (model.moe is not None and tp > 1) else (1,)
                for ep in eps:
                    for w in weight_dtypes:
                        for kv in kv_dtypes:
                            out.append(Candidate(gpu=gpu.name, tp=tp, pp=pp, ep=ep,
                                                 weight_dtype=w, kv_dtype=kv))
    return out


_TENSOR_DTYPE = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int8": "int8",
                 "int4": "bf16", "fp4": "fp4"}   # int4 (AWQ/GPTQ) dequantizes to bf16 GEMMs


def screen_candidate(c: Candidate, *, model: Any, gpu: Any) -> Screen:
    """Static feasibility (no memory arithmetic); see the module docstring for the rules."""
    if not gpu.peak_flops:
        return Screen(feasible=False, reason=f"{gpu.name} has no dense tensor-core rates in the catalog")
    if c.tp > gpu.gpus_per_node:
        return Screen(feasible=False,
                      reason=f"TP{c.tp} exceeds the {gpu.gpus_per_node} GPUs of one {gpu.name} node")
    if model.num_attention_heads % c.tp:
        return Screen(feasible=False, reason=f"{model.num_attention_heads} attention heads "
                                             f"not divisible by TP{c.tp}")
    kv = model.num_kv_heads
    if kv % c.tp and c.tp % kv:
        return Screen(feasible=False, reason=f"{kv} KV heads neither divisible by TP{c.tp} nor dividing it")
    if c.pp > model.num_layers:
        return Screen(feasible=False, reason=f"PP{c.pp} exceeds the model's {model.num_layers} layers")
    if c.ep > 1 and model.moe is None:
        return Screen(feasible=False, reason="expert parallelism needs an MoE model")
    if gpu.price_per_hour_usd <= 0:
        return Screen(feasible=False, reason=f"{gpu.name} has no on-demand price in the catalog")
    notes = []
    need = _TENSOR_DTYPE.get(c.weight_dtype, c.weight_dtype)
    if c.weight_dtype == "int4" or need not in gpu.peak_flops:
        notes.append(f"{c.weight_dtype} weights run weight-only on {gpu.name} (dequantized to bf16 "
                     f"in the GEMM): memory shrinks, compute peak stays bf16")
    if c.weight_dtype in ("fp8", "int8", "int4", "fp4") or c.kv_dtype in ("fp8", "int8"):
        notes.append(f"quantized ({c.weight_dtype} weights, {c.kv_dtype} KV): needs quality evidence")
    if c.tp > 1 and gpu.interconnect_bytes_per_s <= 0:
        notes.append(f"TP{c.tp} all-reduce over PCIe (no NVLink on {gpu.name})")
    if c.kv_dtype == "fp8" and "fp8" not in gpu.peak_flops:
        notes.append("fp8 KV stored only; attention computed in bf16")
    return Screen(feasible=True, notes=tuple(notes))
