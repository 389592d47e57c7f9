"""Adapter slots against adapter churn: why `examples/decisions/multi-lora-churn.yaml`
comes out as it does.

The decision's scenario (Llama-3.1-8B on one H100, chat at 5 req/s for 300 s, 64
adapters with Zipf popularity, 11.3 ms per adapter load) with 4, 8, 16, 32 and 64 slots:
p50/p90 TTFT and adapter loads per slot count. With 64 slots (one per adapter) nothing
waits for a slot; the time-weighted distribution of distinct adapters among running
requests is the slot demand. Its mean against the M/G/∞ count Σ_k 1 − exp(−λ·p_k·E[S])
(each adapter's running requests are Poisson in number with mean λ·p_k·E[S], E[S] the
measured mean start-to-finish time; tests/test_sim_lora.py checks the formula against
the simulator on a synthetic case).

    python benchmarks/bench_lora_slots.py     # writes benchmarks/results/lora_slots.json
"""

from __future__ import annotations

import json
import math
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from servelab import __version__, metrics
from servelab.evidence import load_decision
from servelab.scenario import build
from servelab.sim import simulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_sim_lora import busy_adapters  # noqa: E402 - one definition, shared with its test

OUT = ROOT / "benchmarks" / "results" / "lora_slots.json"
DECISION = ROOT / "examples" / "decisions" / "multi-lora-churn.yaml"
SLOTS = (4, 8, 16, 32, 64)
SLOT_BYTES = 83_886_080        # one rank-16 Llama-3.1-8B adapter in bf16 (the decision file)


def main() -> None:
    base = load_decision(DECISION).scenarios["slots-16"]
    rows = []
    demand: dict = {}
    for slots in SLOTS:
        sc = build.derive(base, lora=base.lora.model_copy(update={"max_loras": slots}),
                          engine=base.engine.model_copy(update={
                              "gpu_memory_utilization": 0.9 - slots * SLOT_BYTES / 80e9}))
        reqs = build.requests(sc)
        res = simulate(build.sim_config(sc), reqs)
        s = metrics.summarize(res.records)
        stats = next(iter(res.replica_stats.values()))
        rows.append({"max_loras": slots, "requests": len(reqs), "ttft_p50_s": s["ttft_s"]["p50"],
                     "ttft_p90_s": s["ttft_s"]["p90"], "tpot_p90_s": s["tpot_s"]["p90"],
                     "lora_loads": stats["lora_loads"]})
        print(f"{slots:3d} slots: TTFT p50 {s['ttft_s']['p50']:8.3f} s, p90 {s['ttft_s']['p90']:8.3f} s, "
              f"loads {stats['lora_loads']}")
        if slots == base.lora.adapters:
            dist = busy_adapters(res.records, {q.id: q.adapter for q in reqs})
            total = sum(dist.values())
            es = sum(r.finish_s - r.start_s for r in res.records) / len(res.records)
            lam = build.rate_rps(sc)
            mg = sum(1 - math.exp(-lam * p * es) for _, p in build.adapter_shares(sc.lora))
            demand = {"mean": sum(n * d for n, d in dist.items()) / total, "mean_service_s": es,
                      "mg_infinity_mean": mg, "max": max(n for n, d in dist.items() if d > 0),
                      **{f"frac_above_{m}": sum(d for n, d in dist.items() if n > m) / total
                         for m in SLOTS[:3]}}
            print(f"distinct adapters running with a slot each: mean {demand['mean']:.2f} "
                  f"(M/G/inf {mg:.2f}, E[S] {es:.2f} s), above 4/8/16 for "
                  f"{demand['frac_above_4']:.3f}/{demand['frac_above_8']:.3f}/{demand['frac_above_16']:.3f} "
                  f"of the time")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "what": "adapter slots vs 64 Zipf adapters, the multi-lora-churn decision's scenario",
        "scenario": {"decision": "examples/decisions/multi-lora-churn.yaml", "base": "slots-16"},
        "results": rows, "slot_demand": demand, "python": platform.python_version(),
        "servelab": __version__, "timestamp": datetime.now(timezone.utc).isoformat(),
    }, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
