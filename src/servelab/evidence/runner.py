"""Experiments: a scenario turned into records, by simulation, measurement or import.

- ``simulate``: the scenario's offered requests (:func:`scenario_requests`) through
  ``servelab.sim.simulate`` with a fleet built from the scenario (:func:`sim_config`).
- ``bench`` with ``url``: the same offered requests sent by ``servelab.load.run_bench``
  to the endpoint (the API key is read from the environment variable the experiment
  names and never stored).
- ``bench`` with ``import``: a ``vllm bench serve`` or guidellm result file read by the
  load package's importers.
- ``kernels``: rows of a kernel-lab results file (``servelab.kernelrows``).

Bursts: a burst ``{factor: f, start_s: a, duration_s: d}`` superposes a second arrival
stream at rate (f − 1)·r over [a, a + d) on the base stream at rate r; for Poisson
arrivals the sum is exactly a Poisson process at f·r inside the window (superposition).

When a runner's part of servelab is not available, :class:`RunnerUnavailable` is raised
and the experiment stays pending; nothing is faked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..records import RequestRecord
from ._provenance import catalog_hash, file_sha256, versions
from .schema import BenchExperiment, KernelsExperiment, Scenario, SimulateExperiment

__all__ = [
    "RunnerUnavailable", "RunOutput", "scenario_requests", "scenario_slo", "deployment",
    "sim_config", "fleet_usd_per_hour", "fingerprint", "run_experiment", "experiment_kind",
    "ROUTER_NAMES",
]

# Decision-file router names -> simulator router names.
ROUTER_NAMES = {"round-robin": "round_robin", "least-outstanding": "least_outstanding",
                "least-kv": "least_kv", "prefix-aware": "prefix"}


class RunnerUnavailable(Exception):
    """The part of servelab an experiment needs is not available (the run stays pending)."""


@dataclass(kw_only=True)
class RunOutput:
    records: list[RequestRecord] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float | None = None
    engine_version: str = ""
    gpu: str | None = None
    timeseries: dict[str, Any] | None = None
    notes: str = ""
    complete: bool = True


def experiment_kind(exp: Any) -> str:
    """Ledger run kind: simulate | bench | import-vllm | import-guidellm | kernels."""
    if isinstance(exp, BenchExperiment) and exp.import_ is not None:
        return f"import-{exp.import_.format}"
    return exp.kind


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


def fingerprint(sc: Scenario, exp: Any, base_dir: Path) -> str:
    """sha256 of what determines a run's result: scenario, experiment, input files, catalog."""
    payload: dict[str, Any] = {
        "scenario": sc.model_dump(mode="json", exclude={"experiments"}),
        "experiment": exp.model_dump(mode="json", by_alias=True),
        "catalog": catalog_hash(), "servelab": versions()["servelab"],
    }
    src = None
    if isinstance(exp, BenchExperiment) and exp.import_ is not None:
        src = _resolve(exp.import_.path, base_dir)
    elif isinstance(exp, KernelsExperiment):
        src = _resolve(exp.path, base_dir)
    if src is not None:
        payload["file_sha256"] = file_sha256(src) if src.exists() else "missing"
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def scenario_workload(sc: Scenario) -> Any:
    """The catalog workload with the scenario's overrides applied."""
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
    arrival = wl.arrival
    kind = sc.arrival or ("gamma" if sc.burstiness is not None else arrival.kind)
    changes["arrival"] = ArrivalSpec(kind=kind, rate_rps=sc.rate_rps,
                                     burstiness=sc.burstiness or arrival.burstiness)
    return dataclasses.replace(wl, **changes)


def scenario_requests(sc: Scenario) -> list[Any]:
    """The offered requests (catalog ``RequestSpec``), burst window included, by arrival."""
    from ..catalog import generate_requests

    wl = scenario_workload(sc)
    reqs = list(generate_requests(wl, rate_rps=sc.rate_rps, duration_s=sc.duration_s,
                                  seed=sc.seed))
    if sc.burst is not None and sc.burst.factor > 1.0:
        b = sc.burst
        width = min(b.duration_s, max(0.0, sc.duration_s - b.start_s))
        if width > 0:
            extra = generate_requests(wl, rate_rps=sc.rate_rps * (b.factor - 1.0),
                                      duration_s=width, seed=sc.seed + 1_000_003)
            reqs += [dataclasses.replace(r, id=f"burst-{r.id}", arrival_s=r.arrival_s + b.start_s)
                     for r in extra]
    reqs.sort(key=lambda r: (r.arrival_s, r.id))
    return reqs


def scenario_slo(sc: Scenario) -> Any:
    """The scenario's SLO (its ``slo`` string, else the workload preset's)."""
    from ..catalog import get_workload, parse_slo

    return parse_slo(sc.slo) if sc.slo else get_workload(sc.workload).slo


def _model(name: str) -> Any:
    from ..catalog import get_model, load_hf_config

    return load_hf_config(name) if name.endswith(".json") else get_model(name)


def deployment(sc: Scenario) -> Any:
    """The scenario's deployment as its engine profile runs it (``engine.profile``,
    default vllm: efficiencies and per-step overhead; ``gpu_memory_utilization`` read
    under the profile's KV memory rule)."""
    from ..catalog import get_gpu
    from ..perf import Deployment, get_engine

    dep = Deployment(model=_model(sc.model), gpu=get_gpu(sc.gpu), tp=sc.tp, pp=sc.pp, ep=sc.ep,
                     weight_dtype=sc.weight_dtype, kv_dtype=sc.kv_dtype,
                     gpu_memory_utilization=sc.engine.gpu_memory_utilization,
                     max_num_seqs=sc.engine.max_num_seqs,
                     max_num_batched_tokens=sc.engine.max_num_batched_tokens)
    return get_engine(sc.engine.profile).deployment(dep)


def fleet_usd_per_hour(sc: Scenario) -> float:
    """On-demand price of the scenario's fleet: price per GPU-hour × tp × pp × replicas."""
    from ..catalog import get_gpu

    return get_gpu(sc.gpu).price_per_hour_usd * sc.tp * sc.pp * sc.replicas


def sim_config(sc: Scenario, *, exact: bool = False) -> Any:
    from ..sim import AdmissionConfig, EngineConfig, ReplicaSpec, SimConfig

    engine = EngineConfig(max_num_seqs=sc.engine.max_num_seqs,
                          max_num_batched_tokens=sc.engine.max_num_batched_tokens,
                          max_waiting=sc.engine.max_queue)
    admission = AdmissionConfig(rate_limit_rps=sc.rate_limit_rps,
                                burst=None if sc.rate_limit_burst is None else float(sc.rate_limit_burst),
                                client_timeout_s=sc.timeout_s)
    return SimConfig(replicas=(ReplicaSpec(deployment=deployment(sc), engine=engine,
                                           count=sc.replicas),),
                     router=ROUTER_NAMES[sc.router], admission=admission, exact=exact,
                     seed=sc.seed)


def _run_simulate(sc: Scenario, exp: SimulateExperiment) -> RunOutput:
    try:
        from ..sim import simulate
    except ImportError as exc:
        raise RunnerUnavailable(f"simulator not available ({exc})") from None
    result = simulate(sim_config(sc, exact=exp.exact), scenario_requests(sc))
    return RunOutput(records=list(result.records), duration_s=sc.duration_s,
                     engine_version=f"servelab-sim {versions()['servelab']} ({sc.engine.profile} profile)",
                     gpu=f"{sc.gpu} (simulated)", timeseries=getattr(result, "timeseries", None))


def _run_bench_url(sc: Scenario, exp: BenchExperiment) -> RunOutput:
    try:
        from ..load.bench import BenchSpec, run_bench
        from ..load.client import EndpointConfig
        from ..load.datasets import prompts_from_specs
    except ImportError as exc:
        raise RunnerUnavailable(f"load client not available ({exc})") from None
    ep = EndpointConfig(base_url=exp.url or "", model=exp.served_model or sc.model,
                        api_key=os.environ.get(exp.api_key_env) or None, ignore_eos=True)
    specs = scenario_requests(sc)
    if exp.num_prompts is not None:
        specs = specs[:exp.num_prompts]
    spec = BenchSpec(endpoint=ep, request_rate=sc.rate_rps, num_prompts=len(specs),
                     seed=sc.seed, scrape_interval_s=1.0)
    out = run_bench(spec, prompts=prompts_from_specs(specs, seed=sc.seed))
    return RunOutput(records=list(out.records), duration_s=out.meta.duration_s,
                     engine_version=str(out.meta.config.get("server", "")), gpu=out.meta.gpu,
                     timeseries=out.timeseries, complete=out.meta.complete, notes=out.meta.notes)


def _run_import(sc: Scenario, exp: BenchExperiment, base_dir: Path) -> RunOutput:
    assert exp.import_ is not None
    path = _resolve(exp.import_.path, base_dir)
    if not path.exists():
        raise ConfigError(f"import file {str(path)!r} does not exist")
    try:
        from ..load.importers import import_result
    except ImportError as exc:
        raise RunnerUnavailable(f"result-file importers not available ({exc})") from None
    runs = import_result(exp.import_.format, path)
    if exp.import_.benchmark >= len(runs):
        raise ConfigError(f"import benchmark {exp.import_.benchmark} not in {path}; "
                          f"it holds {len(runs)} (valid: 0..{len(runs) - 1})")
    meta, records = runs[exp.import_.benchmark]
    return RunOutput(records=list(records), duration_s=meta.duration_s,
                     engine_version=", ".join(f"{k} {v}" for k, v in meta.versions.items()),
                     gpu=meta.gpu, notes=meta.notes)


def _run_kernels(exp: KernelsExperiment, base_dir: Path) -> RunOutput:
    try:
        from ..kernelrows import read_rows
    except ImportError as exc:
        raise RunnerUnavailable(f"kernel-lab results reader not available ({exc})") from None
    rows = [r.to_dict() if hasattr(r, "to_dict") else dataclasses.asdict(r)
            for r in read_rows(_resolve(exp.path, base_dir))]
    gpus = sorted({str(r.get("gpu")) for r in rows if r.get("gpu")})
    return RunOutput(rows=rows, gpu=", ".join(gpus) or None)


def run_experiment(sc: Scenario, exp: Any, *, base_dir: Path) -> RunOutput:
    """Run one experiment of a scenario (see the module docstring)."""
    if isinstance(exp, SimulateExperiment):
        return _run_simulate(sc, exp)
    if isinstance(exp, BenchExperiment):
        return _run_import(sc, exp, base_dir) if exp.import_ else _run_bench_url(sc, exp)
    if isinstance(exp, KernelsExperiment):
        return _run_kernels(exp, base_dir)
    raise ConfigError(f"unknown experiment kind {getattr(exp, 'kind', exp)!r}; "
                      f"valid: simulate, bench, kernels")
