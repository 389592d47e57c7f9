"""Kubernetes manifests for a scenario's fleet: vLLM Deployment, Service,
PodDisruptionBudget, KEDA ScaledObject, Karpenter NodePool.

vLLM arguments (``vllm serve``, flag names of vLLM's engine arguments) come from the
scenario field of the same name: ``--tensor-parallel-size`` = ``tp``,
``--pipeline-parallel-size`` = ``pp``, ``--max-num-seqs``, ``--max-num-batched-tokens``,
``--gpu-memory-utilization``, ``--block-size``, ``--enable-prefix-caching`` /
``--no-enable-prefix-caching``, ``--enable-chunked-prefill`` / ``--no-enable-chunked-prefill``,
``--scheduling-policy``; ``kv_dtype`` fp8 → ``--kv-cache-dtype fp8`` (bf16/fp16 → ``auto``,
the model dtype); ``weight_dtype`` fp8 → ``--quantization fp8`` (vLLM's on-the-fly FP8);
int8/int4/fp4 need a pre-quantized checkpoint, whose config tells vLLM the method (a note
says so); LoRA → ``--enable-lora --max-loras N``; speculative decoding →
``--speculative-config`` with ``num_speculative_tokens``. ``--max-model-len`` is the
model's context, capped at the replica's KV capacity (``perf.memory_budget``) so that
vLLM's start-up check (one full-length sequence must fit in the KV cache) passes.

GPU resource names: ``nvidia.com/gpu`` (NVIDIA k8s-device-plugin) and ``amd.com/gpu``
(ROCm k8s-device-plugin). A replica's ``tp × pp`` GPUs are one pod on one node; a
replica larger than the GPU's largest node is refused (multi-node replicas need
LeaderWorkerSet or Ray, not rendered here).

Autoscaling: the simulator's rule (``sim.cluster``) is ``desired = ceil(Σ metric / target)``
over ready replicas, clamped to [min, max], polled every ``poll_interval_s``, no change
while ``sum / (target × replicas)`` is within ``tolerance`` of 1 (the HPA's default 0.1,
kube-controller-manager ``--horizontal-pod-autoscaler-tolerance``), and scale-down to the
highest recommendation of the last ``cooldown_s``. A KEDA Prometheus trigger with
``metricType: AverageValue`` and ``threshold = target`` on ``sum(metric)`` gives the HPA
the same ``ceil(sum / threshold)``; ``pollingInterval`` is the poll period; the HPA's
scale-down stabilization window and KEDA's ``cooldownPeriod`` are ``cooldown_s``. The
difference stated in the manifest: the HPA also limits the scale-up rate (default max(4
pods, 100 %) per 15 s), the simulator does not; a tolerance other than 0.1 needs the
HPA's per-object ``tolerance`` (feature gate ``HPAConfigurableTolerance``), noted.

Karpenter (AWS provider): the NodePool selects instances by the well-known labels
``karpenter.k8s.aws/instance-gpu-name`` (lower-case GPU name, e.g. ``h100``, ``a10g``),
``…/instance-gpu-memory`` (MiB, to tell the A100 40 GB from 80 GB) and
``…/instance-gpu-count`` (the scenario's ``prices.node_sizes`` that hold a replica).
GPUs not sold on EC2 (H100 PCIe, MI300X) get no NodePool and a note.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import ConfigError
from ._source import Target

__all__ = ["GPU_RESOURCES", "EC2_GPU_LABELS", "AUTOSCALER_QUERIES", "RenderOptions", "gpu_resource",
           "hf_model_id", "vllm_args", "manifests", "autoscaler_query"]

# Extended resource name per GPU vendor: NVIDIA/k8s-device-plugin README ("nvidia.com/gpu");
# ROCm/k8s-device-plugin README ("amd.com/gpu").
GPU_RESOURCES: dict[str, str] = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}

# Catalog GPU -> (karpenter.k8s.aws/instance-gpu-name, instance-gpu-memory MiB or None).
# Values: EC2 DescribeInstanceTypes GpuInfo name, lower-cased, as Karpenter's AWS provider
# labels nodes (karpenter.sh docs, "Well-Known Labels": e.g. t4, a10g); memory MiB as
# nvidia-smi reports it (catalog reported_memory_mib: A100 40 GB 40960, 80 GB 81920).
EC2_GPU_LABELS: dict[str, tuple[str, int | None]] = {
    "a10g": ("a10g", None), "l4": ("l4", None), "l40s": ("l40s", None),
    "a100-40g": ("a100", 40960), "a100-80g": ("a100", 81920), "h100-sxm": ("h100", None),
    "h200": ("h200", None), "b200": ("b200", None),
}

# Autoscaler metric (scenario.autoscaler.metric) -> vLLM gauge summed over the fleet.
AUTOSCALER_QUERIES: dict[str, str] = {
    "waiting": "vllm:num_requests_waiting", "running": "vllm:num_requests_running",
    "kv_usage": "vllm:kv_cache_usage_perc",
}

_PORT = 8000   # vllm serve default --port

# Default container image per GPU vendor (vLLM docs, "Using Docker": vllm/vllm-openai is the
# CUDA build; AMD publishes ROCm builds of vLLM as rocm/vllm). Pin a tag in production.
IMAGES: dict[str, str] = {"nvidia": "vllm/vllm-openai:latest", "amd": "rocm/vllm:latest"}


class RenderOptions:
    """Choices the scenario does not make: where the fleet runs and what it pulls."""

    def __init__(self, *, image: str | None = None, namespace: str = "default",
                 model_id: str | None = None, prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090",
                 node_class: str = "default", spot: bool = False) -> None:
        self.image = image
        self.namespace = namespace
        self.model_id = model_id
        self.prometheus_url = prometheus_url
        self.node_class = node_class
        self.spot = spot


def gpu_resource(gpu: Any) -> str:
    """The extended resource name for ``gpu`` (a catalog GPU); ConfigError if none is known."""
    try:
        return GPU_RESOURCES[gpu.vendor]
    except KeyError:
        raise ConfigError(f"GPU {gpu.name!r} is made by {gpu.vendor!r}, which has no Kubernetes device-plugin "
                          f"resource name known to servelab; known vendors: "
                          f"{', '.join(f'{k} ({v})' for k, v in GPU_RESOURCES.items())}") from None


def hf_model_id(sc: Any, override: str | None = None) -> str:
    """The Hugging Face repository vLLM loads: ``override``, else the catalog model's
    source URL (``https://huggingface.co/ORG/NAME/...``), else its first ``ORG/NAME`` alias."""
    if override:
        return override
    from ..scenario.build import load_model

    m = load_model(sc.model)
    src = getattr(m, "source", "") or ""
    if "huggingface.co/" in src:
        parts = src.split("huggingface.co/", 1)[1].split("/")
        if len(parts) >= 2:
            return f"{parts[0]}/{parts[1]}"
    for a in getattr(m, "aliases", ()):
        if "/" in a:
            return a
    raise ConfigError(f"model {sc.model!r} names no Hugging Face repository; pass --model-id ORG/NAME")


def _kv_capacity_tokens(sc: Any) -> int:
    from ..perf import memory_budget
    from ..scenario.build import deployment

    return memory_budget(deployment(sc)).kv_capacity_tokens


def vllm_args(sc: Any, *, model_id: str) -> tuple[list[str], list[str]]:
    """``vllm serve`` arguments for ``sc`` and notes on what they cannot express."""
    from ..scenario.build import load_model

    e = sc.engine
    notes: list[str] = []
    max_len = min(load_model(sc.model).max_context, _kv_capacity_tokens(sc))
    args = [model_id, "--served-model-name", sc.model, "--port", str(_PORT),
            "--tensor-parallel-size", str(sc.tp), "--pipeline-parallel-size", str(sc.pp),
            "--max-num-seqs", str(e.max_num_seqs), "--max-num-batched-tokens", str(e.max_num_batched_tokens),
            "--gpu-memory-utilization", f"{e.gpu_memory_utilization:g}", "--block-size", str(e.block_size),
            "--max-model-len", str(max_len),
            "--kv-cache-dtype", "fp8" if sc.kv_dtype == "fp8" else "auto",
            "--enable-prefix-caching" if e.enable_prefix_caching else "--no-enable-prefix-caching",
            "--enable-chunked-prefill" if e.enable_chunked_prefill else "--no-enable-chunked-prefill"]
    if sc.weight_dtype == "fp8":
        args += ["--quantization", "fp8"]
    elif sc.weight_dtype in ("bf16", "fp16"):
        args += ["--dtype", {"bf16": "bfloat16", "fp16": "float16"}[sc.weight_dtype]]
    else:
        notes.append(f"weight_dtype {sc.weight_dtype}: vLLM reads the quantization method from a pre-quantized "
                     f"checkpoint's config; pass --model-id with one (e.g. an AWQ/GPTQ/compressed-tensors repo)")
    if sc.ep > 1:
        args += ["--enable-expert-parallel"]
    if e.scheduling_policy != "fcfs":
        args += ["--scheduling-policy", e.scheduling_policy]
    if sc.lora is not None:
        args += ["--enable-lora", "--max-loras", str(sc.lora.max_loras)]
        notes.append(f"{sc.lora.adapters} LoRA adapters: load them with --lora-modules NAME=PATH or at run time "
                     "(/v1/load_lora_adapter, VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)")
    if sc.speculative is not None:
        args += ["--speculative-config", json.dumps({"method": "ngram",
                                                     "num_speculative_tokens": sc.speculative.num_tokens,
                                                     "prompt_lookup_max": 4})]
        notes.append(f"speculative decoding: the plan assumed acceptance {sc.speculative.acceptance_rate:g} per "
                     "draft token; the rendered method is n-gram prompt lookup — replace it with the draft model "
                     "whose acceptance you measured")
    if e.max_queue is not None or sc.admission.max_queue is not None:
        notes.append("vLLM has no bound on its waiting queue: the planned max_queue must be enforced by the "
                     "gateway in front of the Service")
    if sc.kv_tiers:
        notes.append("KV offload tiers are not rendered (they need an engine-side connector such as LMCache)")
    if sc.kv_policy is not None:
        notes.append("the KV tier policy (kv_policy) is a simulator setting; the rendered engine keeps its own "
                     "eviction and offload behaviour")
    return args, notes


def autoscaler_query(sc: Any, name: str) -> str:
    """The PromQL sum the autoscaler divides by its target."""
    metric = AUTOSCALER_QUERIES[sc.autoscaler.metric]
    return f'sum({metric}{{model_name="{sc.model}"}})'


def _labels(t: Target) -> dict[str, str]:
    return {"app.kubernetes.io/name": t.name, "app.kubernetes.io/part-of": "servelab-fleet",
            "app.kubernetes.io/component": "vllm"}


def _meta(t: Target, opts: RenderOptions, name: str | None = None, namespaced: bool = True) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name or t.name, "labels": _labels(t),
                         "annotations": {"servelab.dev/source": t.source}}
    if namespaced:
        m["namespace"] = opts.namespace
    return m


def manifests(t: Target, opts: RenderOptions | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The fleet's Kubernetes objects (in apply order) and notes for the operator."""
    from ..catalog import get_gpu

    opts = opts or RenderOptions()
    sc = t.scenario
    gpu = get_gpu(sc.gpu)
    res = gpu_resource(gpu)
    n_gpu = sc.tp * sc.pp
    if n_gpu > gpu.gpus_per_node:
        raise ConfigError(f"a replica needs tp × pp = {n_gpu} GPUs, more than the {gpu.gpus_per_node} of the "
                          f"largest {gpu.name} node; multi-node replicas (LeaderWorkerSet, Ray) are not rendered")
    model_id = hf_model_id(sc, opts.model_id)
    args, notes = vllm_args(sc, model_id=model_id)
    if opts.image is None:
        notes.append(f"image {IMAGES[gpu.vendor]}: pin a release tag (--image) before deploying")
    auto = sc.autoscaler
    load_s = (auto.model_load_delay_s if auto else 0.0)
    # Start-up probe: 10 s period; allow twice the planned model-load delay, at least 10 min
    # (weights of a large model over a network volume take minutes).
    startup_failures = max(60, math.ceil(2 * load_s / 10))
    labels = _labels(t)
    ec2 = EC2_GPU_LABELS.get(gpu.name)
    node_selector = {}
    if ec2 is not None:
        node_selector["karpenter.k8s.aws/instance-gpu-name"] = ec2[0]
        if ec2[1] is not None:
            node_selector["karpenter.k8s.aws/instance-gpu-memory"] = str(ec2[1])
    probe = {"httpGet": {"path": "/health", "port": _PORT}}
    container = {
        "name": "vllm", "image": opts.image or IMAGES[gpu.vendor], "command": ["vllm", "serve"], "args": args,
        "ports": [{"name": "http", "containerPort": _PORT}],
        "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token",
                                                                    "optional": True}}}],
        "resources": {"limits": {res: n_gpu}, "requests": {res: n_gpu}},
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 6},
        "startupProbe": {**probe, "periodSeconds": 10, "failureThreshold": startup_failures},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    replicas = sc.replicas if auto is None else max(sc.replicas, auto.min_replicas)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(t, opts),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": t.name}},
            "template": {
                "metadata": {"labels": labels,
                             "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(_PORT),
                                             "prometheus.io/path": "/metrics"}},
                "spec": {
                    "containers": [container],
                    "nodeSelector": node_selector,
                    "tolerations": [{"key": res, "operator": "Exists", "effect": "NoSchedule"}],
                    # shared memory for tensor-parallel workers (vLLM docs, "Using Kubernetes")
                    "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}],
                    "terminationGracePeriodSeconds": 60,
                },
            },
        },
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": _meta(t, opts),
               "spec": {"selector": {"app.kubernetes.io/name": t.name},
                        "ports": [{"name": "http", "port": _PORT, "targetPort": "http"}]}}
    # The plan sized N active + k spare replicas so that k may be lost without missing the SLO.
    spares = t.spare_replicas if t.spare_replicas is not None else 1
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(t, opts),
           "spec": {"maxUnavailable": max(1, spares),
                    "selector": {"matchLabels": {"app.kubernetes.io/name": t.name}}}}
    objs: list[dict[str, Any]] = [deployment, service, pdb]
    if auto is not None:
        poll = math.ceil(auto.poll_interval_s)
        cool = math.ceil(auto.cooldown_s)
        if poll != auto.poll_interval_s or cool != auto.cooldown_s:
            notes.append("KEDA takes whole seconds: poll interval and cool-down rounded up")
        if getattr(auto, "tolerance", 0.1) != 0.1:
            notes.append(f"autoscaler tolerance {auto.tolerance:g} differs from the HPA's cluster default 0.1: "
                         "set behavior.scaleUp/scaleDown.tolerance (feature gate HPAConfigurableTolerance)")
        objs.append({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {**_meta(t, opts), "annotations": {
                "servelab.dev/source": t.source,
                "servelab.dev/rule": "desired = ceil(sum(metric) / target), as the simulator's autoscaler",
                "servelab.dev/difference": "the HPA also limits the scale-up rate (max of 4 pods and 100% per "
                                           "15 s by default); the simulator does not"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": t.name},
                "pollingInterval": poll, "cooldownPeriod": cool,
                "minReplicaCount": auto.min_replicas, "maxReplicaCount": auto.max_replicas,
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                    "scaleDown": {"stabilizationWindowSeconds": cool},
                    "scaleUp": {"stabilizationWindowSeconds": 0}}}},
                "triggers": [{"type": "prometheus", "metricType": "AverageValue", "metadata": {
                    "serverAddress": opts.prometheus_url, "query": autoscaler_query(sc, t.name),
                    "threshold": f"{auto.target:g}"}}],
            }})
    else:
        notes.append("the scenario has no autoscaler: a fixed fleet is rendered (add one with "
                     "--set autoscaler.max_replicas=N)")
    if ec2 is None:
        notes.append(f"{gpu.name} is not offered on EC2: no Karpenter NodePool rendered")
    else:
        max_replicas = auto.max_replicas if auto else sc.replicas
        sizes = [s for s in sc.prices.node_sizes if s >= n_gpu and s <= gpu.gpus_per_node] or [gpu.gpus_per_node]
        reqs = [{"key": "karpenter.sh/capacity-type", "operator": "In",
                 "values": ["spot", "on-demand"] if opts.spot else ["on-demand"]},
                {"key": "karpenter.k8s.aws/instance-gpu-name", "operator": "In", "values": [ec2[0]]},
                {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "In", "values": [str(s) for s in sizes]}]
        if ec2[1] is not None:
            reqs.append({"key": "karpenter.k8s.aws/instance-gpu-memory", "operator": "In", "values": [str(ec2[1])]})
        objs.append({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": _meta(t, opts, namespaced=False),
            "spec": {
                "template": {"metadata": {"labels": {"servelab.dev/fleet": t.name}},
                             "spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                       "name": opts.node_class},
                                      "requirements": reqs,
                                      "taints": [{"key": res, "effect": "NoSchedule"}]}},
                "limits": {res: str(max_replicas * n_gpu)},
                "disruption": {"consolidationPolicy": "WhenEmpty",
                               "consolidateAfter": f"{math.ceil(auto.cooldown_s) if auto else 300}s"},
            }})
    return objs, notes
