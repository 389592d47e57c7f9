"""`servelab simulate`: a simulated serving fleet under a workload — records, summary, time series."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any, Optional

import typer
from rich.console import Console

from ..errors import ConfigError, InfeasibleError

__all__ = ["register", "simulate_cmd", "build_config", "parse_kv_tiers"]

# Samsung 990 PRO (PCIe Gen4 x4 NVMe): sequential read up to 7,450 MB/s (Samsung launch
# specification, Aug 2022). One drive per replica by default.
NVME_READ_GB_S = 7.45
# Fixed cost of one NVMe load: a QD1 4 KiB random read on TLC NAND takes roughly
# 50-100 µs (AnandTech enterprise NVMe roundups, QD1 random-read latency); 100 µs is an
# order-of-magnitude assumption, not a measurement. Host DRAM: 0 (PCIe latency ~1 µs).
NVME_LATENCY_MS = 0.1


def parse_kv_tiers(spec: str) -> list[tuple[str, float, float | None, float]]:
    """``name:GiB[:GB/s[:latency_ms]],…`` → ``[(name, gib, gb_per_s or None, latency_ms)]``.

    ``gb_per_s`` is the tier's own read rate per replica (None: only the PCIe link
    limits it, as for host DRAM)."""
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
        out.append((f[0], gib, bw, lat))
    return out


def build_config(
    *, model: str, gpu: str, tp: int, dtype: str, kv_dtype: str, replicas: int,
    router: str, max_queue: Optional[int], rate_limit: Optional[float], burst: Optional[float],
    timeout_s: Optional[float], exact: bool, seed: int, max_num_seqs: int,
    max_num_batched_tokens: int, prefix_caching: bool, token_times: bool, cpu_kv_gib: float = 0.0,
    autoscaler: Any = None, faults: tuple = (), engine: str = "vllm", efficiency: Any = None,
    nvme_kv_gib: float = 0.0, nvme_read_gb_s: float = NVME_READ_GB_S,
    nvme_latency_ms: float = NVME_LATENCY_MS, kv_tiers: str = "",
) -> Any:
    """The SimConfig the command line describes (one homogeneous pool).

    ``engine``: the engine profile (:mod:`servelab.perf.engines`) whose step overheads
    and KV memory rule the replicas run with (default vllm, what the emulator mimics).
    ``efficiency``: a ``perf.Efficiency`` (e.g. from a calibration file) replacing the
    profile's; the profile's KV memory rule still applies.

    ``cpu_kv_gib``: host-DRAM KV tier per replica. Blocks = GiB / (KV bytes per token ·
    block size); load time per block = the per-GPU share of a block / the GPU's PCIe
    bytes/s in one direction (catalog; TP shards load in parallel; link rate assumed
    reached, so optimistic).

    ``nvme_kv_gib``: NVMe KV tier per replica below DRAM, read through a host bounce
    buffer (NVMe → pinned DRAM → GPU, pipelined; LMCache's local-disk path), so a
    block's per-GPU share loads at min(PCIe per GPU, NVMe read / TP) plus
    ``nvme_latency_ms`` per load. ``kv_tiers`` (``name:GiB[:GB/s[:latency_ms]],…``)
    adds further tiers after those, in order."""
    from ..catalog import get_gpu, get_model
    from ..perf import Deployment, get_engine, memory_budget
    from ..sim import AdmissionConfig, EngineConfig, KVTier, ReplicaSpec, SimConfig
    from ..units import GB, GiB

    dep = Deployment(model=get_model(model), gpu=get_gpu(gpu), tp=tp, weight_dtype=dtype.lower(),
                     kv_dtype=kv_dtype.lower(), max_num_seqs=max_num_seqs,
                     max_num_batched_tokens=max_num_batched_tokens)
    dep = get_engine(engine).deployment(dep)
    if efficiency is not None:
        dep = dataclasses.replace(dep, efficiency=efficiency)
    cpu_blocks, load_s = 0, 0.0
    tiers = []
    extra = parse_kv_tiers(kv_tiers) if kv_tiers else []
    if nvme_kv_gib > 0:
        extra.insert(0, ("nvme", nvme_kv_gib, nvme_read_gb_s, nvme_latency_ms))
    if cpu_kv_gib > 0 or extra:
        b = memory_budget(dep)
        block = 16
        if dep.gpu.pcie_bytes_per_s <= 0:
            raise ConfigError(f"GPU {gpu!r} has no PCIe bandwidth in the catalog; cannot model a host KV tier")
        block_bytes = b.kv_bytes_per_token_per_gpu * block
        if cpu_kv_gib > 0:
            cpu_blocks = int(cpu_kv_gib * GiB // (b.kv_bytes_per_token * block))
            load_s = block_bytes / dep.gpu.pcie_bytes_per_s
        for name, gib, gb_s, lat_ms in extra:
            bw = dep.gpu.pcie_bytes_per_s if gb_s is None else min(dep.gpu.pcie_bytes_per_s, gb_s * GB / tp)
            tiers.append(KVTier(name=name, blocks=int(gib * GiB // (b.kv_bytes_per_token * block)),
                                block_bytes=block_bytes, read_bytes_per_s=bw, latency_s=lat_ms * 1e-3))
    engine_cfg = EngineConfig(max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                              enable_prefix_caching=prefix_caching, cpu_kv_blocks=cpu_blocks,
                              cpu_kv_load_s_per_block=load_s, kv_tiers=tuple(tiers))
    admission = AdmissionConfig(max_queue=max_queue, rate_limit_rps=rate_limit, burst=burst,
                                client_timeout_s=timeout_s)
    return SimConfig(replicas=(ReplicaSpec(deployment=dep, engine=engine_cfg, count=replicas),),
                     router=router, admission=admission, exact=exact, seed=seed,
                     record_token_times=token_times, autoscaler=autoscaler, faults=faults)


def simulate_cmd(
    model: str = typer.Option("llama-3.1-8b", "--model", "-m", help="Model id (see `servelab catalog models`)."),
    gpu: str = typer.Option("h100-sxm", "--gpu", "-g", help="GPU id (see `servelab catalog gpus`)."),
    workload: str = typer.Option("chat", "--workload", "-w", help="Workload preset (see `servelab catalog workloads`)."),
    rate: Optional[float] = typer.Option(None, "--request-rate", "--rate",
                                         help="Arrival rate, req/s (default: the workload's)."),
    duration: float = typer.Option(600.0, "--duration", help="Seconds of arrivals to simulate."),
    replicas: int = typer.Option(1, "--replicas", min=0,
                                 help="Number of replicas (at start; 0 needs --autoscale-min 0)."),
    tp: int = typer.Option(1, "--tp", min=1, help="Tensor-parallel degree per replica."),
    dtype: str = typer.Option("bf16", "--dtype", help="Weights dtype: bf16, fp16, fp8, int8, int4."),
    kv_dtype: str = typer.Option("bf16", "--kv-dtype", help="KV cache dtype: bf16, fp16, fp8."),
    max_queue: Optional[int] = typer.Option(None, "--max-queue", help="Fleet waiting-queue bound (503 when full)."),
    router: str = typer.Option("round_robin", "--router",
                               help="round_robin | least_outstanding | least_kv | prefix."),
    rate_limit: Optional[float] = typer.Option(None, "--rate-limit", help="Token-bucket rate limit, req/s (429)."),
    burst: Optional[float] = typer.Option(None, "--burst", help="Token-bucket size (default: max(1, rate limit))."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Client timeout, seconds."),
    max_num_seqs: int = typer.Option(256, "--max-num-seqs", help="Most sequences per step (vLLM)."),
    max_num_batched_tokens: int = typer.Option(8192, "--max-num-batched-tokens", help="Token budget per step."),
    engine: str = typer.Option("vllm", "--engine",
                               help="Engine profile: vllm | trtllm (per-step overhead, KV memory rule)."),
    no_prefix_caching: bool = typer.Option(False, "--no-prefix-caching", help="Disable automatic prefix caching."),
    cpu_kv_gib: float = typer.Option(0.0, "--cpu-kv-gib", min=0.0,
                                     help="Host-DRAM KV tier per replica, GiB (evicted prefixes reload over PCIe)."),
    nvme_kv_gib: float = typer.Option(0.0, "--nvme-kv-gib", min=0.0,
                                      help="NVMe KV tier per replica below DRAM, GiB (host bounce, "
                                           "min(PCIe, NVMe read / TP))."),
    nvme_read_gb_s: float = typer.Option(NVME_READ_GB_S, "--nvme-read-gbps", min=0.001,
                                         help="NVMe sequential read per replica, GB/s "
                                              "(default: Samsung 990 PRO, PCIe Gen4 x4)."),
    nvme_latency_ms: float = typer.Option(NVME_LATENCY_MS, "--nvme-latency-ms", min=0.0,
                                          help="Fixed cost of one NVMe load, ms (assumption)."),
    kv_tiers: str = typer.Option("", "--kv-tiers",
                                 help="More KV tiers below DRAM/NVMe: name:GiB[:GB/s[:latency_ms]],…"),
    autoscale_max: int = typer.Option(0, "--autoscale-max", min=0,
                                      help="Enable the autoscaler with this many replicas at most."),
    autoscale_min: Optional[int] = typer.Option(None, "--autoscale-min", min=0,
                                                help="Autoscaler floor (default: --replicas); 0 = scale to zero."),
    autoscale_metric: str = typer.Option("waiting", "--autoscale-metric", help="waiting | running | kv_usage."),
    autoscale_target: float = typer.Option(4.0, "--autoscale-target", help="Per-replica target of the metric."),
    poll: float = typer.Option(15.0, "--poll", help="Autoscaler polling interval, s."),
    provisioning_delay: float = typer.Option(0.0, "--provisioning-delay", help="Node acquisition delay, s."),
    load_delay: float = typer.Option(0.0, "--load-delay", help="Model load delay, s."),
    cooldown: float = typer.Option(300.0, "--cooldown", help="Autoscaler cooldown, s."),
    kill_at: Optional[float] = typer.Option(None, "--kill-at", help="Kill replica 0 at this time, s."),
    retry: bool = typer.Option(False, "--retry", help="With --kill-at: in-flight requests retry elsewhere."),
    exact: bool = typer.Option(False, "--exact", help="Step by step instead of event skipping (slower)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the request list."),
    slo: Optional[str] = typer.Option(None, "--slo", help="e.g. ttft_p95=2s,tpot_p95=50ms (default: the workload's)."),
    out: Optional[str] = typer.Option(None, "--out", help="Write meta, records, summary and time series here."),
    token_times: bool = typer.Option(False, "--token-times", help="Record every token's time (bigger records)."),
    calibration: Optional[str] = typer.Option(
        None, "--calibration", help="Calibration JSON (`servelab calibrate`): its efficiency replaces "
                                    "the engine profile's; the engine still sets the KV memory rule."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Simulate a serving fleet under a workload and summarize TTFT/TPOT/E2E, throughput, goodput."""
    from .. import metrics, recordio
    from ..catalog import generate_requests, get_workload, parse_slo
    from ..sim import AutoscalerConfig, Fault, simulate
    from ._calibration import load as load_cal

    warnings: list[str] = []
    try:
        cal = load_cal(calibration) if calibration else None
        auto = None
        if autoscale_max:
            auto = AutoscalerConfig(metric=autoscale_metric, target=autoscale_target,  # type: ignore[arg-type]
                                    poll_interval_s=poll, provisioning_delay_s=provisioning_delay,
                                    model_load_delay_s=load_delay, cooldown_s=cooldown,
                                    min_replicas=(min(replicas, autoscale_max) if autoscale_min is None
                                                  else autoscale_min),
                                    max_replicas=autoscale_max)
        if replicas == 0 and (auto is None or auto.min_replicas != 0):
            raise ConfigError("--replicas 0 needs the autoscaler with --autoscale-min 0 (scale to zero)")
        faults = (Fault(at_s=kill_at, replica=0, in_flight="retry" if retry else "fail"),) \
            if kill_at is not None else ()
        wl = get_workload(workload)
        slo_obj = parse_slo(slo) if slo else wl.slo
        config = build_config(model=model, gpu=gpu, tp=tp, dtype=dtype, kv_dtype=kv_dtype,
                              replicas=replicas, router=router, max_queue=max_queue,
                              rate_limit=rate_limit, burst=burst, timeout_s=timeout, exact=exact,
                              seed=seed, max_num_seqs=max_num_seqs,
                              max_num_batched_tokens=max_num_batched_tokens,
                              prefix_caching=not no_prefix_caching, token_times=token_times,
                              cpu_kv_gib=cpu_kv_gib, nvme_kv_gib=nvme_kv_gib, nvme_read_gb_s=nvme_read_gb_s,
                              nvme_latency_ms=nvme_latency_ms, kv_tiers=kv_tiers,
                              autoscaler=auto, faults=faults,
                              engine=engine, efficiency=cal.efficiency if cal is not None else None)
        if cal is not None:
            diff = cal.differences(config.replicas[0].deployment)
            if diff:
                warnings.append(f"calibration {calibration} was fitted on another deployment "
                                f"({'; '.join(diff)}); its efficiencies may not carry over")
        for w in warnings:
            typer.echo(f"warning: {w}", err=True)
        reqs = generate_requests(wl, rate_rps=rate, duration_s=duration, seed=seed)
        show = not json_out and sys.stderr.isatty()
        if show:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
            with Progress(TextColumn("[bold]simulating"), BarColumn(),
                          TextColumn("{task.percentage:>3.0f}% of simulated time"), TimeElapsedColumn(),
                          console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task("sim", total=1.0)
                result = simulate(config, reqs,
                                  progress=lambda f: bar.update(task, completed=f))
        else:
            result = simulate(config, reqs)
    except (ConfigError, InfeasibleError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    from ..perf import get_engine
    profile = get_engine(engine)
    result.meta.config = {"cli": {"model": model, "gpu": gpu, "workload": workload, "rate": rate,
                                  "duration_s": duration, "seed": seed, "engine": profile.name,
                                  "calibration": calibration},
                          "engine_profile": profile.to_dict(),
                          "calibration": cal.to_dict() if cal is not None else None,
                          **result.meta.config}
    summary = metrics.summarize(result.records, duration_s=result.meta.duration_s, slo=slo_obj)
    tier_hits: dict[str, int] = {}
    for st in result.replica_stats.values():
        for name, tok in st.get("kv_tier_hit_tokens", {}).items():
            tier_hits[name] = tier_hits.get(name, 0) + tok
    summary["sim"] = {"makespan_s": result.duration_s, "replicas": result.replica_stats,
                      "events": [list(e) for e in result.events], "engine": profile.name,
                      "kv_tier_hit_tokens": tier_hits}
    summary["engine"] = profile.name
    summary["efficiency_source"] = "calibration" if cal is not None else f"engine profile {profile.name}"
    summary["calibration"] = cal.to_dict() if cal is not None else None
    if warnings:
        summary["warnings"] = warnings
    if out:
        from ..sim.series import server_section_of
        recordio.write_run(out, result.meta, result.records, summary,
                           metrics.run_timeseries(result.records, server=server_section_of(result.timeseries)))
    if json_out:
        typer.echo(json.dumps(summary, indent=2, allow_nan=False))
        return
    from ..report.tables import summary_table
    con = Console()
    rate_s = f"{rate:g}" if rate is not None else f"{wl.arrival.rate_rps:g}"
    con.print(summary_table(summary, f"{model} on {replicas}× {gpu} TP{tp} ({profile.name}) — {workload} at "
                                     f"{rate_s} req/s for {duration:g} s (simulated)"))
    if cal is not None:
        con.print(f"efficiency from calibration {cal.path} (sha256 {cal.sha256[:12]}…)")
    if out:
        con.print(f"[dim]wrote {out}/ (meta, records, summary, timeseries)[/dim]")


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the app."""
    app.command("simulate")(simulate_cmd)
