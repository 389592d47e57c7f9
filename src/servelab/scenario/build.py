"""The one builder: a :class:`~servelab.scenario.Scenario` turned into what runs.

* :func:`deployment` — the ``perf.Deployment`` as the engine profile runs it (profile
  efficiencies and KV memory rule; a calibration file's efficiency replaces the
  profile's when the scenario names one).
* :func:`replica_settings` — the simulator's per-replica scheduler and KV settings
  (``sim.SchedulerConfig``): engine knobs, KV offload tiers, LoRA slots, speculative decoding.
* :func:`sim_config` — the whole simulated fleet (replicas, router, admission,
  autoscaler, faults).
* :func:`workload`, :func:`requests`, :func:`slo`, :func:`rate_rps` — the offered load.
* :func:`throughput_window_s` — the window throughput is divided by, for every source.
* :func:`price_per_gpu_hour`, :func:`fleet_cost` — what the fleet costs (:mod:`.cost`).

KV offload tiers. A tier of ``gib`` GiB per replica holds
``gib · 2^30 // (kv_bytes_per_token · block_size)`` blocks; one block's per-GPU share
(``kv_bytes_per_token_per_gpu · block_size``; TP shards load in parallel) loads at
``min(PCIe bytes/s of one GPU, read_gb_s · 10^9 / tp)`` — a tier with no ``read_gb_s``
(host DRAM) is limited by the PCIe link only — plus ``latency_ms`` per load. The link
rate is assumed reached, so the restore times are optimistic.

Bursts: a burst ``{factor: f, start_s: a, duration_s: d}`` superposes a second arrival
stream at rate (f − 1)·r over [a, a + d) on the base stream at rate r; for Poisson
arrivals the sum is exactly a Poisson process at f·r inside the window (superposition).

LoRA adapters: ``lora.adapters = n`` gives the workload ``n`` adapters named
``adapter-0 … adapter-{n-1}`` with equal shares (``uniform``) or shares ∝ 1/(k+1)
(``zipf``, exponent 1).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from ..errors import ConfigError
from ..units import GB, GiB
from ._model import Scenario
from ._disagg import disagg_sim_config, disagg_usd_per_hour, kv_policy
from .cost import FleetCost, fleet_cost as _fleet_cost, pack_replicas

__all__ = [
    "derive", "load_model", "calibration", "deployment", "replica_settings", "sim_config", "workload",
    "requests", "slo", "rate_rps", "throughput_window_s", "price_per_gpu_hour", "price_source",
    "fleet_cost", "fleet_usd_per_hour", "warnings", "adapter_shares", "rate_curve",
]


def derive(sc: Scenario, **changes: Any) -> Scenario:
    """``sc`` with top-level fields replaced, validated again (a bad value raises ConfigError)."""
    from .io import resolve

    data = sc.model_dump(mode="json", exclude_defaults=True)
    data.update({k: (v.model_dump(mode="json") if hasattr(v, "model_dump") else v) for k, v in changes.items()})
    return resolve(data, source="(derived scenario)", model=type(sc))


def load_model(name: str) -> Any:
    """A catalog model, or a Hugging Face ``config.json`` when ``name`` ends in .json."""
    from ..catalog import get_model, load_hf_config

    return load_hf_config(name) if name.endswith(".json") else get_model(name)


def calibration(sc: Scenario) -> Any:
    """The scenario's calibration file, loaded (``calibrate.applied.Calibration``), or None."""
    if not sc.calibration:
        return None
    from ..calibrate.applied import load_applied

    return load_applied(sc.calibration)


def deployment(sc: Scenario, *, cal: Any = ...) -> Any:
    """The scenario's deployment as its engine profile runs it (see module docstring).

    ``cal``: an already-loaded calibration (or None for none); by default the
    scenario's own ``calibration`` file is read."""
    from ..catalog import get_gpu
    from ..perf import Deployment, get_engine, validate_deployment

    e = sc.engine
    dep = Deployment(model=load_model(sc.model), gpu=get_gpu(sc.gpu), tp=sc.tp, pp=sc.pp, ep=sc.ep,
                     weight_dtype=sc.weight_dtype, kv_dtype=sc.kv_dtype,
                     gpu_memory_utilization=e.gpu_memory_utilization, max_num_seqs=e.max_num_seqs,
                     max_num_batched_tokens=e.max_num_batched_tokens, block_size=e.block_size)
    validate_deployment(dep)
    dep = get_engine(e.profile).deployment(dep)
    cal = calibration(sc) if cal is ... else cal
    dep = cal.apply(dep) if cal is not None else dep
    if sc.step_time_factor != 1.0:      # plan --confidence: sized at an edge of the error band
        import dataclasses
        from ..perf.band import scale_efficiency
        dep = dataclasses.replace(dep, efficiency=scale_efficiency(dep.efficiency, sc.step_time_factor))
    return dep


def warnings(sc: Scenario, dep: Any, *, cal: Any = ...) -> list[str]:
    """What a user should know before trusting results of this scenario."""
    cal = calibration(sc) if cal is ... else cal
    out: list[str] = []
    if cal is not None:
        diff = cal.differences(dep)
        if diff:
            out.append(f"calibration {sc.calibration} was fitted on another deployment "
                       f"({'; '.join(diff)}); its efficiencies may not carry over")
    return out


def _kv_tiers(sc: Scenario, dep: Any) -> tuple[Any, ...]:
    from ..perf import memory_budget
    from ..sim import KVTier

    if not sc.kv_tiers:
        return ()
    pcie = dep.gpu.pcie_bytes_per_s
    if pcie <= 0:
        raise ConfigError(f"GPU {sc.gpu!r} has no PCIe bandwidth in the catalog; cannot model a KV offload tier")
    b = memory_budget(dep)
    block = sc.engine.block_size
    block_bytes = b.kv_bytes_per_token_per_gpu * block
    out = []
    for t in sc.kv_tiers:
        bw = pcie if t.read_gb_s is None else min(pcie, t.read_gb_s * GB / sc.tp)
        out.append(KVTier(name=t.name, blocks=int(t.gib * GiB // (b.kv_bytes_per_token * block)),
                          block_bytes=block_bytes, read_bytes_per_s=bw, latency_s=t.latency_ms * 1e-3))
    return tuple(out)


def replica_settings(sc: Scenario, dep: Any) -> Any:
    """The simulator's per-replica settings (``sim.SchedulerConfig``) for ``dep``."""
    from ..sim import SchedulerConfig

    e = sc.engine
    spec = sc.speculative
    return SchedulerConfig(
        max_num_seqs=e.max_num_seqs, max_num_batched_tokens=e.max_num_batched_tokens,
        block_size=e.block_size, enable_prefix_caching=e.enable_prefix_caching,
        enable_chunked_prefill=e.enable_chunked_prefill, max_waiting=e.max_queue,
        scheduling_policy=e.scheduling_policy, kv_tiers=_kv_tiers(sc, dep), kv_policy=kv_policy(sc, dep),
        max_loras=sc.lora.max_loras if sc.lora else 0, lora_load_s=sc.lora.load_s if sc.lora else 0.0,
        num_speculative_tokens=spec.num_tokens if spec else 0,
        spec_acceptance_rate=spec.acceptance_rate if spec else 0.0,
        spec_draft_cost=spec.draft_cost if spec else 0.0)


def sim_config(sc: Scenario, *, exact: bool = False, record_token_times: bool = False,
               dep: Any = None) -> Any:
    """The simulated fleet of ``sc`` (one pool of identical replicas, or with ``disagg`` a
    prefill pool and a decode pool, :mod:`._disagg`)."""
    from ..sim import AdmissionConfig, AutoscalerConfig, Fault, ReplicaSpec, SimConfig

    dep = deployment(sc) if dep is None else dep
    a = sc.admission
    admission = AdmissionConfig(max_queue=a.max_queue, rate_limit_rps=a.rate_limit_rps, burst=a.burst,
                                client_timeout_s=a.timeout_s, priority_preemption=a.priority_preemption)
    auto = None
    if sc.autoscaler is not None:
        s = sc.autoscaler
        auto = AutoscalerConfig(metric=s.metric, target=s.target, poll_interval_s=s.poll_interval_s,
                                provisioning_delay_s=s.provisioning_delay_s,
                                model_load_delay_s=s.model_load_delay_s, cooldown_s=s.cooldown_s,
                                tolerance=s.tolerance,
                                min_replicas=s.min_replicas, max_replicas=s.max_replicas)
    faults = tuple(Fault(at_s=f.at_s, replica=f.replica, in_flight=f.in_flight) for f in sc.faults)
    cfg = SimConfig(replicas=(ReplicaSpec(deployment=dep, scheduler=replica_settings(sc, dep),
                                          count=sc.replicas),),
                    router=sc.sim_router, admission=admission, autoscaler=auto, faults=faults,
                    exact=exact, seed=sc.seed, record_token_times=record_token_times)
    return cfg if sc.disagg is None else disagg_sim_config(sc, cfg)


def adapter_shares(lora: Any) -> tuple[tuple[str, float], ...]:
    """``(adapter name, share)`` for the scenario's LoRA settings (module docstring)."""
    n = lora.adapters
    w = [1.0] * n if lora.distribution == "uniform" else [1.0 / (k + 1) for k in range(n)]
    total = sum(w)
    return tuple((f"adapter-{k}", x / total) for k, x in enumerate(w))


def workload(sc: Scenario) -> Any:
    """The catalog workload with the scenario's overrides and rate applied."""
    from ..catalog import ArrivalSpec, LengthDist, PrefixSpec, get_workload

    wl = get_workload(sc.workload)
    changes: dict[str, Any] = {}
    if sc.input_tokens is not None:
        changes["input_len"] = LengthDist(kind="fixed", mean=sc.input_tokens,
                                          low=sc.input_tokens, high=sc.input_tokens)
    if sc.output_tokens is not None:
        changes["output_len"] = LengthDist(kind="fixed", mean=sc.output_tokens,
                                           low=sc.output_tokens, high=sc.output_tokens)
    if sc.prefix is not None:
        changes["prefix"] = PrefixSpec(num_groups=sc.prefix.num_groups,
                                       prefix_tokens=sc.prefix.prefix_tokens,
                                       fraction=sc.prefix.fraction)
    if sc.lora is not None:
        changes["adapters"] = adapter_shares(sc.lora)
    if sc.priorities is not None:
        total = sum(sc.priorities.values())
        if total <= 0 or min(sc.priorities.values()) < 0:
            raise ConfigError(f"priorities shares must be >= 0 and sum to > 0, got {sc.priorities}")
        changes["priorities"] = tuple((int(k), v / total) for k, v in sorted(sc.priorities.items()))
    arrival = wl.arrival
    kind = sc.arrival or ("gamma" if sc.burstiness is not None else arrival.kind)
    changes["arrival"] = ArrivalSpec(kind=kind, rate_rps=rate_rps(sc),
                                     burstiness=sc.burstiness or arrival.burstiness)
    return dataclasses.replace(wl, **changes)


def rate_rps(sc: Scenario) -> float:
    """The mean arrival rate: the scenario's, else over the run window of its rate curve,
    else the workload preset's."""
    from ..catalog import get_workload

    if sc.rate_rps is None and sc.rate_curve is not None:
        return rate_curve(sc).mean_rps()
    return float(sc.rate_rps if sc.rate_rps is not None else get_workload(sc.workload).arrival.rate_rps)


def rate_curve(sc: Scenario) -> Any:
    """The scenario's λ(t) over its run window ``[0, duration_s)`` (``catalog.ratecurve.RateCurve``;
    curve time ``rate_curve.start_s`` is run time 0), or None without a curve. A ``burst``
    multiplies the curve inside its window."""
    from ..catalog import ratecurve as rc

    c = sc.rate_curve
    if c is None:
        return None
    if c.kind == "diurnal":
        assert c.peak_rps is not None
        curve = rc.diurnal(peak_rps=c.peak_rps, peak_to_trough=c.peak_to_trough, peak_hour=c.peak_hour,
                           days=c.days, start_hour=c.start_hour)
    elif c.kind == "table":
        curve = rc.table(c.rates_rps, step_s=c.step_s, interpolate=c.interpolate)
    elif c.kind == "points":
        curve = rc.points(c.points)
    else:
        assert c.file is not None
        curve = rc.from_counts_csv(c.file)
    if c.scale != 1.0:
        curve = curve.scaled(c.scale)
    if c.weekly is not None:
        curve = curve.weekly(c.weekly, start_day=c.start_day)
    for b in c.bursts:
        curve = curve.burst(factor=b.factor, start_s=b.start_s, duration_s=b.duration_s)
    curve = curve.noisy(cv=c.noise_cv, interval_s=c.noise_interval_s, seed=sc.seed)
    curve = curve.window(c.start_s, sc.duration_s)
    if sc.burst is not None:
        curve = curve.burst(factor=sc.burst.factor, start_s=sc.burst.start_s, duration_s=sc.burst.duration_s)
    return curve


def _curve_starts(sc: Scenario) -> Any:
    """Conversation start times on the run window: NHPP thinning, or a trace's counts replayed."""
    import numpy as np

    from ..catalog import ratecurve as rc

    c = sc.rate_curve
    assert c is not None
    rng = np.random.default_rng(np.random.SeedSequence([sc.seed, 0x6375727665]))
    if c.kind == "trace" and c.trace_mode == "counts":
        counts, step = rc.read_counts_csv(c.file or "")
        t = rc.replay_counts(counts, step, rng) - c.start_s
        return t[(t >= 0) & (t < sc.duration_s)]
    curve = rate_curve(sc)
    turns = workload(sc).turns
    return rc.nhpp_arrivals(curve.scaled(1.0 / turns) if turns > 1 else curve, rng)


def requests(sc: Scenario, *, select: tuple[int, int] | None = None) -> list[Any]:
    """The offered requests (catalog ``RequestSpec``), burst window included, by arrival.
    ``select=(k, K)``: only those of conversation (single-turn: request) index ``c mod K == k``,
    the same requests as filtering the full list, generated without the others for a rate curve."""
    from ..catalog import generate_requests

    wl = workload(sc)
    if sc.rate_curve is not None:
        return list(generate_requests(wl, duration_s=sc.duration_s, seed=sc.seed, starts_s=_curve_starts(sc),
                                      select=select))
    if select is not None:
        k, n = select
        return [r for i, r in enumerate(requests(sc))
                if (r.conversation if r.conversation >= 0 else i) % n == k]
    rate = rate_rps(sc)
    reqs = list(generate_requests(wl, rate_rps=rate, duration_s=sc.duration_s, seed=sc.seed))
    if sc.burst is not None and sc.burst.factor > 1.0:
        b = sc.burst
        width = min(b.duration_s, max(0.0, sc.duration_s - b.start_s))
        if width > 0:
            extra = generate_requests(wl, rate_rps=rate * (b.factor - 1.0),
                                      duration_s=width, seed=sc.seed + 1_000_003)
            reqs += [dataclasses.replace(r, id=f"burst-{r.id}", arrival_s=r.arrival_s + b.start_s)
                     for r in extra]
            reqs.sort(key=lambda r: (r.arrival_s, r.id))
    if sc.priority_by_prefix and wl.priorities and wl.prefix is not None:
        reqs = [dataclasses.replace(r, priority=_group_class(r.prefix_group, wl)) if r.prefix_group >= 0 else r
                for r in reqs]
    return reqs


def _group_class(group: int, wl: Any) -> int:
    """Priority class owning prefix group ``group``: groups 0… go to the classes in order of
    importance, each class taking its share of the groups (tenants own their prefixes)."""
    n = wl.prefix.num_groups
    acc = 0.0
    for cls, share in sorted(wl.priorities):
        acc += share * n
        if group < acc - 1e-9:
            return cls
    return sorted(wl.priorities)[-1][0]


def slo(sc: Scenario) -> Any:
    """The scenario's SLO (its ``slo`` string, else the workload preset's)."""
    from ..catalog import get_workload, parse_slo

    return parse_slo(sc.slo) if sc.slo else get_workload(sc.workload).slo


def throughput_window_s(duration_s: float | None, records: Sequence[Any] = ()) -> float | None:
    """The window every throughput is divided by, whatever produced the run: the run's
    makespan — its start to the end of its last request — as a load client measures it
    (``vllm bench serve``: wall time to the last finish) and as ``sim.simulate`` reports
    it in ``SimResult.duration_s``/``RunMeta.duration_s``. ``duration_s`` is that value
    from the run; when a source did not record it, the records' first arrival to last
    end is used (``metrics``' own default)."""
    if duration_s is not None and duration_s > 0:
        return float(duration_s)
    ends = [t for r in records for t in (getattr(r, "finish_s", None), getattr(r, "end_s", None))
            if t is not None]
    starts = [r.arrival_s for r in records if getattr(r, "arrival_s", None) is not None]
    if not ends or not starts:
        return None
    return max(ends) - min(starts)


def price_per_gpu_hour(sc: Scenario) -> float:
    """USD per GPU-hour: the scenario's ``prices.gpu_hour_usd``, else the GPU catalog's."""
    from ..catalog import get_gpu

    return sc.prices.gpu_hour_usd if sc.prices.gpu_hour_usd is not None else get_gpu(sc.gpu).price_per_hour_usd


def price_source(sc: Scenario) -> str:
    """Where :func:`price_per_gpu_hour` comes from."""
    from ..catalog import get_gpu

    if sc.prices.gpu_hour_usd is not None:
        return sc.prices.source or "scenario prices.gpu_hour_usd"
    g = get_gpu(sc.gpu)
    return f"{g.price_source} ({g.price_date})"


def _book_cost(sc: Scenario, n: int, output_tokens_per_s: float) -> FleetCost | None:
    """The fleet on the cheapest price-book instances that hold it (tensor-parallel groups
    inside one instance); None when the scenario sets its own GPU price or no offer fits."""
    from ..catalog.prices import cheapest_packing, load_price_book
    from ..errors import ConfigError

    if sc.prices.gpu_hour_usd is not None:
        return None
    # a bad price file is an error, not a fallback; node_sizes limits the instance shapes
    offers = [o for o in load_price_book(sc.prices.book) if o.gpus_per_instance in sc.prices.node_sizes]
    try:
        op = cheapest_packing(sc.gpu, sc.tp * sc.pp, n, sc.prices.tier, offers, tp=sc.tp)
    except ConfigError:                           # no offer holds a tensor-parallel group
        return None
    nodes: dict[int, int] = {}
    for o, c in op.instances:
        nodes[o.gpus_per_instance] = nodes.get(o.gpus_per_instance, 0) + c
    from .cost import Packing
    pk = Packing(gpus_per_replica=sc.tp * sc.pp, replicas=n, nodes=tuple(sorted(nodes.items(), reverse=True)),
                 billed_gpus=op.billed_gpus, used_gpus=n * sc.tp * sc.pp)
    src = (f"price book {sc.prices.book or 'catalog/data/prices.csv'}, {sc.prices.tier}: {op.describe()}; "
           + "; ".join(sorted({o.source_url for o, _ in op.instances})))
    return _fleet_cost(packing=pk, price_per_gpu_hour_usd=op.price_per_gpu_hour_usd if op.billed_gpus else 0.0,
                       output_tokens_per_s=output_tokens_per_s, price_source=src)


def fleet_cost(sc: Scenario, *, output_tokens_per_s: float, replicas: int | None = None) -> FleetCost:
    """Cost of ``replicas`` (default ``sc.replicas``) replicas of ``sc``: on the cheapest
    instances of the price book (``prices.book``/``prices.tier``; :mod:`servelab.catalog.prices`)
    that hold them, else — with ``prices.gpu_hour_usd`` set, or when no offer holds a
    tensor-parallel group — packed into the scenario's node sizes at a per-GPU price. The
    cost model plans and decisions share."""
    from ..catalog import get_gpu

    n = sc.replicas if replicas is None else replicas
    book = _book_cost(sc, n, output_tokens_per_s)
    if book is not None:
        return book
    pk = pack_replicas(replicas=n, gpus_per_replica=sc.tp * sc.pp, node_sizes=sc.prices.node_sizes,
                       max_node_gpus=get_gpu(sc.gpu).gpus_per_node)
    src = price_source(sc)
    if sc.prices.gpu_hour_usd is None:
        src = (f"{src} — the catalog's per-GPU on-demand price: no {sc.prices.tier} offer in the price "
               f"book has {sc.tp} or more {sc.gpu} GPUs per instance")
    return _fleet_cost(packing=pk, price_per_gpu_hour_usd=price_per_gpu_hour(sc),
                       output_tokens_per_s=output_tokens_per_s, price_source=src)


def fleet_usd_per_hour(sc: Scenario, *, replicas: int | None = None) -> float:
    """$/hour of the scenario's packed fleet (:func:`fleet_cost`; both pools with ``disagg``)."""
    if sc.disagg is not None and replicas is None:
        return disagg_usd_per_hour(sc)
    return fleet_cost(sc, output_tokens_per_s=0.0, replicas=replicas).cost_per_hour_usd
