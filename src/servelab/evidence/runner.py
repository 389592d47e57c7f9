"""Experiments: a scenario turned into records, by simulation, measurement or import.

- ``simulate``: the scenario's offered requests through ``servelab.sim.simulate`` with the
  fleet the scenario describes — both from :mod:`servelab.scenario.build`, the one builder.
- ``bench`` with ``url``: the same offered requests sent by ``servelab.load.run_bench``
  to the endpoint (the API key is read from the environment variable the experiment
  names and never stored).
- ``bench`` with ``import``: a ``vllm bench serve`` or guidellm result file read by the
  load package's importers.
- ``kernels``: rows of a kernel-lab results file (``servelab.kernelrows``).

Throughput window: every run's ``duration_s`` is its makespan (``scenario.build.throughput_window_s``),
for simulated, measured and imported runs alike.

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
from ..scenario import build
from ._provenance import catalog_hash, file_sha256, versions
from .schema import BenchExperiment, KernelsExperiment, Scenario, SimulateExperiment

__all__ = ["RunnerUnavailable", "RunOutput", "fingerprint", "run_experiment", "experiment_kind"]


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


def _run_simulate(sc: Scenario, exp: SimulateExperiment) -> RunOutput:
    try:
        from ..sim import simulate
    except ImportError as exc:
        raise RunnerUnavailable(f"simulator not available ({exc})") from None
    result = simulate(build.sim_config(sc, exact=exp.exact), build.requests(sc))
    return RunOutput(records=list(result.records),
                     duration_s=build.throughput_window_s(result.meta.duration_s, result.records),
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
    specs = build.requests(sc)
    if exp.num_prompts is not None:
        specs = specs[:exp.num_prompts]
    spec = BenchSpec(endpoint=ep, request_rate=build.rate_rps(sc), num_prompts=len(specs),
                     seed=sc.seed, scrape_interval_s=1.0)
    out = run_bench(spec, prompts=prompts_from_specs(specs, seed=sc.seed))
    return RunOutput(records=list(out.records),
                     duration_s=build.throughput_window_s(out.meta.duration_s, out.records),
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
    return RunOutput(records=list(records), duration_s=build.throughput_window_s(meta.duration_s, records),
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
