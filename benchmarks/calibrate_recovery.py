"""How well `servelab calibrate` recovers a KNOWN efficiency from synthetic measurements.

Ground truth: Llama-3.1-8B bf16 on one H100 SXM with ``memory=0.55, compute=0.5,
step_overhead_s=3 ms``. "Measured" runs come from the simulator (``servelab.sim``) run
with that truth: ``--lone`` requests spaced 2 s apart (prompt 128–8000 tokens), then
``--load`` Poisson arrivals at 8 req/s (prompt 50–2000, output 20–250). Each run is
perturbed with multiplicative lognormal noise ``exp(σ·N(0,1))`` on TTFT and decode time
(``start_s`` dropped, as a load client sees it; σ = 0 keeps ``start_s``), then fitted
from the published-table defaults. Prints, per σ, the relative error of each fitted
parameter (median and worst over seeds), of the batch-1 step time, and the held-out
MdAPE before/after; writes ``benchmarks/results/calibrate_recovery.json``.

    python benchmarks/calibrate_recovery.py [--seeds 5] [--lone 100] [--load 120]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import statistics
import time
from pathlib import Path

from servelab.calibrate import fit_efficiency, observations_from_records
from servelab.catalog import get_gpu, get_model
from servelab.catalog._workload_types import RequestSpec
from servelab.perf import Deployment, Efficiency, StepModel
from servelab.sim import SchedulerConfig, ReplicaSpec, SimConfig, simulate

# `make bench` writes to $SERVELAB_BENCH_OUT (outside tracked files); `make bench-record`
# copies those results here, into the committed benchmarks/results/.
_RESULTS = Path(__import__("os").environ.get("SERVELAB_BENCH_OUT") or Path(__file__).resolve().parent / "results")

OUT = _RESULTS / "calibrate_recovery.json"
TRUTH = Efficiency(memory=0.55, compute=0.5, step_overhead_s=3e-3)


def dep(eff: Efficiency) -> Deployment:
    return Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"), efficiency=eff)


def run(seed: int, n_lone: int, n_load: int):
    rng = random.Random(seed)
    reqs = [RequestSpec(id=f"l{i}", arrival_s=2.0 * i, input_tokens=rng.choice([128, 512, 1024, 2048, 4096, 8000]),
                        output_tokens=rng.randint(8, 48)) for i in range(n_lone)]
    t = 2.0 * n_lone + 5.0
    for i in range(n_load):
        t += rng.expovariate(8.0)
        reqs.append(RequestSpec(id=f"p{i}", arrival_s=t, input_tokens=rng.randint(50, 2000),
                                output_tokens=rng.randint(20, 250)))
    cfg = SimConfig(replicas=(ReplicaSpec(deployment=dep(TRUTH), scheduler=SchedulerConfig(enable_prefix_caching=False)),))
    return simulate(cfg, reqs).records


def noisy(records, sigma: float, seed: int):
    if sigma == 0:
        return records
    rng = random.Random(1000 + seed)
    out = []
    for r in records:
        first = r.arrival_s + (r.first_token_s - r.arrival_s) * math.exp(rng.gauss(0, sigma))
        out.append(dataclasses.replace(r, first_token_s=first, start_s=None, token_times_s=None,
                                       finish_s=first + (r.finish_s - r.first_token_s) * math.exp(rng.gauss(0, sigma))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--lone", type=int, default=100)
    ap.add_argument("--load", type=int, default=120)
    ap.add_argument("--sigmas", default="0,0.02,0.05,0.1")
    a = ap.parse_args()
    t0_true = StepModel(dep(TRUTH)).decode_affine(1)[0]
    rows = []
    started = time.perf_counter()
    for sigma in (float(s) for s in a.sigmas.split(",")):
        errs: dict[str, list[float]] = {"memory": [], "compute": [], "step_overhead_s": [], "t0_batch1": []}
        before, after, secs, by_kind = [], [], [], {"tpot": [], "ttft": []}
        for seed in range(1, a.seeds + 1):
            recs = noisy(run(seed, a.lone, a.load), sigma, seed)
            t = time.perf_counter()
            res = fit_efficiency(observations_from_records(recs), dep(Efficiency()))
            secs.append(time.perf_counter() - t)
            for p in ("memory", "compute", "step_overhead_s"):
                errs[p].append(res.fitted[p] / getattr(TRUTH, p) - 1.0)
            errs["t0_batch1"].append(StepModel(dep(res.efficiency)).decode_affine(1)[0] / t0_true - 1.0)
            before.append(res.errors["before"]["holdout"]["all"])
            after.append(res.errors["after"]["holdout"]["all"])
            for k in by_kind:
                by_kind[k].append(res.errors["after"]["holdout"][k])
        row = {"sigma": sigma, "seeds": a.seeds, "lone": a.lone, "load": a.load,
               "rel_error_median_abs_pct": {k: 100 * statistics.median(abs(x) for x in v) for k, v in errs.items()},
               "rel_error_worst_pct": {k: 100 * max(v, key=abs) for k, v in errs.items()},
               "holdout_mdape_before_pct": statistics.median(before),
               "holdout_mdape_after_pct": statistics.median(after),
               "holdout_mdape_after_pct_by_kind": {k: statistics.median(v) for k, v in by_kind.items()},
               "fit_seconds_median": statistics.median(secs)}
        rows.append(row)
        med, worst = row["rel_error_median_abs_pct"], row["rel_error_worst_pct"]
        print(f"σ={sigma:<5} " + "  ".join(f"{k} {med[k]:.1f}% (worst {worst[k]:+.1f}%)" for k in med)
              + f"  holdout MdAPE {row['holdout_mdape_before_pct']:.1f}% → {row['holdout_mdape_after_pct']:.2f}%"
              f" (TPOT {row['holdout_mdape_after_pct_by_kind']['tpot']:.2f}%, TTFT {row['holdout_mdape_after_pct_by_kind']['ttft']:.2f}%)"
              f"  fit {row['fit_seconds_median']:.1f} s")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"truth": dataclasses.asdict(TRUTH), "rows": rows,
                               "total_seconds": time.perf_counter() - started}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
