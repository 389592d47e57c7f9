"""A Ray Serve LLM application config (``serve run config.yaml``) for a scenario's fleet.

Layout of Ray Serve's config file (``applications`` with ``import_path``
``ray.serve.llm:build_openai_app`` and ``args.llm_configs``: ``model_loading_config``,
``accelerator_type``, ``deployment_config.autoscaling_config``, ``engine_kwargs``), as in
the Ray Serve LLM docs. ``engine_kwargs`` are the vLLM engine arguments of
:func:`servelab.deploy.kubernetes.vllm_args`, by their Python names.

Autoscaling: Ray Serve scales on *ongoing* requests per replica (running + waiting).
The scenario's rule reads one vLLM gauge per replica:

* ``running`` target t → ``target_ongoing_requests = t`` (equal when nothing waits);
* ``waiting`` target t → ``target_ongoing_requests = max_num_seqs + t``: requests wait
  only once ``max_num_seqs`` run, if the KV cache is not the limit first — then Ray
  scales later than the plan's autoscaler (a note says so);
* ``kv_usage`` has no Ray Serve equivalent: refused.

``downscale_delay_s`` = ``cooldown_s``; ``upscale_delay_s`` = ``poll_interval_s``
(the plan's autoscaler acts at its next poll); ``metrics_interval_s`` = ``poll_interval_s``.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ._source import Target
from .kubernetes import RenderOptions, hf_model_id, vllm_args

__all__ = ["RAY_ACCELERATORS", "ray_serve_config"]

# Catalog GPU -> Ray accelerator type: ray.util.accelerators constants (NVIDIA_TESLA_A10G "A10G",
# NVIDIA_L4 "L4", NVIDIA_A100_40G/80G "A100-40G"/"A100-80G", NVIDIA_H100 "H100", NVIDIA_H200 "H200",
# AMD_INSTINCT_MI300x "AMD-Instinct-MI300X-OAM"). "L40S" and "B200" are not among the constants
# checked; they assume Ray's label is the detected product name — verify on your cluster.
RAY_ACCELERATORS: dict[str, str] = {
    "a10g": "A10G", "l4": "L4", "l40s": "L40S", "a100-40g": "A100-40G", "a100-80g": "A100-80G",
    "h100-sxm": "H100", "h100-pcie": "H100", "h200": "H200", "b200": "B200",
    "mi300x": "AMD-Instinct-MI300X-OAM",
}


def _engine_kwargs(args: list[str]) -> dict[str, Any]:
    """``vllm serve`` flags → engine kwargs (``--max-num-seqs 8`` → ``max_num_seqs: 8``)."""
    import json

    out: dict[str, Any] = {}
    i = 1   # args[0] is the model
    while i < len(args):
        flag = args[i].removeprefix("--").replace("-", "_")
        nxt = args[i + 1] if i + 1 < len(args) else None
        if nxt is None or nxt.startswith("--"):
            if flag.startswith("no_"):
                out[flag[3:]] = False
            else:
                out[flag] = True
            i += 1
            continue
        val: Any = nxt
        for conv in (int, float):
            try:
                val = conv(nxt)
                break
            except ValueError:
                continue
        if flag == "speculative_config":
            val = json.loads(nxt)
        out[flag] = val
        i += 2
    for k in ("served_model_name", "port"):
        out.pop(k, None)
    return out


def ray_serve_config(t: Target, opts: RenderOptions | None = None) -> tuple[dict[str, Any], list[str]]:
    """The Serve config and notes."""
    opts = opts or RenderOptions()
    sc = t.scenario
    model_id = hf_model_id(sc, opts.model_id)
    args, notes = vllm_args(sc, model_id=model_id)
    auto = sc.autoscaler
    if auto is None:
        scaling: dict[str, Any] = {"min_replicas": sc.replicas, "max_replicas": sc.replicas,
                                   "initial_replicas": sc.replicas}
    else:
        if auto.metric == "kv_usage":
            raise ConfigError("autoscaler.metric kv_usage has no Ray Serve equivalent (Ray scales on ongoing "
                              "requests); use waiting or running for the ray-serve target")
        target = auto.target if auto.metric == "running" else sc.engine.max_num_seqs + auto.target
        if auto.metric == "waiting":
            notes.append(f"Ray Serve target_ongoing_requests = max_num_seqs + waiting target = {target:g}; "
                         "when the KV cache fills before max_num_seqs run, Ray scales later than the plan")
        scaling = {"min_replicas": auto.min_replicas, "max_replicas": auto.max_replicas,
                   "initial_replicas": max(sc.replicas, auto.min_replicas),
                   "target_ongoing_requests": target, "metrics_interval_s": auto.poll_interval_s,
                   "upscale_delay_s": auto.poll_interval_s, "downscale_delay_s": auto.cooldown_s}
    llm = {"model_loading_config": {"model_id": sc.model, "model_source": model_id},
           "accelerator_type": RAY_ACCELERATORS.get(sc.gpu, sc.gpu.upper()),
           "deployment_config": {"autoscaling_config": scaling},
           "engine_kwargs": _engine_kwargs(args)}
    if sc.lora is not None:
        llm["lora_config"] = {"max_num_adapters_per_replica": sc.lora.max_loras}
    cfg = {"applications": [{"name": t.name, "route_prefix": "/", "import_path": "ray.serve.llm:build_openai_app",
                             "args": {"llm_configs": [llm]}}]}
    return cfg, notes
