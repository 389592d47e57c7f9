"""Engine profiles: what differs between serving engines running the same GPU kernels.

An :class:`EngineProfile` is the set of runtime parameters of one engine that the
roofline model needs on top of the hardware: its :class:`Efficiency` (achieved
fractions of peak, fixed latencies), its fixed per-request cost, and how it sizes the
KV cache.

**What is shared and what is not.** vLLM, SGLang and TensorRT-LLM run the same class of
GPU kernels on the same hardware: cuBLAS/CUTLASS GEMMs for the linear layers,
FlashAttention/FlashInfer-style (or TensorRT-LLM's own FMHA/XQA) attention that streams
the KV cache, NCCL or custom all-reduce. The achieved fractions of peak FLOP/s and HBM
bandwidth are properties of those kernels on a GPU family, so every profile takes the
kernel efficiencies (``compute``, ``memory``, ``attention_*``, ``comm``, ``comm_latency_s``,
``expert_compute``) of the deployment's GPU family (:mod:`servelab.perf.families`,
:meth:`EngineProfile.efficiency_for`); ``EngineProfile.efficiency`` is the profile on the
global fit (``FIT_NOTE``). What differs is the host runtime: TensorRT-LLM's C++ executor overlaps scheduling with the GPU, so its
per-step overhead fits to 0; vLLM's Python scheduler, input preparation and sampling
add a fixed time to every engine step. Only ``step_overhead_s``, ``seq_overhead_s`` and
``request_overhead_s`` therefore change between profiles.

**vLLM step overhead** — a one-parameter least-squares fit (relative errors) of
``step_overhead_s`` on the DESIGNATED fit rows: vLLM's CI latency tests on H200
(Buildkite build 9515; Llama-3.1-8B TP1, Llama-3-70B TP4, Mixtral-8x7B TP2; batch 8,
32 in / 128 out; ``benchmarks/data/validation_published.csv``). Each row is a static
batch of 128 engine steps, so the batch latency is ``L = L_roofline + 128 · s`` and::

    s = Σ n_i (L_i − P_i) / L_i²  /  Σ n_i² / L_i²       (n_i = 128 steps)

Result: 2.19 ms (``python benchmarks/validate.py --fit-vllm``). Held out: the same CI
test on H100 (``benchmarks/data/vllm_published.csv``): errors −1 %, +11 %, +15 % with
the profile (−13 %, −17 %, +3 % without). ``seq_overhead_s`` is not identifiable from
rows that all have batch 8 and stays 0. The overhead depends on the vLLM version: the
value describes the 2024 CI builds; later releases with asynchronous scheduling hide
more of it (docs/perf.md, "Limits").

**Per-request cost** — 0 in every profile: no published vLLM TTFT at a known prompt
length on a catalogued GPU was found to fit it, and the short-prompt TTFT gap seen on
LMDeploy (12 ms on a 7B model, 43 ms on 70B TP4) grows with the model, so it is not a
fixed cost. The field is wired into :func:`servelab.perf.ttft_s` (and exposed for the
simulator) so that a sourced value can be set.

**KV memory rule** — ``total_fraction``: the engine may use that fraction of the whole
device and the KV cache gets what weights, activations and buffers leave of it (vLLM's
``gpu_memory_utilization``, default 0.9); ``free_fraction``: the KV cache gets that
fraction of the memory left FREE after weights, activations and buffers (TensorRT-LLM's
``kv_cache_free_gpu_mem_fraction``, default 0.9). :meth:`EngineProfile.deployment`
turns either into the equivalent ``Deployment.gpu_memory_utilization``.

SGLang has no profile: no published SGLang latency table at known shapes was found to
fit one (see docs/perf.md "Engine profiles").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..catalog.gpus import GPU
from ..errors import ConfigError
from .deployment import FIT_NOTE, Deployment, Efficiency
from .families import family_efficiency
from .memory import memory_budget

__all__ = ["EngineProfile", "ENGINE_PROFILES", "DEFAULT_ENGINE", "KV_MEMORY_RULES",
           "get_engine", "engine_names", "VLLM_STEP_OVERHEAD_S"]

KV_MEMORY_RULES = ("total_fraction", "free_fraction")

# FITTED: benchmarks/validate.py --fit-vllm on the vLLM CI H200 latency rows (build 9515);
# the closed-form least squares gives 2.186 ms. Held-out error in docs/perf.md.
VLLM_STEP_OVERHEAD_S = 2.19e-3

DEFAULT_ENGINE = "vllm"    # what most deployments run, and what the emulator exposes


@dataclass(frozen=True, kw_only=True)
class EngineProfile:
    """Runtime parameters of one serving engine (see the module docstring)."""
    name: str
    description: str
    efficiency: Efficiency           # kernel efficiencies + this engine's step/seq overheads
    per_request_overhead_s: float    # fixed cost added to every request's TTFT
    kv_memory_rule: str              # "total_fraction" | "free_fraction"
    source: str                      # where the values come from
    # Efficiency fields set by the engine's host runtime, whatever the GPU family
    # (vLLM's fitted step overhead); every other field comes from the GPU family's fit.
    runtime_overrides: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.kv_memory_rule not in KV_MEMORY_RULES:
            raise ConfigError(f"unknown KV memory rule {self.kv_memory_rule!r}; "
                              f"valid: {', '.join(KV_MEMORY_RULES)}")
        if self.per_request_overhead_s < 0:
            raise ConfigError(f"per_request_overhead_s={self.per_request_overhead_s} must be >= 0")
        if self.efficiency.request_overhead_s != self.per_request_overhead_s:
            raise ConfigError(
                f"engine {self.name!r}: efficiency.request_overhead_s="
                f"{self.efficiency.request_overhead_s} must equal per_request_overhead_s="
                f"{self.per_request_overhead_s}")

    def efficiency_for(self, gpu: GPU) -> Efficiency:
        """Kernel efficiencies of ``gpu``'s family (:mod:`servelab.perf.families`) with this
        engine's runtime overheads and per-request cost."""
        return dataclasses.replace(family_efficiency(gpu), **dict(self.runtime_overrides),
                                   request_overhead_s=self.per_request_overhead_s)

    def apply(self, eff: Efficiency) -> Efficiency:
        """``eff`` (kernel efficiencies) with this engine's runtime overheads."""
        return dataclasses.replace(eff, **dict(self.runtime_overrides),
                                   request_overhead_s=self.per_request_overhead_s)

    def deployment(self, dep: Deployment, memory_fraction: float | None = None) -> Deployment:
        """``dep`` run by this engine: the efficiency of its GPU's family under this engine
        (:meth:`efficiency_for`), and ``memory_fraction`` (default:
        ``dep.gpu_memory_utilization``) read under this engine's KV memory rule and
        converted to the equivalent fraction of the whole device."""
        frac = dep.gpu_memory_utilization if memory_fraction is None else memory_fraction
        if not 0.0 < frac <= 1.0:
            raise ConfigError(f"memory fraction {frac} must be in (0, 1]")
        out = dataclasses.replace(dep, efficiency=self.efficiency_for(dep.gpu), gpu_memory_utilization=frac)
        if self.kv_memory_rule == "free_fraction":
            full = memory_budget(dataclasses.replace(out, gpu_memory_utilization=1.0))
            free = full.kv_bytes if full.feasible else 0.0
            mem = dep.gpu.memory_bytes
            out = dataclasses.replace(out, gpu_memory_utilization=(mem - (1 - frac) * free) / mem)
        return out

    def to_dict(self) -> dict:
        """JSON-ready description (what CLI outputs report)."""
        return {"name": self.name, "description": self.description,
                "per_request_overhead_s": self.per_request_overhead_s,
                "kv_memory_rule": self.kv_memory_rule, "source": self.source,
                "efficiency": dataclasses.asdict(self.efficiency),
                "runtime_overrides": dict(self.runtime_overrides)}


_TRTLLM = Efficiency()       # the fitted defaults (FIT_NOTE)

ENGINE_PROFILES: dict[str, EngineProfile] = {
    "trtllm": EngineProfile(
        name="trtllm",
        description="TensorRT-LLM (C++ executor, in-flight batching): per-step overhead hidden",
        efficiency=_TRTLLM,
        per_request_overhead_s=0.0,
        kv_memory_rule="free_fraction",
        source=FIT_NOTE,
    ),
    "vllm": EngineProfile(
        name="vllm",
        description="vLLM (Python scheduler, CUDA-graph decode): TensorRT-LLM kernel "
                    "efficiencies plus a fitted per-step overhead",
        efficiency=dataclasses.replace(_TRTLLM, step_overhead_s=VLLM_STEP_OVERHEAD_S),
        per_request_overhead_s=0.0,
        kv_memory_rule="total_fraction",
        runtime_overrides=(("step_overhead_s", VLLM_STEP_OVERHEAD_S), ("seq_overhead_s", 0.0)),
        source=("step_overhead_s fitted (closed-form least squares on relative error) on the "
                "vLLM CI latency tests, H200, Buildkite build 9515 (batch 8, 32 in / 128 out; "
                "Llama-3.1-8B, Llama-3-70B TP4, Mixtral-8x7B TP2): 2.19 ms; held out: the same "
                "tests on H100, errors -1/+11/+15 %; kernel efficiencies as for trtllm "
                "(same kernel classes); per-request cost 0 (no sourced vLLM TTFT to fit); "
                "see docs/perf.md 'Engine profiles'"),
    ),
}


def engine_names() -> tuple[str, ...]:
    return tuple(ENGINE_PROFILES)


def get_engine(name: str) -> EngineProfile:
    """The profile called ``name`` (case-insensitive)."""
    key = name.strip().lower() if isinstance(name, str) else name
    try:
        return ENGINE_PROFILES[key]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown engine {name!r}; known: {', '.join(ENGINE_PROFILES)}") from None
