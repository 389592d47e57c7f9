"""Golden summary of one seeded simulation (pins the simulator's behaviour).

Regenerate after an intended change with:
    SERVELAB_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/test_sim_golden.py
and review the diff of tests/golden/sim_summary.json.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from servelab import metrics
from servelab.catalog import RequestSpec
from servelab.sim import AdmissionConfig, AffineStepModel, SchedulerConfig, ReplicaSpec, SimConfig, simulate

GOLDEN = Path(__file__).parent / "golden" / "sim_summary.json"
KEYS = ("offered", "completed", "rejected", "timed_out", "failed", "throughput_tokens_per_s",
        "total_output_tokens", "delivery")
LAT = ("ttft_s", "tpot_s", "e2e_s", "queue_s")


def _scenario() -> dict:
    rng = random.Random(2024)
    t = 0.0
    reqs = []
    for i in range(3000):
        t += rng.gammavariate(0.5, 1 / (0.5 * 60.0))      # bursty (CV = sqrt 2), 60 req/s
        g = rng.randrange(8) if rng.random() < 0.5 else -1
        reqs.append(RequestSpec(id=f"r{i}", arrival_s=t, input_tokens=rng.randint(50, 2000),
                                output_tokens=rng.randint(10, 600), prefix_group=g,
                                prefix_tokens=512 if g >= 0 else 0, priority=rng.randint(0, 1)))
    spec = ReplicaSpec(scheduler=SchedulerConfig(num_kv_blocks=6000, max_num_seqs=128),
                       step_model=AffineStepModel(per_prefill_token_s=2e-5), count=2)
    cfg = SimConfig(replicas=(spec,), router="prefix", seed=0,
                    admission=AdmissionConfig(max_queue=64, client_timeout_s=60.0))
    res = simulate(cfg, reqs)
    s = metrics.summarize(res.records, duration_s=reqs[-1].arrival_s)
    out = {k: s[k] for k in KEYS}
    for m in LAT:
        out[m] = {p: s[m][p] for p in ("p50", "p90", "p95", "p99")}
    out["replicas"] = {name: {k: v for k, v in st.items() if not isinstance(v, dict)}
                       for name, st in sorted(res.replica_stats.items())}
    out["makespan_s"] = res.duration_s
    return out


def test_golden_summary() -> None:
    got = json.loads(json.dumps(_scenario()))
    if os.environ.get("SERVELAB_REGEN_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    want = json.loads(GOLDEN.read_text())
    for k, v in want.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                assert got[k][k2] == pytest.approx(v2, rel=1e-9), (k, k2)
        else:
            assert got[k] == pytest.approx(v, rel=1e-9), k
    assert set(got) == set(want)
