"""Fit the roofline's efficiencies per GPU family on the rows whose role is ``fit``.

Rows (``benchmarks/data/README.md``): the TensorRT-LLM perf-overview tables
(``trtllm_throughput.csv``) and the published serving results
(``validation_published.csv``, ``vllm_published.csv``, ``published_serving.csv``), each
with a ``role`` column. Only ``fit`` rows enter a fit; ``validate`` rows are read by
``benchmarks/validate.py`` alone. ``tests/test_perf_families.py`` checks that handing the
fitter the validate rows (or changing their values) changes no fitted parameter.

Each family (the GPU catalog's ``architecture``) is fitted by coordinate descent from
the global fit over ``GRIDS``, minimising the summed |log(predicted/published)| of its
fit rows plus the prior penalty; every row is predicted under its own engine (a vLLM row
keeps vLLM's step overhead). The shipped values are held near the global fit
by a prior centred on it (:func:`servelab.perf.families.prior_penalty`). Writes ``src/servelab/perf/data/families.json``.

    python benchmarks/calibrate_families.py
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import calibrate  # noqa: E402
import validate  # noqa: E402

from servelab.catalog import get_gpu  # noqa: E402
from servelab.perf import Efficiency  # noqa: E402
from servelab.perf.families import FAMILIES, FITTED_FIELDS, PRIOR_ROWS, prior_penalty  # noqa: E402

OUT = HERE.parent / "src" / "servelab" / "perf" / "data" / "families.json"
# calibrate.GRIDS plus the all-reduce latency (prior 10 us: nccl-tests small-message latency
# on NVLink; RCCL on Infinity Fabric is not sourced, so it is fitted where rows identify it).
# Memory and compute extend below the global grids: a family's kernels may reach far less
# of its datasheet peak than NVIDIA's do.
GRIDS = {**calibrate.GRIDS, "comm_latency_s": [5e-6, 10e-6, 15e-6, 20e-6, 30e-6, 40e-6, 60e-6, 80e-6],
         "memory": [0.3, 0.35, 0.4, 0.45] + calibrate.GRIDS["memory"],
         "compute": [0.2, 0.25] + calibrate.GRIDS["compute"]}
DATA_FILES = (calibrate.DATA, validate.DATA, validate.VLLM_DATA, validate.SERVING_DATA)


@dataclass
class Obs:
    """One published number, ready to predict."""
    kind: str            # "trtllm" (perf-overview row) | "serving" (validation-format row)
    row: dict
    family: str
    role: str
    published: float
    prepared: object = None


def observations() -> list[Obs]:
    out = []
    for r in calibrate.load_rows():
        out.append(Obs("trtllm", r, get_gpu(r["gpu"]).architecture, r["role"], r["output_tokens_per_s"],
                       calibrate.prepare(r)))
    for path in (validate.DATA, validate.VLLM_DATA, validate.SERVING_DATA):
        for r in validate.load_rows(path):
            out.append(Obs("serving", r, get_gpu(r["gpu"]).architecture, r["role"], r["value"]))
    return out


def predict(o: Obs, eff: Efficiency) -> float:
    """Prediction of ``o`` with kernel efficiencies ``eff`` under the row's engine."""
    if o.kind == "trtllm":
        return calibrate.predict(o.prepared, o.row, eff)
    return validate.predict(o.row, validate.profile_for(o.row).apply(eff))["predicted"]


def _loss(obs: list[Obs], eff: Efficiency) -> float:
    """Mean |log(predicted/published)| of ``obs``."""
    return calibrate.log_loss([predict(o, eff) for o in obs], [o.published for o in obs])


def objective(obs: list[Obs], eff: Efficiency, start: Efficiency) -> float:
    """Summed |log error| over ``obs`` plus the prior penalty toward ``start``."""
    return len(obs) * _loss(obs, eff) + prior_penalty(eff, start, PRIOR_ROWS)


def fit_family(obs: list[Obs], start: Efficiency, passes: int = 6) -> Efficiency:
    """Coordinate descent over ``GRIDS`` (fitted fields only) from ``start``, with pairwise
    moves when no single field improves."""
    eff, best = start, objective(obs, start, start)
    for _ in range(passes):
        changed = False
        for name in FITTED_FIELDS:
            for v in GRIDS[name]:
                cand = dataclasses.replace(eff, **{name: v})
                val = objective(obs, cand, start)
                if val < best - 1e-12:
                    best, eff, changed = val, cand, True
        if not changed:
            # one-field moves are stuck: try every pair of fields jointly (a valley that
            # runs diagonally, e.g. bandwidth against all-reduce latency)
            for i, a in enumerate(FITTED_FIELDS):
                for b in FITTED_FIELDS[i + 1:]:
                    for va in GRIDS[a]:
                        for vb in GRIDS[b]:
                            cand = dataclasses.replace(eff, **{a: va, b: vb})
                            val = objective(obs, cand, start)
                            if val < best - 1e-12:
                                best, eff, changed = val, cand, True
            if not changed:
                break
    return eff


EXPERT_COMPUTE_GRID = [round(0.3 + 0.05 * i, 2) for i in range(15)]     # 0.30 … 1.00


def is_moe(o: Obs) -> bool:
    from servelab.catalog import get_model
    return get_model(o.row["model"]).moe is not None


def fit_expert_compute(obs: list[Obs]) -> dict:
    """One global grouped-GEMM efficiency (``Efficiency.expert_compute``) fitted on every MoE
    row with role ``fit`` (any family), all other fields at the global fit: the value of
    the grid with the least mean |log error|. Validate rows are dropped first."""
    rows = [o for o in obs if o.role == "fit" and is_moe(o) and (o.kind != "trtllm" or o.prepared is not None)]
    base = dataclasses.replace(Efficiency(), expert_compute=1.0)
    losses = {v: _loss(rows, dataclasses.replace(base, expert_compute=v)) for v in EXPERT_COMPUTE_GRID}
    best = min(losses, key=lambda v: (losses[v], -v))
    return {"expert_compute": best, "fit_rows": len(rows),
            "loss_at_1": round(losses[1.0], 4), "loss_fit": round(losses[best], 4)}


def fit_families(obs: list[Obs], families=FAMILIES) -> dict:
    """Per family: the raw fit on its ``fit`` rows, their count and sources. Rows whose
    role is not ``fit`` are dropped here, before anything is computed."""
    fit_obs = [o for o in obs if o.role == "fit"]
    start = Efficiency()
    out = {}
    for fam in families:
        # perf-overview rows the memory model cannot fit carry no efficiency information
        rows = [o for o in fit_obs if o.family == fam and (o.kind != "trtllm" or o.prepared is not None)]
        if not rows:
            out[fam] = {"fit_rows": 0, "raw": {}, "sources": []}
            continue
        raw = fit_family(rows, start)
        out[fam] = {"fit_rows": len(rows), "raw": {k: getattr(raw, k) for k in FITTED_FIELDS},
                    "sources": sorted({o.row.get("source", "trtllm-perf-overview")
                                       if o.kind == "serving" else f"trtllm-perf-overview {o.row['trtllm_version']}"
                                       for o in rows}),
                    "loss_global": round(_loss(rows, start), 4), "loss_fit": round(_loss(rows, raw), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.parse_args()
    t0 = time.time()
    obs = observations()
    moe = fit_expert_compute(obs)
    print(f"expert_compute {moe['expert_compute']} on {moe['fit_rows']} MoE fit rows "
          f"(mean |log error| {moe['loss_at_1']} at 1.0 -> {moe['loss_fit']}); "
          f"shipped Efficiency().expert_compute = {Efficiency().expert_compute}")
    fams = fit_families(obs)
    glob = Efficiency()
    for fam, f in fams.items():
        print(f"{fam:9s} {f['fit_rows']:4d} fit rows  {f['raw']}  "
              f"mean |log error| {f.get('loss_global')} -> {f.get('loss_fit')}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "what": "roofline efficiencies per GPU family, fitted on rows with role 'fit' with a "
                "prior toward the global fit (benchmarks/calibrate_families.py)",
        "prior_rows": PRIOR_ROWS,
        "global": {k: getattr(glob, k) for k in FITTED_FIELDS},
        "data_sha256": {str(p.relative_to(HERE.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in DATA_FILES},
        "families": fams,
        "moe": moe,
        "elapsed_s": round(time.time() - t0, 1),
    }, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
