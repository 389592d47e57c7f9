"""Disaggregated vs aggregated: DistServe per-GPU goodput over prompt length and TPOT SLO.

Llama-3.1-8B bf16 on H100 SXM, vllm engine profile (the scenario builder), fixed
prompt lengths, 256-token answers, Poisson arrivals for 60 s, least-outstanding routing.
Fleets of 2 GPUs: 2 aggregated replicas, and 1 prefill + 1 decode replica with KV over
NVLink (4 concurrent transfers). Goodput (DistServe): the highest rate at which >= 90 %
of requests meet TTFT <= 2 s and TPOT <= the target, found by ``plan.pd.per_gpu_goodput``
(gallop + bisection, 3 % tolerance). Also printed: the physical cause of the crossover,
the step time of one prompt's prefill against a decode step at batch 32.

    python benchmarks/bench_pd.py          # writes benchmarks/results/pd_crossover.json
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path

from servelab import __version__
from servelab.perf import StepBatch, StepModel
from servelab.plan.pd import per_gpu_goodput
from servelab.scenario import build, resolve
from servelab.scenario.build import derive

OUT = Path(__file__).resolve().parent / "results" / "pd_crossover.json"
INPUTS = (128, 512, 1024, 2048, 4096)
TPOTS_S = (0.015, 0.020, 0.050)


def main() -> None:
    rows = []
    for inp in INPUTS:
        base = {"workload": "chat", "input_tokens": inp, "output_tokens": 256, "duration_s": 60, "seed": 2,
                "router": "least-outstanding"}
        fleets = {"aggregated 2": {"replicas": 2},
                  "1P+1D": {"disagg": {"prefill": {"replicas": 1}, "decode": {"replicas": 1},
                                       "link": "nvlink", "max_transfers": 4}}}
        dep = build.deployment(resolve(base, source="bench"))
        m = StepModel(dep)
        prefill_s = m.step_time_s(StepBatch(((inp, 0),), 0, 0))
        decode_s = m.step_time_s(StepBatch((), 32, 32 * (inp + 128)))
        mixed_s = m.step_time_s(StepBatch(((inp, 0),), 32, 32 * (inp + 128)))
        for tpot in TPOTS_S:
            row = {"input_tokens": inp, "tpot_s": tpot, "ttft_s": 2.0, "prefill_step_s": prefill_s,
                   "decode_step_b32_s": decode_s, "decode_step_b32_with_prefill_s": mixed_s}
            for name, extra in fleets.items():
                sc = resolve({**base, **extra}, source="bench")
                g = per_gpu_goodput(build.sim_config(sc), lambda r, sc=sc: build.requests(derive(sc, rate_rps=r)),
                                    ttft_s=2.0, tpot_s=tpot, start_rps=10.0)
                row[name] = {"goodput_rps": g.rate_rps, "gpus": g.gpus, "per_gpu_rps": g.per_gpu_rps}
            a, d = row["aggregated 2"]["per_gpu_rps"], row["1P+1D"]["per_gpu_rps"]
            row["pd_over_aggregated"] = d / a if a else None
            rows.append(row)
            print(f"input {inp:5d}  TPOT {tpot * 1e3:4.0f} ms: aggregated {a:7.2f} req/s/GPU, 1P+1D {d:7.2f} "
                  f"({d / a:4.2f}x)   prefill step {prefill_s * 1e3:6.1f} ms, decode step (B=32) "
                  f"{decode_s * 1e3:5.2f} ms, with the prefill {mixed_s * 1e3:6.1f} ms")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "what": "DistServe per-GPU goodput, 2 aggregated GPUs vs 1 prefill + 1 decode GPU",
        "scenario": {"model": "llama-3.1-8b", "gpu": "h100-sxm", "engine": "vllm", "output_tokens": 256,
                     "duration_s": 60, "attainment": 0.9, "link": "nvlink"},
        "results": rows, "python": platform.python_version(), "servelab": __version__,
        "timestamp": datetime.now(timezone.utc).isoformat(),
    }, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
