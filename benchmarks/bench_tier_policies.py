"""KV tier policies: the SGLang slow-tier case on one request, and tenants under load.

1. One 8,192-token request whose first 7,372 tokens (90 %) were cached by an earlier
   request, on Llama-3.1-8B / H100 (perf model, no engine profile), TTFT of the repeat:
   prefix still in HBM; evicted and recomputed (no tier); evicted to a file tier read at
   1.2 GB/s (SGLang's `file` backend, sgl-project/sglang#26886) with ``lru`` and with
   ``cost``. SGLang's own figures (sgl-project/sglang#26305, MiniMax M2.7, 8K input,
   concurrency 16): HBM hit 482 ms, recompute 1,725 ms, file hit 2,450 ms.
2. The decision example examples/decisions/kv-tier-policy.yaml's load (1 req/s of 8K
   prompts over 100 shared prefixes, 20 % of the prefixes owned by a priority-0 tenant),
   with fast tiers (DRAM 64 GiB + NVMe 2,000 GiB at 7.45 GB/s) under ``lru`` and
   ``priority`` (30 % of HBM pinnable), TTFT per tenant; and the file tier under the
   three policies.

    python benchmarks/bench_tier_policies.py     # writes benchmarks/results/tier_policies.json
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path

from servelab import __version__, metrics
from servelab.catalog import RequestSpec, get_gpu, get_model
from servelab.perf import Deployment, memory_budget
from servelab.scenario import build, resolve
from servelab.sim import SchedulerConfig, KVPolicy, KVTier, ReplicaEngine, SimRequest, simulate

OUT = Path(__file__).resolve().parent / "results" / "tier_policies.json"
FILE_READ_BYTES_PER_S = 1.2e9        # SGLang file backend read rate (sgl-project/sglang#26886)


def _run(eng: ReplicaEngine, t: float) -> float:
    while eng.has_work:
        t += eng.step(t).duration_s
    return t


def single_request() -> dict[str, float]:
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))
    block_bytes = memory_budget(dep).kv_bytes_per_token_per_gpu * 16
    file = KVTier(name="file", blocks=100_000, block_bytes=block_bytes, read_bytes_per_s=FILE_READ_BYTES_PER_S)

    def ttft(tiers: tuple, policy: KVPolicy | None, evict: bool) -> float:
        eng = ReplicaEngine(dep, SchedulerConfig(num_kv_blocks=520, kv_tiers=tiers, kv_policy=policy))
        eng.add(RequestSpec(id="a", arrival_s=0.0, input_tokens=8192, output_tokens=1, prefix_group=1,
                            prefix_tokens=7372), 0.0)
        t = _run(eng, 0.0)
        if evict:
            eng.add(RequestSpec(id="f", arrival_s=t, input_tokens=520 * 16 - 1, output_tokens=1), t)
            t = _run(eng, t)
        r = SimRequest(RequestSpec(id="b", arrival_s=t, input_tokens=8192, output_tokens=1, prefix_group=1,
                                   prefix_tokens=7372), 2)
        eng.enqueue(r, t)
        _run(eng, t)
        return r.first_token_s - t

    return {"hbm_hit_s": ttft((), None, False), "recompute_s": ttft((), None, True),
            "file_lru_s": ttft((file,), KVPolicy(policy="lru"), True),
            "file_cost_s": ttft((file,), KVPolicy(policy="cost"), True)}


def tenants() -> dict[str, dict[str, float]]:
    base = {"workload": "rag", "rate_rps": 1.0, "duration_s": 300, "seed": 3, "input_tokens": 8192,
            "output_tokens": 256, "prefix": {"num_groups": 100, "prefix_tokens": 7372, "fraction": 1.0},
            "priorities": {0: 0.2, 1: 0.8}, "priority_by_prefix": True}
    fast = [{"name": "dram", "gib": 64}, {"name": "nvme", "gib": 2000, "read_gb_s": 7.45, "latency_ms": 0.1}]
    file = [{"name": "file", "gib": 2000, "read_gb_s": 1.2}]
    variants = {
        "no tier": {},
        "no tier, priority": {"kv_policy": {"policy": "priority", "pin_fraction": 0.3}},
        "fast tiers, lru": {"kv_tiers": fast},
        "fast tiers, priority": {"kv_tiers": fast, "kv_policy": {"policy": "priority", "pin_fraction": 0.3}},
        "file tier, lru": {"kv_tiers": file},
        "file tier, priority": {"kv_tiers": file, "kv_policy": {"policy": "priority", "pin_fraction": 0.3}},
        "file tier, cost": {"kv_tiers": file, "kv_policy": {"policy": "cost"}},
    }
    out = {}
    for name, extra in variants.items():
        sc = resolve({**base, **extra}, source="bench")
        res = simulate(build.sim_config(sc), build.requests(sc))
        row = {}
        for label, recs in (("all", res.records), ("tenant0", [r for r in res.records if r.priority == 0]),
                            ("tenant1", [r for r in res.records if r.priority == 1])):
            s = metrics.summarize(recs)
            row[label] = {"ttft_p50_s": s["ttft_s"]["p50"], "ttft_p95_s": s["ttft_s"]["p95"],
                          "mean_cached_tokens": sum(r.cached_tokens for r in recs) / max(1, len(recs))}
        out[name] = row
    return out


def main() -> None:
    one = single_request()
    print("one 8K request, 90 % prefix: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in one.items()))
    ten = tenants()
    for name, row in ten.items():
        print(f"{name:22s} " + "  ".join(f"{k}: TTFT p50 {v['ttft_p50_s']:.3f} s p95 {v['ttft_p95_s']:.3f} s "
                                         f"cached {v['mean_cached_tokens']:.0f}" for k, v in row.items()))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"what": "KV tier policies", "single_request": one, "tenants": ten,
                               "python": platform.python_version(), "servelab": __version__,
                               "timestamp": datetime.now(timezone.utc).isoformat()}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
