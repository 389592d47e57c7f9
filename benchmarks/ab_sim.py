"""Simulator A/B: another revision's ``src`` against this tree — speed and identical outputs.

Speed: ``simulate()`` of the chat workload (Llama-3.1-8B on H100 SXM, perf model,
``least_outstanding``, default scheduler) in child processes, the revision and this
tree alternating round by round (on a shared host the load drifts; alternating keeps
the two under the same drift). Each child reports the best CPU time
(``time.process_time``) of ``--repeat`` runs; every round's figure is printed.

Outputs: a digest of everything ``simulate()`` returns (every record's fields, the
time series, events, replica statistics, duration) on scenarios that switch on the
simulator's mechanisms — prefix caching and routing, preemption, priorities, client
timeouts, KV tiers and tier policies with prefetch, autoscaling, faults with retry,
speculative decoding, LoRA slots, rate limits, scale to zero, P/D — must be equal.

    python benchmarks/ab_sim.py main                     # 3 rounds, chat 35 req/s x 1
    python benchmarks/ab_sim.py main --scenario 60x8 --duration 300 --repeat 3
    python benchmarks/ab_sim.py main --no-time           # outputs only

The revision's ``src`` is extracted with ``git archive REV src`` into a temporary folder
and put first on ``PYTHONPATH`` for its children.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- children
def _time(rate: float, replicas: int, duration: float, repeat: int, exact: bool) -> dict:
    from servelab.catalog import generate_requests, get_gpu, get_model, get_workload
    from servelab.perf import Deployment
    from servelab.sim import ReplicaSpec, SchedulerConfig, SimConfig, simulate
    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))
    reqs = generate_requests(get_workload("chat"), rate_rps=rate, duration_s=duration, seed=0)
    cfg = SimConfig(replicas=(ReplicaSpec(deployment=dep, scheduler=SchedulerConfig(), count=replicas),),
                    router="least_outstanding", exact=exact)
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        simulate(cfg, reqs)
        best = min(best, time.process_time() - c0)
    return {"requests": len(reqs), "cpu_s": best, "req_per_cpu_s": len(reqs) / best}


def _scenarios() -> dict:
    from servelab.catalog import generate_requests, get_gpu, get_model, get_workload
    from servelab.perf import Deployment
    from servelab.sim import ReplicaSpec, SchedulerConfig, SimConfig
    from servelab.sim.config import AdmissionConfig, AutoscalerConfig, Fault, KVTier
    from servelab.sim.disagg import DisaggConfig
    from servelab.sim.tiering import KVPolicy

    dep = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))

    def wl(name: str, **kw):  # type: ignore[no-untyped-def]
        return dataclasses.replace(get_workload(name), **kw)

    def rs(sched=None, count=1, **kw):  # type: ignore[no-untyped-def]
        return ReplicaSpec(deployment=dep, scheduler=sched or SchedulerConfig(), count=count, **kw)

    def gen(w, rate, dur, seed):  # type: ignore[no-untyped-def]
        return generate_requests(get_workload(w) if isinstance(w, str) else w, rate_rps=rate,
                                 duration_s=dur, seed=seed)

    tiers = (KVTier(name="dram", blocks=3000, block_bytes=2e6, read_bytes_per_s=2e10, latency_s=1e-4),
             KVTier(name="nvme", blocks=20000, block_bytes=2e6, read_bytes_per_s=5e9, latency_s=1e-3))
    ag = wl("agentic", priorities=((0, 0.3), (1, 0.7)))
    s: dict = {
        "chat35x1": (SimConfig(replicas=(rs(),), router="least_outstanding"), gen("chat", 35, 600, 0)),
        "chat35x1-exact": (SimConfig(replicas=(rs(),), router="least_outstanding", exact=True),
                           gen("chat", 35, 60, 0)),
        "chat60x8": (SimConfig(replicas=(rs(count=8),), router="least_outstanding"), gen("chat", 60, 120, 1)),
        "chat60x1-token-times": (SimConfig(replicas=(rs(),), router="least_outstanding",
                                           record_token_times=True), gen("chat", 60, 120, 2)),
        "code-preempt-x4": (SimConfig(replicas=(rs(SchedulerConfig(num_kv_blocks=800, max_num_batched_tokens=2048),
                                                   count=4),),
                                      router="least_outstanding", admission=AdmissionConfig(max_queue=400)),
                            gen("code", 30, 150, 4)),
        "rag-tiers-autoscale-fault": (
            SimConfig(replicas=(rs(SchedulerConfig(num_kv_blocks=6000, kv_tiers=tiers)),),
                      router="least_kv", record_token_times=True,
                      autoscaler=AutoscalerConfig(target=2.0, poll_interval_s=10, cooldown_s=30,
                                                  model_load_delay_s=20, max_replicas=4),
                      faults=(Fault(at_s=40.0, replica=0, in_flight="retry"),)),
            gen("rag", 6, 120, 5)),
        "chat-spec-lora-ratelimit": (
            SimConfig(replicas=(rs(SchedulerConfig(num_speculative_tokens=3, spec_acceptance_rate=0.7,
                                                   spec_draft_cost=0.1, max_loras=3, lora_load_s=0.01,
                                                   max_waiting=400), count=2),),
                      router="round_robin", admission=AdmissionConfig(rate_limit_rps=30, burst=20)),
            gen(wl("chat", adapters=(("a", 0.4), ("b", 0.3), ("c", 0.2), ("d", 0.1))), 35, 120, 6)),
        "agentic-policy-prefetch": (
            SimConfig(replicas=(rs(SchedulerConfig(num_kv_blocks=5000, kv_tiers=tiers, kv_policy=KVPolicy(
                policy="cost", prefetch=True, prefetch_wait=True, prefetch_deadline_s=0.5)), count=2),),
                router="prefix"),
            gen(ag, 10, 100, 7)),
        "chat-scale-zero": (
            SimConfig(replicas=(rs(),), router="least_outstanding",
                      autoscaler=AutoscalerConfig(min_replicas=0, target=3.0, poll_interval_s=5, cooldown_s=20,
                                                  model_load_delay_s=8)),
            gen("chat", 8, 120, 8)),
        "pd-disagg": (SimConfig(replicas=(rs(count=2), rs(count=2, name="dec")), router="least_outstanding",
                                disagg=DisaggConfig()), gen("rag", 4, 120, 9)),
    }
    for exact in (False, True):
        s["agentic-prefix-preempt-x3" + ("-exact" if exact else "")] = (
            SimConfig(replicas=(rs(SchedulerConfig(num_kv_blocks=4000, scheduling_policy="priority"), count=3),),
                      router="prefix", exact=exact,
                      admission=AdmissionConfig(client_timeout_s=40.0, priority_preemption=True)),
            gen(ag, 15, 60 if exact else 150, 3))
    return s


def _sums() -> dict:
    from servelab.sim import simulate
    out = {}
    for name, (cfg, reqs) in _scenarios().items():
        res = simulate(cfg, reqs)
        h = hashlib.sha256()
        for r in res.records:
            h.update(repr(dataclasses.astuple(r)).encode())
        h.update(repr(sorted(res.timeseries.items())).encode())
        h.update(repr(res.events).encode())
        h.update(repr(sorted(res.replica_stats.items())).encode())
        h.update(repr(res.duration_s).encode())
        status: dict[str, int] = {}
        for r in res.records:
            status[r.status] = status.get(r.status, 0) + 1
        pre = sum(int(v.get("num_preempted", 0)) for v in res.replica_stats.values())
        out[name] = {"digest": h.hexdigest()[:16], "requests": len(reqs), "preempted": pre, "status": status}
    return out


# ----------------------------------------------------------------------------- parent
def _child(pythonpath: str, args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=pythonpath)
    out = subprocess.run([sys.executable, __file__, "--child", *args], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", nargs="?", help="git revision to compare this tree with (e.g. main)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5, help="runs per child; its best CPU time counts")
    ap.add_argument("--scenario", default="35x1", help="RATExREPLICAS of the chat workload to time")
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--exact", action="store_true", help="time step-by-step mode")
    ap.add_argument("--no-time", action="store_true")
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        kind, *rest = args.child
        if kind == "time":
            rate, reps, dur, repeat, exact = rest
            print(json.dumps(_time(float(rate), int(reps), float(dur), int(repeat), exact == "1")))
        else:
            print(json.dumps(_sums()))
        return
    if not args.rev:
        ap.error("give a git revision to compare with, e.g. main")
    with tempfile.TemporaryDirectory() as tmp:
        tar = Path(tmp) / "src.tar"
        with open(tar, "wb") as f:
            subprocess.run(["git", "-C", str(ROOT), "archive", args.rev, "src"], stdout=f, check=True)
        with tarfile.open(tar) as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(tmp, filter="data")
            else:
                t.extractall(tmp)
        trees = {args.rev: str(Path(tmp) / "src"), "this tree": str(ROOT / "src")}
        ok = True
        if not args.no_check:
            sums = {k: _child(v, ["sums"]) for k, v in trees.items()}
            a, b = sums.values()
            for name in a:
                same = a[name]["digest"] == b.get(name, {}).get("digest")
                ok &= same
                print(f"{name:32s} {a[name]['requests']:6d} requests, {a[name]['preempted']:4d} preempted, "
                      f"{a[name]['status']}: {'identical' if same else 'DIFFERENT'} "
                      f"({a[name]['digest']} vs {b.get(name, {}).get('digest')})")
        if not args.no_time:
            rate, reps = args.scenario.split("x")
            targ = ["time", rate, reps, str(args.duration), str(args.repeat), "1" if args.exact else "0"]
            figs: dict[str, list[float]] = {k: [] for k in trees}
            for i in range(args.rounds):
                for k, v in trees.items():
                    r = _child(v, targ)
                    figs[k].append(r["req_per_cpu_s"])
                    print(f"round {i + 1} {k:10s}: {r['requests']} requests, best {r['cpu_s']:.4f} s CPU "
                          f"-> {r['req_per_cpu_s']:,.0f} simulated req per CPU-second")
            base, new = (figs[k] for k in trees)
            print(f"chat {args.scenario} {'exact' if args.exact else 'skip'}: {args.rev} "
                  + " / ".join(f"{x:,.0f}" for x in base) + "; this tree "
                  + " / ".join(f"{x:,.0f}" for x in new)
                  + f" (median ratio {sorted(n / b for n, b in zip(new, base))[len(new) // 2]:.2f}x)")
        if not ok:
            sys.exit("outputs differ")


if __name__ == "__main__":
    main()
