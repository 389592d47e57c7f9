"""The command-line spellings of the scenario: one table of flags and how their values become a Scenario.

:data:`FLAGS` names every shared scenario flag: its spellings, the scenario field path it
sets (``""`` for the combined flags in :data:`COMBINED`, which build ``kv_tiers``,
``faults`` or ``rate_curve``), its type, help text and help panel. The CLI turns each row
into an option (``servelab.cli._scenario``); :class:`ScenarioArgs` holds what was given
and :meth:`ScenarioArgs.resolve` validates it into a :class:`~servelab.scenario.Scenario`:
defaults, then the file, then the flags and ``--set`` (later wins). Flags left out count
as "not given", so a file's value stands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = ["Flag", "FLAGS", "COMBINED", "ScenarioArgs", "flag_paths", "parse_kv_tiers", "NVME_READ_GB_S",
           "NVME_LATENCY_MS", "P_FILE"]

# Samsung 990 PRO (PCIe Gen4 x4 NVMe): sequential read up to 7,450 MB/s (Samsung launch
# specification, Aug 2022). One drive per replica by default.
NVME_READ_GB_S = 7.45
# Fixed cost of one NVMe load: a QD1 4 KiB random read on TLC NAND takes roughly
# 50-100 µs (AnandTech enterprise NVMe roundups, QD1 random-read latency); 100 µs is an
# order-of-magnitude assumption, not a measurement. Host DRAM: 0 (PCIe latency ~1 µs).
NVME_LATENCY_MS = 0.1

P_HW, P_ENGINE, P_FEAT, P_FLEET, P_AUTO, P_LOAD, P_FILE = (
    "Scenario: model and hardware", "Scenario: engine", "Scenario: LoRA, speculative decoding, KV tiers",
    "Scenario: fleet", "Scenario: autoscaler and faults", "Scenario: workload, SLO, prices",
    "Scenario file")
P_PD = "Scenario: prefill/decode pools (simulate, decide)"


@dataclass(frozen=True)
class Flag:
    param: str                      # Python parameter name
    names: tuple[str, ...]          # flag spellings (first is the main one)
    path: str                       # scenario field path it sets ("" for combined flags)
    type: Any
    help: str
    panel: str


def _f(param: str, names: str, path: str, typ: Any, help: str, panel: str) -> Flag:
    return Flag(param, tuple(names.split()), path, typ, help, panel)


FLAGS: tuple[Flag, ...] = (
    _f("model", "--model -m", "model", str, "Model id (see `servelab catalog models`) or a path to an HF config.json. [default: llama-3.1-8b]", P_HW),
    _f("gpu", "--gpu -g", "gpu", str, "GPU id (see `servelab catalog gpus`). [default: h100-sxm]", P_HW),
    _f("tp", "--tp --tensor-parallel-size", "tp", int, "Tensor-parallel degree per replica. [default: 1]", P_HW),
    _f("pp", "--pp --pipeline-parallel-size", "pp", int, "Pipeline-parallel degree per replica. [default: 1]", P_HW),
    _f("ep", "--ep", "ep", int, "Expert-parallel degree (MoE; divides tp). [default: 1]", P_HW),
    _f("dtype", "--dtype", "weight_dtype", str, "Weights: bf16, fp16, fp8, int8, int4 (AWQ/GPTQ g128), fp4. [default: bf16]", P_HW),
    _f("kv_dtype", "--kv-dtype --kv-cache-dtype", "kv_dtype", str, "KV cache: bf16, fp16, fp8. [default: bf16]", P_HW),
    _f("engine", "--engine", "engine.profile", str, "Engine profile: vllm | trtllm (step overheads, KV memory rule). [default: vllm]", P_ENGINE),
    _f("max_num_seqs", "--max-num-seqs", "engine.max_num_seqs", int, "Most sequences per step (vLLM). [default: 256]", P_ENGINE),
    _f("max_num_batched_tokens", "--max-num-batched-tokens", "engine.max_num_batched_tokens", int, "Token budget per step. [default: 8192]", P_ENGINE),
    _f("gpu_memory_utilization", "--gpu-memory-utilization", "engine.gpu_memory_utilization", float,
       "Memory fraction under the engine's rule: of the whole GPU (vllm), of the memory free after weights (trtllm). [default: 0.9]", P_ENGINE),
    _f("block_size", "--block-size", "engine.block_size", int, "KV block size in tokens. [default: 16]", P_ENGINE),
    _f("prefix_caching", "--prefix-caching/--no-prefix-caching", "engine.enable_prefix_caching", bool, "Automatic prefix caching. [default: on]", P_ENGINE),
    _f("chunked_prefill", "--chunked-prefill/--no-chunked-prefill", "engine.enable_chunked_prefill", bool, "Chunked prefill. [default: on]", P_ENGINE),
    _f("max_waiting", "--max-waiting", "engine.max_queue", int, "Waiting-queue bound per replica (503 beyond). [default: unbounded]", P_ENGINE),
    _f("scheduling_policy", "--scheduling-policy", "engine.scheduling_policy", str, "fcfs | priority. [default: fcfs]", P_ENGINE),
    _f("calibration", "--calibration", "calibration", str, "Calibration JSON (`servelab calibrate`): its efficiency replaces the engine profile's.", P_ENGINE),
    _f("step_time_factor", "--step-time-factor", "step_time_factor", float, "Multiply every modelled step time (e.g. an error band's edge). [default: 1]", P_ENGINE),
    _f("lora_adapters", "--lora-adapters", "lora.adapters", int, "Distinct LoRA adapters the requests use (enables multi-LoRA).", P_FEAT),
    _f("lora_distribution", "--lora-distribution", "lora.distribution", str, "Adapter popularity: uniform | zipf. [default: uniform]", P_FEAT),
    _f("max_loras", "--max-loras", "lora.max_loras", int, "Adapter slots on the GPU (vLLM --max-loras). [default: 1]", P_FEAT),
    _f("lora_load_s", "--lora-load-s", "lora.load_s", float, "Seconds to load a non-resident adapter. [default: 0]", P_FEAT),
    _f("num_speculative_tokens", "--num-speculative-tokens", "speculative.num_tokens", int, "Draft tokens per verification step (enables speculative decoding).", P_FEAT),
    _f("spec_acceptance_rate", "--spec-acceptance-rate", "speculative.acceptance_rate", float, "Probability each draft token is accepted.", P_FEAT),
    _f("spec_draft_cost", "--spec-draft-cost", "speculative.draft_cost", float, "Draft time per token as a fraction of a decode step's fixed time. [default: 0]", P_FEAT),
    _f("cpu_kv_gib", "--cpu-kv-gib", "", float, "Host-DRAM KV tier per replica, GiB (evicted prefixes reload over PCIe).", P_FEAT),
    _f("nvme_kv_gib", "--nvme-kv-gib", "", float, "NVMe KV tier per replica below DRAM, GiB (host bounce, min(PCIe, NVMe read / TP)).", P_FEAT),
    _f("nvme_read_gb_s", "--nvme-read-gbps", "", float, f"NVMe sequential read per replica, GB/s. [default: {NVME_READ_GB_S} (Samsung 990 PRO)]", P_FEAT),
    _f("nvme_latency_ms", "--nvme-latency-ms", "", float, f"Fixed cost of one NVMe load, ms (assumption). [default: {NVME_LATENCY_MS}]", P_FEAT),
    _f("kv_tiers", "--kv-tiers", "", str, "More KV tiers below DRAM/NVMe: name:GiB[:GB/s[:latency_ms]],…", P_FEAT),
    _f("kv_policy", "--kv-policy", "kv_policy.policy", str, "KV tier policy: lru | priority | cost. [default: lru]", P_FEAT),
    _f("kv_pin_priority", "--kv-pin-priority", "kv_policy.pin_priority", int, "priority policy: requests with priority <= this are pinned. [default: 0]", P_FEAT),
    _f("kv_pin_fraction", "--kv-pin-fraction", "kv_policy.pin_fraction", float, "priority policy: share of KV blocks high-priority prefixes may pin. [default: 0]", P_FEAT),
    _f("kv_prefetch", "--kv-prefetch/--no-kv-prefetch", "kv_policy.prefetch", bool, "Prefetch queued requests' prefixes from lower KV tiers into the first. [default: off]", P_FEAT),
    _f("kv_prefetch_deadline", "--kv-prefetch-deadline", "kv_policy.prefetch_deadline_s", float, "A prefetch stops this many seconds after arrival. [default: at admission]", P_FEAT),
    _f("kv_prefetch_wait", "--kv-prefetch-wait/--no-kv-prefetch-wait", "kv_policy.prefetch_wait", bool, "Hold a request until its prefetch ends or its deadline (HiCache timeout). [default: off]", P_FEAT),
    _f("prefill_replicas", "--prefill-replicas", "disagg.prefill.replicas", int, "Disaggregated serving: prefill replicas (with --decode-replicas).", P_PD),
    _f("decode_replicas", "--decode-replicas", "disagg.decode.replicas", int, "Disaggregated serving: decode replicas (with --prefill-replicas).", P_PD),
    _f("prefill_gpu", "--prefill-gpu", "disagg.prefill.gpu", str, "Prefill pool GPU. [default: --gpu]", P_PD),
    _f("decode_gpu", "--decode-gpu", "disagg.decode.gpu", str, "Decode pool GPU. [default: --gpu]", P_PD),
    _f("prefill_tp", "--prefill-tp", "disagg.prefill.tp", int, "Prefill pool TP. [default: --tp]", P_PD),
    _f("decode_tp", "--decode-tp", "disagg.decode.tp", int, "Decode pool TP. [default: --tp]", P_PD),
    _f("kv_link", "--kv-link", "disagg.link", str, "KV link: nvlink | ib-ndr | ib-hdr | roce-400 | roce-200 | pcie. [default: ib-ndr]", P_PD),
    _f("kv_link_gb_s", "--kv-link-gbps", "disagg.link_gb_s", float, "KV link rate per GPU, GB/s. [default: the link's]", P_PD),
    _f("kv_link_latency_ms", "--kv-link-latency-ms", "disagg.link_latency_ms", float, "Fixed cost per KV transfer, ms. [default: the link's]", P_PD),
    _f("max_kv_transfers", "--max-kv-transfers", "disagg.max_transfers", int, "Concurrent KV transfers per prefill replica. [default: 1]", P_PD),
    _f("replicas", "--replicas", "replicas", int, "Replicas at start (0 needs --autoscale-min 0). [default: 1]", P_FLEET),
    _f("router", "--router", "router", str, "round-robin | least-outstanding | least-kv | prefix-aware (underscores accepted). [default: round-robin]", P_FLEET),
    _f("max_queue", "--max-queue", "admission.max_queue", int, "Fleet waiting-queue bound (503 when full). [default: unbounded]", P_FLEET),
    _f("rate_limit", "--rate-limit", "admission.rate_limit_rps", float, "Token-bucket rate limit, req/s (429).", P_FLEET),
    _f("burst", "--burst", "admission.burst", float, "Token-bucket size. [default: max(1, rate limit)]", P_FLEET),
    _f("timeout", "--timeout", "admission.timeout_s", float, "Client timeout, seconds.", P_FLEET),
    _f("priority_preemption", "--priority-preemption/--no-priority-preemption", "admission.priority_preemption", bool,
       "A waiting request preempts lower-priority running ones. [default: off]", P_FLEET),
    _f("autoscale_max", "--autoscale-max", "autoscaler.max_replicas", int, "Enable the autoscaler with this many replicas at most.", P_AUTO),
    _f("autoscale_min", "--autoscale-min", "autoscaler.min_replicas", int, "Autoscaler floor (default: --replicas); 0 = scale to zero.", P_AUTO),
    _f("autoscale_metric", "--autoscale-metric", "autoscaler.metric", str, "waiting | running | kv_usage. [default: waiting]", P_AUTO),
    _f("autoscale_target", "--autoscale-target", "autoscaler.target", float, "Per-replica target of the metric. [default: 4]", P_AUTO),
    _f("poll", "--poll", "autoscaler.poll_interval_s", float, "Autoscaler polling interval, s. [default: 15]", P_AUTO),
    _f("provisioning_delay", "--provisioning-delay", "autoscaler.provisioning_delay_s", float, "Node acquisition delay, s. [default: 0]", P_AUTO),
    _f("load_delay", "--load-delay", "autoscaler.model_load_delay_s", float, "Model load delay, s. [default: 0]", P_AUTO),
    _f("cooldown", "--cooldown", "autoscaler.cooldown_s", float, "Autoscaler scale-down stabilization window, s. [default: 300]", P_AUTO),
    _f("autoscale_tolerance", "--autoscale-tolerance", "autoscaler.tolerance", float, "No scaling while |metric/target - 1| <= this. [default: 0.1]", P_AUTO),
    _f("kill_at", "--kill-at", "", float, "Kill replica 0 at this time, s.", P_AUTO),
    _f("retry", "--retry/--no-retry", "", bool, "With --kill-at: in-flight requests retry elsewhere. [default: off]", P_AUTO),
    _f("workload", "--workload -w", "workload", str, "Workload preset (see `servelab catalog workloads`). [default: chat]", P_LOAD),
    _f("request_rate", "--request-rate --rate", "rate_rps", float, "Mean arrival rate, req/s. [default: the workload's]", P_LOAD),
    _f("rate_trace", "--rate-trace", "", str, "CSV of per-interval request counts (timestamp,count) replayed "
       "as arrivals (rate_curve kind trace; other curves via --set rate_curve=…).", P_LOAD),
    _f("duration", "--duration", "duration_s", float, "Seconds of arrivals. [default: 600]", P_LOAD),
    _f("seed", "--seed", "seed", int, "Seed of the request list. [default: 0]", P_LOAD),
    _f("input_tokens", "--input-tokens --input", "input_tokens", int, "Fixed prompt length, tokens. [default: the workload's]", P_LOAD),
    _f("output_tokens", "--output-tokens --output", "output_tokens", int, "Fixed output length, tokens. [default: the workload's]", P_LOAD),
    _f("priorities", "--priorities", "priorities", str, "Priority classes (tenants) and shares, lower = more important: 0:0.2,1:0.8.", P_LOAD),
    _f("priority_by_prefix", "--priority-by-prefix/--no-priority-by-prefix", "priority_by_prefix", bool,
       "Tenants own their prefixes: a request with a shared prefix takes its group's class. [default: off]", P_LOAD),
    _f("arrival", "--arrival", "arrival", str, "constant | poisson | gamma. [default: the workload's]", P_LOAD),
    _f("burstiness", "--burstiness", "burstiness", float, "Gamma shape of arrivals (vLLM --burstiness).", P_LOAD),
    _f("prefix_groups", "--prefix-groups", "prefix.num_groups", int, "Distinct shared prefixes (overrides the workload's).", P_LOAD),
    _f("prefix_tokens", "--prefix-tokens", "prefix.prefix_tokens", int, "Tokens in each shared prefix (with --prefix-groups).", P_LOAD),
    _f("prefix_fraction", "--prefix-fraction", "prefix.fraction", float, "Fraction of requests carrying a prefix. [default: 1]", P_LOAD),
    _f("burst_factor", "--burst-factor", "burst.factor", float, "Rate multiplier inside a burst window (not the token bucket: see --burst).", P_LOAD),
    _f("burst_start", "--burst-start", "burst.start_s", float, "Start of the burst window, s.", P_LOAD),
    _f("burst_duration", "--burst-duration", "burst.duration_s", float, "Length of the burst window, s.", P_LOAD),
    _f("slo", "--slo", "slo", str, "e.g. ttft_p95=2s,tpot_p95=50ms. [default: the workload's]", P_LOAD),
    _f("gpu_hour_usd", "--gpu-hour-usd", "prices.gpu_hour_usd", float, "Price per GPU-hour, USD. [default: the GPU catalog's]", P_LOAD),
    _f("node_sizes", "--node-sizes", "prices.node_sizes", str, "Instance sizes in GPUs, comma-separated. [default: 1,2,4,8]", P_LOAD),
    _f("prices", "--prices", "prices.book", str, "Price file (CSV/YAML, see `servelab catalog prices`). [default: the built-in price book]", P_LOAD),
    _f("price_tier", "--price-tier", "prices.tier", str, "on_demand | spot | reserved_1y | reserved_3y. [default: on_demand]", P_LOAD),
)

# Flags that set a combined field: --cpu-kv-gib/--nvme-*/--kv-tiers -> kv_tiers;
# --kill-at/--retry -> faults.
COMBINED = {"cpu_kv_gib": "kv_tiers", "nvme_kv_gib": "kv_tiers", "nvme_read_gb_s": "kv_tiers",
             "nvme_latency_ms": "kv_tiers", "kv_tiers": "kv_tiers", "kill_at": "faults", "retry": "faults",
             "rate_trace": "rate_curve"}


def flag_paths(exclude: tuple[str, ...] = ()) -> set[str]:
    """Top-level scenario fields the shared flags reach (besides ``--set``/``--scenario``)."""
    return {(f.path or COMBINED[f.param]).split(".")[0] for f in FLAGS if f.param not in exclude}


def parse_kv_tiers(spec: str) -> list[dict[str, Any]]:
    """``name:GiB[:GB/s[:latency_ms]],…`` → scenario ``kv_tiers`` entries."""
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        f = part.split(":")
        if len(f) < 2 or len(f) > 4 or not f[0]:
            raise ConfigError(f"bad KV tier {part!r}; expected name:GiB[:GB/s[:latency_ms]], "
                              f"e.g. dram:256,nvme:2000:7.45:0.1")
        try:
            gib = float(f[1])
            bw = float(f[2]) if len(f) > 2 and f[2] else None
            lat = float(f[3]) if len(f) > 3 else 0.0
        except ValueError:
            raise ConfigError(f"bad number in KV tier {part!r}; expected name:GiB[:GB/s[:latency_ms]]") from None
        if gib < 0 or (bw is not None and bw <= 0) or lat < 0:
            raise ConfigError(f"KV tier {part!r}: need GiB >= 0, GB/s > 0, latency_ms >= 0")
        out.append({"name": f[0], "gib": gib, "read_gb_s": bw, "latency_ms": lat})
    return out


def _shares(text: str) -> dict[int, float]:
    """``0:0.2,1:0.8`` → ``{0: 0.2, 1: 0.8}`` (``--priorities``)."""
    out: dict[int, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        k, sep, v = part.partition(":")
        try:
            if not sep:
                raise ValueError
            out[int(k)] = float(v)
        except ValueError:
            raise ConfigError(f"bad --priorities entry {part!r}; expected CLASS:SHARE, e.g. 0:0.2,1:0.8") from None
    if not out:
        raise ConfigError("--priorities needs at least one CLASS:SHARE")
    return out


def _ints(text: str, flag: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated integers, got {text!r}") from None
    if not vals:
        raise ConfigError(f"{flag} is empty; e.g. 1,2,4,8")
    return vals


@dataclass
class ScenarioArgs:
    """What the command line said about the scenario; :meth:`resolve` validates it."""
    file: str | None = None
    sets: tuple[str, ...] = ()
    flags: dict[str, Any] = field(default_factory=dict)     # param -> value (given ones only)

    def given(self) -> set[str]:
        """Dotted paths given by the file, the flags or ``--set`` (not by defaults)."""
        from .io import load_scenario_data, parse_set

        out: set[str] = set()
        if self.file:
            out |= set(load_scenario_data(self.file))
        out |= {(f.path or COMBINED[f.param]) for f in FLAGS if f.param in self.flags}
        out |= set(parse_set(list(self.sets)))
        return {p.split(".")[0] for p in out} | out

    def overrides(self, base: dict[str, Any]) -> dict[str, Any]:
        """Flag values as dotted-path overrides (combined flags expanded)."""
        fl = self.flags
        out: dict[str, Any] = {}
        for f in FLAGS:
            if f.path and f.param in fl:
                v = fl[f.param]
                out[f.path] = (_ints(v, "--node-sizes") if f.param == "node_sizes"
                               else _shares(v) if f.param == "priorities" else v)
        tiers = []
        if fl.get("cpu_kv_gib"):
            tiers.append({"name": "dram", "gib": fl["cpu_kv_gib"]})
        if fl.get("nvme_kv_gib"):
            tiers.append({"name": "nvme", "gib": fl["nvme_kv_gib"],
                          "read_gb_s": fl.get("nvme_read_gb_s", NVME_READ_GB_S),
                          "latency_ms": fl.get("nvme_latency_ms", NVME_LATENCY_MS)})
        elif "nvme_read_gb_s" in fl or "nvme_latency_ms" in fl:
            raise ConfigError("--nvme-read-gbps/--nvme-latency-ms need --nvme-kv-gib")
        if fl.get("kv_tiers"):
            tiers += parse_kv_tiers(fl["kv_tiers"])
        if tiers:
            out["kv_tiers"] = tiers
        if fl.get("rate_trace"):
            out["rate_curve"] = {"kind": "trace", "file": fl["rate_trace"]}
        if "kill_at" in fl:
            out["faults"] = [{"at_s": fl["kill_at"], "replica": 0,
                              "in_flight": "retry" if fl.get("retry") else "fail"}]
        elif fl.get("retry"):
            raise ConfigError("--retry needs --kill-at")
        auto_flags = [f.names[0] for f in FLAGS if f.path.startswith("autoscaler.") and f.param in fl]
        if auto_flags and "autoscale_max" not in fl and not base.get("autoscaler"):
            raise ConfigError(f"{', '.join(auto_flags)} need the autoscaler: add --autoscale-max N")
        if fl.get("autoscale_max") == 0:
            raise ConfigError("--autoscale-max must be >= 1 (leave it out for a fixed fleet)")
        if "autoscale_max" in fl and "autoscale_min" not in fl and not (base.get("autoscaler") or {}).get("min_replicas"):
            replicas = fl.get("replicas", base.get("replicas", 1))
            out["autoscaler.min_replicas"] = min(replicas, fl["autoscale_max"])
        return out

    def resolve(self, extra: dict[str, Any] | None = None) -> Any:
        """The validated Scenario: defaults < file < ``extra`` (command defaults) < flags < ``--set``."""
        from .io import load_scenario_data, parse_set, resolve

        base = load_scenario_data(self.file) if self.file else {}
        given = self.given() if extra else set()
        over: dict[str, Any] = {k: v for k, v in (extra or {}).items() if k not in given}
        over.update(self.overrides(base))
        over.update(parse_set(list(self.sets)))
        source = f"from {self.file} and the command line" if self.file else "from the command line"
        return resolve(base, over, source=source)
