"""Discrete-event simulation of a serving fleet: arrivals, admission, routing, replicas,
autoscaler, faults; produces per-request records, run metadata and time series.

Event order: a heap keyed ``(time, priority, sequence)`` — ties in time break by a
fixed priority (fault < replica ready < arrival < timeout < step end < autoscaler
tick < sample) and then by insertion order, so a run is a pure function of its
inputs. Arrivals are merged from the sorted request list instead of the heap.

Admission, in order: token bucket (``rate_limit_rps``, ``burst``; empty →
rejected "429 rate limited"), no ready replica → rejected "503 no ready replica"
(with scale to zero, ``autoscaler.min_replicas = 0``: the request waits at the router
instead, see below), fleet waiting requests ≥ ``max_queue`` → rejected "503 queue
full", the router picks
a replica, a request that can never fit there → failed "400 …", that replica's
``max_waiting`` full → rejected "503 queue full". A client timeout ends a request
"timed_out" at ``arrival + client_timeout_s`` wherever it is.

Per-request overhead (``deployment.efficiency.request_overhead_s`` of the chosen
replica, 0 in the shipped engine profiles): a routed request reaches that replica's
engine this much later (an ``enter`` event); ``dispatch_s`` stays the routing time. It
is in flight meanwhile (timeouts and faults reach it) but in no replica's queue. With
0, requests enter at once and none of this runs.

Each replica runs :class:`~servelab.sim.engine.ReplicaEngine`; one heap event marks
the end of its step or decode stretch. A request that lands on a replica in the
middle of a stretch and could join the batch truncates the stretch at the step in
progress (it joins at the next step boundary, exactly as in step-by-step mode).

Autoscaler (every ``poll_interval_s``), the Kubernetes HPA rule with its two guards
against flapping (kubernetes.io, "Horizontal Pod Autoscaling", algorithm details and
"Stabilization window"; API reference ``HPAScalingRules``):

* the ratio ``r = mean(metric over ready replicas) / target``; within the tolerance band
  ``|r − 1| ≤ tolerance`` (HPA default 0.1) the recommendation is the current ready count,
  else ``ceil(ready · r)``; clamped to [min, max];
* scale-up acts at once (HPA scale-up stabilization default 0 s) on the replicas not yet
  counted (ready + provisioning); scale-down goes to the highest recommendation of the
  last ``cooldown_s`` (the scale-down stabilization window, HPA default 300 s: polls at
  times ``t > now − cooldown_s``, this one included), and only while none is provisioning.

Scale-up creates replicas that become ready after ``provisioning_delay_s +
model_load_delay_s``; scale-down drains the newest replicas (no new requests; removed
when idle). The HPA's rate policies (scale-up by at most max(4 pods, 100 %) per 15 s)
are not modelled. The window starts empty: the first polls of a run stabilize only
over the polls since its start (as a freshly started HPA controller does).

Scale to zero (``min_replicas = 0``): with no ready replica a request waits in the
router's queue (at most ``max_queue`` of them, else "503 queue full"; client timeouts
apply). If no replica is being provisioned, that arrival starts one at once, without
waiting for the next poll or the cooldown (what Knative's activator does), so the
first request of an idle fleet sees the whole cold start
``provisioning_delay_s + model_load_delay_s`` in its TTFT. When a replica becomes
ready the router queue is dispatched in arrival order. A poll with requests held and
no replica asks for at least one.
"""

from __future__ import annotations

import heapq
import math
import platform
import uuid
from collections import deque
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from .. import __version__
from ..catalog.workloads import RequestSpec
from ..records import RequestRecord, RunMeta
from .config import ReplicaSpec, SimConfig
from .engine import ReplicaEngine
from .request import DONE, SimRequest
from .router import Router

__all__ = ["SimResult", "simulate"]

_FAULT, _READY, _ARRIVAL, _TIMEOUT, _STEP, _SCALE, _SAMPLE = range(7)


@dataclass(kw_only=True)
class SimResult:
    records: list[RequestRecord]
    meta: RunMeta
    timeseries: dict[str, Any]
    duration_s: float                       # simulated time until the last request ended
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (t, kind, detail)
    replica_stats: dict[str, dict[str, float]] = field(default_factory=dict)


class _Replica:
    __slots__ = ("name", "engine", "spec", "state", "version", "busy", "index", "overhead_s")

    def __init__(self, name: str, engine: ReplicaEngine, spec: ReplicaSpec, index: int) -> None:
        self.name = name
        self.engine = engine
        self.spec = spec
        self.state = "ready"
        self.version = 0
        self.busy = False
        self.index = index
        eff = getattr(spec.deployment, "efficiency", None)
        self.overhead_s = float(getattr(eff, "request_overhead_s", 0.0) or 0.0)


class _Sim:
    def __init__(self, config: SimConfig, requests: Sequence[RequestSpec]) -> None:
        self.cfg = config
        self.adm = config.admission
        self.reqs = sorted(requests, key=lambda r: r.arrival_s)
        self.heap: list[tuple] = []
        self.seq = 0
        self.chains: dict = {}
        self.router = Router(config.router, self.chains)
        self.replicas: list[_Replica] = []
        self.ready: list[_Replica] = []
        self.events: list[tuple[float, str, str]] = []
        self.all: list[SimRequest] = []
        self.in_flight = 0
        self.max_steps = 1 if config.exact else 1 << 62
        self.record_tt = config.record_token_times
        self.plain_admit = self.adm.rate_limit_rps is None and self.adm.client_timeout_s is None
        # a single ready replica is the router's answer without asking it (every policy
        # but prefix returns 0 there and keeps no state)
        self.pick_one = config.router != "prefix"
        self.tokens = self.adm.bucket_size
        self.last_refill = 0.0
        self.provisioning = 0
        self.recommendations: deque[tuple[float, int]] = deque()   # (poll time, recommendation)
        # scale to zero: requests waiting at the router while no replica is ready
        self.held: deque[SimRequest] = deque()
        self.hold_at_zero = config.autoscaler is not None and config.autoscaler.min_replicas == 0
        self.names: dict[str, int] = {}
        # requests between the router and their replica's engine (request_overhead_s > 0):
        # index -> (replica, token); a token that no longer matches marks a stale event
        self.transit: dict[int, tuple[_Replica, int]] = {}
        self.ts: dict[str, Any] = {"t_s": [], "waiting": [], "running": [], "kv_usage": [],
                                   "replicas": [], "per_replica": {}}
        self.now = 0.0
        for i, spec in enumerate(config.replicas):
            for _ in range(spec.count):
                self._new_replica(i, 0.0, ready=True)

    # ------------------------------------------------------------------ helpers
    def push(self, t: float, prio: int, kind: str, a: Any = None, b: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, prio, self.seq, kind, a, b))

    def _new_replica(self, spec_index: int, now: float, *, ready: bool) -> _Replica:
        spec = self.cfg.replicas[spec_index]
        n = self.names.get(spec.name, 0)
        self.names[spec.name] = n + 1
        name = f"{spec.name}-{n}"
        eng = ReplicaEngine(spec.deployment, spec.scheduler, step_model=spec.step_model, name=name,
                            exact=self.cfg.exact, record_token_times=self.cfg.record_token_times,
                            priority_preemption=self.adm.priority_preemption, chains=self.chains)
        rep = _Replica(name, eng, spec, len(self.replicas))
        self.replicas.append(rep)
        if ready:
            self.ready.append(rep)
        else:
            rep.state = "provisioning"
        return rep

    def _start(self, rep: _Replica, now: float) -> None:
        eng = rep.engine
        end = eng.begin(now, self.max_steps)
        if eng.wake_s is not None:
            self._wake_at(rep)
        if end is None:
            rep.busy = False
            if rep.state == "draining":
                self._retire(rep, now)
            return
        rep.busy = True
        rep.version += 1
        self.seq += 1
        heapq.heappush(self.heap, (end, _STEP, self.seq, "step", rep, rep.version))

    def _wake_at(self, rep: _Replica) -> None:
        """Schedule a wake-up when a request held for its KV prefetch may join the queue
        (``KVPolicy.prefetch_wait``): the replica starts, or its stretch is cut there."""
        eng = rep.engine
        if eng.wake_s != eng.wake_pushed:
            eng.wake_pushed = eng.wake_s
            self.push(eng.wake_s, _ARRIVAL, "wake", rep)

    def on_wake(self, rep: _Replica, now: float) -> None:
        rep.engine.wake_pushed = None
        if rep.state == "dead":
            return
        if rep.busy:
            self._truncate(rep, now)
        else:
            self._start(rep, now)

    def _retire(self, rep: _Replica, now: float) -> None:
        rep.state = "dead"
        rep.version += 1
        self.router.forget(rep.name)
        self.events.append((now, "removed", rep.name))

    def _end(self, r: SimRequest, status: str, reason: str, t: float, *, counted: bool) -> None:
        """Final status for a request not finished by an engine; ``counted``: it was in flight."""
        r.status = status
        r.reason = reason
        r.end_s = t
        if counted:
            self.in_flight -= 1

    # ------------------------------------------------------------------ arrivals
    def arrive(self, spec: RequestSpec, now: float) -> None:
        r = SimRequest(spec, len(self.all))
        if self.record_tt:
            r.token_times = []
        self.all.append(r)
        if self.plain_admit:                # no rate limit, no client timeout
            self.dispatch(r, now)
            return
        adm = self.adm
        if adm.rate_limit_rps is not None:
            self.tokens = min(adm.bucket_size,
                              self.tokens + (now - self.last_refill) * adm.rate_limit_rps)
            self.last_refill = now
            if self.tokens < 1.0:
                self._end(r, "rejected", "429 rate limited", now, counted=False)
                return
            self.tokens -= 1.0
        if adm.client_timeout_s is not None:
            r.deadline_s = spec.arrival_s + adm.client_timeout_s
        if self.dispatch(r, now) and adm.client_timeout_s is not None:
            self.push(r.deadline_s, _TIMEOUT, "timeout", r)

    def dispatch(self, r: SimRequest, now: float) -> bool:
        ready = self.ready
        if not ready:
            if self.hold_at_zero:
                return self._hold(r, now)
            self._end(r, "rejected", "503 no ready replica", now, counted=False)
            return False
        mq = self.adm.max_queue
        if mq is not None and sum(x.engine.num_waiting for x in ready) >= mq:
            self._end(r, "rejected", "503 queue full", now, counted=False)
            return False
        rep = ready[0] if len(ready) == 1 and self.pick_one else ready[self.router.pick(r.spec, ready)]
        why = rep.engine.fits(r.spec)
        if why:
            self._end(r, "failed", why, now, counted=False)
            return False
        if rep.overhead_s:
            # The replica's fixed per-request cost (tokenization, request set-up): the
            # engine sees the request request_overhead_s after the router sent it.
            self.in_flight += 1
            r.replica = rep.name
            r.dispatch_s = now
            self.seq += 1
            self.transit[r.idx] = (rep, self.seq)
            heapq.heappush(self.heap, (now + rep.overhead_s, _ARRIVAL, self.seq, "enter", r, self.seq))
            return True
        return self._enter(r, rep, now, counted=False)

    def _hold(self, r: SimRequest, now: float) -> bool:
        """Scale to zero: ``r`` waits at the router for a replica (cold start if none is coming)."""
        mq = self.adm.max_queue
        if mq is not None and len(self.held) >= mq:
            self._end(r, "rejected", "503 queue full", now, counted=False)
            return False
        self.held.append(r)
        self.in_flight += 1
        if self.provisioning == 0:
            self._scale_up(1, now, "cold_start")
        return True

    def _release_held(self, now: float) -> None:
        """Dispatch the router queue (arrival order) once a replica is ready."""
        held, self.held = self.held, deque()
        for r in held:
            if r.status:                    # timed out while waiting
                continue
            self.in_flight -= 1
            self.dispatch(r, now)

    def _scale_up(self, count: int, now: float, kind: str = "scale_up") -> None:
        a = self.cfg.autoscaler
        assert a is not None
        for _ in range(count):
            rep = self._new_replica(a.template, now, ready=False)
            self.provisioning += 1
            self.push(now + a.provisioning_delay_s + a.model_load_delay_s, _READY, "ready", rep)
            self.events.append((now, kind, rep.name))

    def _enter(self, r: SimRequest, rep: _Replica, now: float, *, counted: bool) -> bool:
        """Queue ``r`` in ``rep``'s engine at ``now``; ``counted``: already in flight."""
        eng = rep.engine
        if not eng.enqueue(r, now, checked=True):
            self._end(r, "rejected", "503 queue full", now, counted=counted)
            return False
        if eng.wake_s is not None:
            self._wake_at(rep)
        if not counted:
            self.in_flight += 1
        if not rep.busy:
            self._start(rep, now)
        elif eng.p_k > 1 and (eng.priority or (
                (eng.num_waiting == 1 or (eng.lora_open and eng.joins_past_lora_block(r)))
                and eng.B + len(eng.prefilling) < eng.cfg.max_num_seqs)):
            self._truncate(rep, now)
        return True

    def on_enter(self, r: SimRequest, token: int, now: float) -> None:
        """A request reaches its replica's engine after the per-request overhead."""
        ent = self.transit.get(r.idx)
        if ent is None or ent[1] != token:
            return                          # timed out, or its replica was killed, meanwhile
        del self.transit[r.idx]
        rep = ent[0]
        if rep.state == "dead":             # retired by a scale-down meanwhile: route again
            self.in_flight -= 1
            self.dispatch(r, now)
            return
        sent_s = r.dispatch_s
        if self._enter(r, rep, now, counted=True):
            r.dispatch_s = sent_s           # dispatch_s stays the router's decision time

    def _truncate(self, rep: _Replica, now: float) -> None:
        end = rep.engine.truncate(now)
        if end is not None:
            rep.version += 1
            self.push(end, _STEP, "step", rep, rep.version)

    # ------------------------------------------------------------------ events
    def on_step(self, rep: _Replica, version: int, now: float) -> None:
        if version != rep.version or rep.state == "dead":
            return
        fin = rep.engine.commit()
        if fin:
            done = 0
            for r in fin:
                if not r.status:
                    r.status = "ok"
                    done += 1
            self.in_flight -= done
        self._start(rep, now)

    def on_timeout(self, r: SimRequest, now: float) -> None:
        if r.status or r.state == DONE:
            return
        self._end(r, "timed_out", f"client timeout after {self.adm.client_timeout_s:g} s", now,
                  counted=True)
        if self.transit.pop(r.idx, None) is not None:
            return                          # never reached an engine
        rep = self._replica_of(r)
        if rep is not None:
            if rep.busy:
                self._truncate(rep, now)
            rep.engine.request_abort(r)

    def _replica_of(self, r: SimRequest) -> _Replica | None:
        for rep in self.replicas:
            if rep.name == r.replica and rep.state != "dead":
                return rep
        return None

    def on_fault(self, fault: Any, now: float) -> None:
        target = None
        for rep in self.replicas:
            if (rep.index == fault.replica if isinstance(fault.replica, int)
                    else rep.name == fault.replica):
                target = rep
        if target is None or target.state in ("dead", "provisioning"):
            self.events.append((now, "fault_ignored", str(fault.replica)))
            return
        was_ready = target in self.ready
        target.state = "dead"
        target.version += 1
        target.busy = False
        if was_ready:
            self.ready.remove(target)
        self.router.forget(target.name)
        self.events.append((now, "killed", target.name))
        victims = [r for r in target.engine.all_requests() if not r.status]
        victims += self._extra_victims(target, now)
        if self.transit:
            lost = [i for i, (x, _t) in self.transit.items() if x is target]
            for i in lost:
                del self.transit[i]
                if not self.all[i].status:
                    victims.append(self.all[i])
        for r in victims:
            if fault.in_flight == "retry":
                self.in_flight -= 1
                r.retries += 1
                r.reset()
                self.dispatch(r, now)
            else:
                self._end(r, "failed", f"replica {target.name} killed", now, counted=True)

    def _extra_victims(self, target: _Replica, now: float) -> list[SimRequest]:
        """Requests lost with ``target`` outside its engine (P/D transfers; none here)."""
        return []

    def on_xfer(self, r: SimRequest, token: int, now: float) -> None:
        """A KV transfer ended (disaggregated fleets only, :mod:`.pd_fleet`)."""

    def on_ready(self, rep: _Replica, now: float) -> None:
        self.provisioning -= 1
        if rep.state != "provisioning":
            return
        rep.state = "ready"
        self.ready.append(rep)
        self.events.append((now, "ready", rep.name))
        if self.held:
            self._release_held(now)

    def on_scale(self, now: float) -> None:
        a = self.cfg.autoscaler
        assert a is not None
        ready = self.ready
        cur = len(ready)
        desired, stable = self._recommend(self.recommendations, ready, now,
                                          max(a.min_replicas, 1 if self.held else 0))
        total = cur + self.provisioning
        if desired > total:
            self._scale_up(desired - total, now)
        elif stable < cur and self.provisioning == 0:
            self._drain(ready, cur - stable, now)

    def _drain(self, pool: list[_Replica], k: int, now: float) -> None:
        """Scale-down: the ``k`` highest-index replicas of ``pool`` stop taking requests;
        an idle one retires at once, a busy one when it has finished."""
        for rep in sorted(pool, key=lambda x: -x.index)[:k]:
            pool.remove(rep)
            rep.state = "draining"
            self.events.append((now, "scale_down", rep.name))
            if not rep.busy:
                self._retire(rep, now)

    def _recommend(self, recs: deque[tuple[float, int]], ready: list[_Replica], now: float,
                   idle: int) -> tuple[int, int]:
        """The Kubernetes HPA rule for one pool: (this poll's recommendation, the highest
        recommendation within the last ``cooldown_s``, the scale-down target). Desired =
        ceil(current * metric mean / target), unchanged while the ratio is within
        ``tolerance`` of 1; ``idle`` when no replica is ready; clamped to min..max."""
        a = self.cfg.autoscaler
        assert a is not None
        cur = len(ready)
        if cur:
            key = {"waiting": "waiting", "running": "running", "kv_usage": "kv_usage_perc"}[a.metric]
            ratio = sum(x.engine.stats(now)[key] for x in ready) / cur / a.target
            desired = cur if abs(ratio - 1.0) <= a.tolerance else math.ceil(cur * ratio - 1e-9)
        else:
            desired = idle
        desired = max(a.min_replicas, min(a.max_replicas, desired))
        while recs and recs[0][0] <= now - a.cooldown_s:
            recs.popleft()
        recs.append((now, desired))
        return desired, max(r for _t, r in recs)

    def on_sample(self, now: float) -> None:
        ts = self.ts
        ts["t_s"].append(now)
        tw = tr = 0
        kv = 0.0
        live = [x for x in self.replicas if x.state in ("ready", "draining")]
        for rep in live:
            s = rep.engine.stats(now if rep.busy else None)
            tw += s["waiting"]
            tr += s["running"]
            kv += s["kv_usage_perc"]
            pr = ts["per_replica"].setdefault(
                rep.name, {"t_s": [], "waiting": [], "running": [], "kv_usage": []})
            pr["t_s"].append(now)
            pr["waiting"].append(s["waiting"])
            pr["running"].append(s["running"])
            pr["kv_usage"].append(s["kv_usage_perc"])
        ts["waiting"].append(tw)
        ts["running"].append(tr)
        ts["kv_usage"].append(kv / len(live) if live else 0.0)
        ts["replicas"].append(len(self.ready))

    # ------------------------------------------------------------------ main loop
    def run(self, progress: Callable[[float], None] | None) -> float:
        cfg = self.cfg
        reqs = self.reqs
        n = len(reqs)
        horizon = reqs[-1].arrival_s if reqs else 0.0
        for f in cfg.faults:
            self.push(f.at_s, _FAULT, "fault", f)
        if cfg.autoscaler is not None:
            self.push(cfg.autoscaler.poll_interval_s, _SCALE, "scale")
        self.push(0.0, _SAMPLE, "sample")
        heap = self.heap
        pop = heapq.heappop
        arrive = self.arrive
        on_step = self.on_step
        i = 0
        now = 0.0
        count = 0
        while True:
            if i < n:
                spec = reqs[i]
                ta = spec.arrival_s
                if not heap:
                    now = ta
                    i += 1
                    arrive(spec, now)
                    continue
                h0 = heap[0]
                if ta < h0[0] or (ta == h0[0] and _ARRIVAL <= h0[1]):
                    now = ta
                    i += 1
                    arrive(spec, now)
                    continue
            elif not heap:
                break
            ev = pop(heap)
            now = ev[0]
            kind = ev[3]
            if kind == "step":
                on_step(ev[4], ev[5], now)
            elif kind == "timeout":
                self.on_timeout(ev[4], now)
            elif kind == "enter":
                self.on_enter(ev[4], ev[5], now)
            else:
                done = i >= n and self.in_flight == 0
                if kind == "sample":
                    self.on_sample(now)
                    if not done:
                        self.push(now + cfg.timeseries_interval_s, _SAMPLE, "sample")
                elif kind == "scale":
                    self.on_scale(now)
                    if not done:
                        self.push(now + cfg.autoscaler.poll_interval_s, _SCALE, "scale")  # type: ignore[union-attr]
                elif kind == "fault":
                    self.on_fault(ev[4], now)
                elif kind == "ready":
                    self.on_ready(ev[4], now)
                elif kind == "xfer":
                    self.on_xfer(ev[4], ev[5], now)
                elif kind == "wake":
                    self.on_wake(ev[4], now)
            count += 1
            if progress is not None and count & 4095 == 0 and horizon > 0:
                progress(min(1.0, now / horizon))
        self.now = now
        return now

    def records(self) -> list[RequestRecord]:
        return [record_of(r) for r in self.all]


def record_of(r: SimRequest) -> RequestRecord:
    """The record of a simulated request (final once ``r.status`` is set)."""
    status = r.status or "cancelled"
    ok = status == "ok"
    finish = r.finish_s if ok else r.end_s
    return RequestRecord(
        id=r.rid, arrival_s=r.arrival_s, input_tokens=r.input,
        output_tokens=r.target if ok else min(r.outputs, r.target),
        status=status, reason=r.reason or ("" if r.status else "simulation ended"),
        dispatch_s=r.dispatch_s, start_s=r.start_s,
        first_token_s=r.first_token_s if (ok or (r.first_token_s is not None and
                                                 r.first_token_s <= (finish or 0.0))) else None,
        finish_s=finish, token_times_s=r.token_times if ok else None,
        cached_tokens=r.cached_tokens, replica=r.replica if r.dispatch_s is not None else None,
        priority=r.priority, adapter=r.spec.adapter, retries=r.retries,
    )


def _jsonable(obj: Any) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if is_dataclass(obj) and not isinstance(obj, type):
        name = getattr(obj, "name", None)
        if type(obj).__name__ in ("ModelSpec", "GPU") and name:
            return name
        return {f.name: _jsonable(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return type(obj).__name__


def simulate(
    config: SimConfig,
    requests: Sequence[RequestSpec],
    *,
    progress: Callable[[float], None] | None = None,
    duration_s: float | None = None,
) -> SimResult:
    """Run the fleet over ``requests``; every request ends in exactly one record.

    ``duration_s`` (the window throughput is divided by, ``RunMeta.duration_s``) defaults
    to the makespan — run start to the end of the last request — which is what a load
    client measures (wall time to the last finish, as ``vllm bench serve`` does), so
    simulated and measured throughput compare like for like. Dividing by the arrival
    window instead would overstate the throughput of an overloaded fleet.
    """
    started = datetime.now(timezone.utc)
    if getattr(config, "disagg", None) is not None:
        from .pd_fleet import PDSim
        sim: _Sim = PDSim(config, requests)
    else:
        sim = _Sim(config, requests)
    last_event_s = sim.run(progress)
    end_s = None                            # the last request's end (0 with none)
    for r in sim.all:
        if not r.status:
            sim._end(r, "cancelled", "simulation ended", last_event_s, counted=False)
        t = r.finish_s if r.status == "ok" else r.end_s
        if t is not None and (end_s is None or t > end_s):
            end_s = t
    if end_s is None:
        end_s = 0.0
    if progress is not None:
        progress(1.0)
    window = duration_s if duration_s is not None else end_s
    meta = RunMeta(
        run_id=f"sim-{uuid.uuid4().hex[:12]}",
        kind="simulate",
        started_at=started.isoformat(),
        finished_at=datetime.now(timezone.utc).isoformat(),
        duration_s=window,
        complete=True,
        config=_jsonable(config),
        versions={"servelab": __version__, "python": platform.python_version()},
        host=platform.node(),
        gpu=None,
        notes="simulated",
    )
    stats = {rep.name: rep.engine.stats() for rep in sim.replicas}
    return SimResult(records=sim.records(), meta=meta, timeseries=sim.ts, duration_s=end_s,
                     events=sim.events, replica_stats=stats)
