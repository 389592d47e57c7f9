"""Speed of the step-time model (the simulator's hot path): calls per second.

    python benchmarks/perf_step_speed.py

Times ``StepModel.step_time_s`` for pure-decode steps (the cached affine path), for
mixed prefill+decode steps, and ``StepModel.__init__``; prints calls/s and writes
``benchmarks/results/perf_step_speed.json``.
"""

from __future__ import annotations

import json
import platform
import random
import time
from pathlib import Path

from servelab.catalog import get_gpu, get_model
from servelab.perf import Deployment, StepBatch, StepModel

# `make bench` writes to $SERVELAB_BENCH_OUT (outside tracked files); `make bench-record`
# copies those results here, into the committed benchmarks/results/.
_RESULTS = Path(__import__("os").environ.get("SERVELAB_BENCH_OUT") or Path(__file__).resolve().parent / "results")

OUT = _RESULTS / "perf_step_speed.json"


def rate(fn, items) -> float:
    t = time.perf_counter()
    for x in items:
        fn(x)
    return len(items) / (time.perf_counter() - t)


def main() -> None:
    rng = random.Random(0)
    dep = Deployment(model=get_model("llama-3.1-70b"), gpu=get_gpu("h100-sxm"), tp=4,
                     weight_dtype="fp8", kv_dtype="fp8")
    init = rate(lambda _: StepModel(dep), range(200))
    sm = StepModel(dep)
    decode = [StepBatch(num_decode=rng.randint(1, 256), decode_context_sum=rng.randint(1, 10**6))
              for _ in range(200_000)]
    mixed = [StepBatch(prefill_chunks=((rng.randint(1, 2048), rng.randint(0, 8192)),),
                       num_decode=rng.randint(0, 256), decode_context_sum=rng.randint(0, 10**6))
             for _ in range(50_000)]
    sm.step_time_s(decode[0])
    results = {
        "decode_calls_per_s": rate(sm.step_time_s, decode),
        "mixed_calls_per_s": rate(sm.step_time_s, mixed),
        "init_per_s": init,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for k, v in results.items():
        print(f"{k:22s} {v:,.0f}" if isinstance(v, float) else f"{k:22s} {v}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
