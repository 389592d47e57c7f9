"""The fleet event loop with prefill and decode pools (the mechanism is described in
:mod:`.disagg`): a subclass of the aggregated fleet that sends a request through a
prefill replica, a KV transfer and a decode replica.

Events added: ``xfer`` (a transfer ends; priority of an arrival). A transfer is keyed by
the request's index with a token, so a cancelled one (fault, timeout) leaves a stale
event that is ignored.

Autoscaling (``SimConfig.autoscaler``): at every poll the prefill pool and the decode
pool are each scaled by the aggregated fleet's rule (:mod:`.cluster`, ``_Sim._recommend``),
with the same settings but their own replicas, metric mean, provisioning count and
recommendation window: ``desired = ceil(ready · mean(metric) / target)`` (unchanged within
``tolerance``) clamped to [min, max] per pool; scale-up at once, scale-down to the highest
recommendation of the last ``cooldown_s``. New
replicas copy their pool's spec (``template`` is not used). A draining replica retires
when idle and, for a prefill replica, when no KV of its is held for a transfer; a decode
replica, when no transfer is on its way to it. Scale to zero is not modelled here
(``min_replicas`` >= 1). Requests already queued at a replica stay there (no rebalancing).
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Sequence

from ..catalog.workloads import RequestSpec
from ..errors import ConfigError
from .cluster import _ARRIVAL, _READY, _Replica, _Sim
from .config import SimConfig
from .disagg import DisaggConfig, kv_bytes_per_token_of
from .request import WAITING, SimRequest

__all__ = ["PDSim"]


class PDSim(_Sim):
    def __init__(self, config: SimConfig, requests: Sequence[RequestSpec]) -> None:
        d: DisaggConfig = config.disagg  # type: ignore[assignment]
        n = len(config.replicas)
        if d.prefill >= n or d.decode >= n:
            raise ConfigError(f"disagg prefill={d.prefill}, decode={d.decode}: replicas has {n} entries")
        if n != 2:
            raise ConfigError(f"a disaggregated fleet has exactly two replica specs (prefill, decode), got {n}")
        if config.autoscaler is not None and config.autoscaler.min_replicas < 1:
            raise ConfigError("scale to zero is not modelled for a disaggregated fleet; autoscaler "
                              f"min_replicas must be >= 1, got {config.autoscaler.min_replicas}")
        super().__init__(config, requests)
        self.pool_index = {"prefill": d.prefill, "decode": d.decode}
        self.pool_prov = {"prefill": 0, "decode": 0}
        # per pool: (poll time, recommendation) within the scale-down window (cluster._Sim._recommend)
        self.pool_recs: dict[str, deque[tuple[float, int]]] = {"prefill": deque(), "decode": deque()}
        self.pspec = config.replicas[d.prefill]
        self.dspec = config.replicas[d.decode]
        self.dec: list[_Replica] = [x for x in self.ready if x.spec is self.dspec]
        self.ready = [x for x in self.ready if x.spec is self.pspec]
        for x in self.ready:
            x.engine.hold_kv = True             # prefill KV stays until the decode side has it
        tp_p = int(getattr(self.pspec.deployment, "tp", 1) or 1)
        tp_d = int(getattr(self.dspec.deployment, "tp", 1) or 1)
        self.x_lat = d.link.latency_s
        self.x_s_per_token = kv_bytes_per_token_of(d, self.pspec) / (d.link.bytes_per_s * min(tp_p, tp_d))
        self.max_x = d.max_transfers
        # transfers: request index -> (prefill replica, decode replica, token); queued ones
        # have token 0 and wait in their prefill replica's FIFO
        self.xfer: dict[int, tuple[_Replica, _Replica, int]] = {}
        self.x_active: dict[str, int] = {}
        self.x_queue: dict[str, deque[SimRequest]] = {}
        self.x_to: dict[str, int] = {}          # transfers heading to each decode replica

    # ------------------------------------------------------------------ prefill side
    def dispatch(self, r: SimRequest, now: float) -> bool:
        r.target = 1                            # the prefill replica computes the prompt only
        r.remote = False
        return super().dispatch(r, now)

    def on_step(self, rep: _Replica, version: int, now: float) -> None:
        if rep.spec is not self.pspec:
            super().on_step(rep, version, now)
            return
        if version != rep.version or rep.state == "dead":
            return
        for r in rep.engine.commit():
            if not r.status:
                self._send(r, rep, now)
            else:                               # timed out during its last prefill step
                rep.engine.release_kv(r)
        self._start(rep, now)

    # ------------------------------------------------------------------ transfer
    def _free_source(self, r: SimRequest, src: _Replica, now: float) -> None:
        """The prefill replica lets go of ``r``'s KV; an idle one may now admit more."""
        if src.state != "dead" and src.engine.release_kv(r) and not src.busy:
            self._start(src, now)

    def _send(self, r: SimRequest, src: _Replica, now: float) -> None:
        live = [x for x in self.dec if x.state == "ready"]
        if not live:
            self._free_source(r, src, now)
            self._end(r, "failed", "503 no ready decode replica", now, counted=True)
            return
        dst = min(live, key=lambda x: (x.engine.outstanding() + self.x_to.get(x.name, 0), x.index))
        r.target = max(1, r.spec.output_tokens)
        why = dst.engine.fits(r.spec)
        if why:
            self._free_source(r, src, now)
            self._end(r, "failed", why, now, counted=True)
            return
        r.state = WAITING                       # in flight between replicas
        self.x_to[dst.name] = self.x_to.get(dst.name, 0) + 1
        if self.x_active.get(src.name, 0) < self.max_x:
            self._begin_transfer(r, src, dst, now)
        else:
            self.xfer[r.idx] = (src, dst, 0)
            self.x_queue.setdefault(src.name, deque()).append(r)

    def _begin_transfer(self, r: SimRequest, src: _Replica, dst: _Replica, now: float) -> None:
        self.x_active[src.name] = self.x_active.get(src.name, 0) + 1
        self.seq += 1
        self.xfer[r.idx] = (src, dst, self.seq)
        end = now + self.x_lat + self.x_s_per_token * r.input
        heapq.heappush(self.heap, (end, _ARRIVAL, self.seq, "xfer", r, self.seq))

    def _next_transfer(self, src: _Replica, now: float) -> None:
        self.x_active[src.name] -= 1
        q = self.x_queue.get(src.name)
        while q and self.x_active[src.name] < self.max_x:
            r = q.popleft()
            ent = self.xfer.get(r.idx)
            if ent is None or ent[2] != 0 or r.status:
                continue                        # cancelled while queued
            self._begin_transfer(r, ent[0], ent[1], now)

    def _drop_transfer(self, r: SimRequest, now: float) -> None:
        ent = self.xfer.pop(r.idx, None)
        if ent is None:
            return
        src, dst, token = ent
        self.x_to[dst.name] -= 1
        self._free_source(r, src, now)
        if token and src.state != "dead":
            self._next_transfer(src, now)
        if dst.state == "draining" and not dst.busy:
            self._start(dst, now)               # retires it if that was its last inbound transfer

    def on_xfer(self, r: SimRequest, token: int, now: float) -> None:
        ent = self.xfer.get(r.idx)
        if ent is None or ent[2] != token:
            return
        src, dst, _t = ent
        del self.xfer[r.idx]
        self.x_to[dst.name] -= 1
        self._free_source(r, src, now)
        if src.state != "dead":
            self._next_transfer(src, now)
        # the decode replica takes the request with the prompt's KV present
        start_s, cached, sent_s = r.start_s, r.cached_tokens, r.dispatch_s
        r.outputs = r.computed = r.registered = r.share_upto = 0
        r.prompt_len = r.input
        r.shared = []
        r.first_token_s = r.finish_s = None
        r.remote = True
        if self._enter(r, dst, now, counted=True):
            r.dispatch_s = sent_s
        r.start_s, r.cached_tokens = start_s, cached

    # ------------------------------------------------------------------ faults, timeouts
    def _extra_victims(self, target: _Replica, now: float) -> list[SimRequest]:
        if target in self.dec:
            self.dec.remove(target)
        out = []
        for i, (src, dst, _t) in list(self.xfer.items()):
            if src is target or dst is target:
                r = self.all[i]
                self._drop_transfer(r, now)
                if not r.status:
                    out.append(r)
        return out

    def on_timeout(self, r: SimRequest, now: float) -> None:
        if r.idx in self.xfer and not r.status:
            self._end(r, "timed_out", f"client timeout after {self.adm.client_timeout_s:g} s", now,
                      counted=True)
            self._drop_transfer(r, now)
            return
        super().on_timeout(r, now)

    # ------------------------------------------------------------------ autoscaling
    def _pool(self, name: str) -> list[_Replica]:
        return self.ready if name == "prefill" else self.dec

    def on_scale(self, now: float) -> None:
        a = self.cfg.autoscaler
        assert a is not None
        for name in ("prefill", "decode"):
            live = self._pool(name)
            cur = len(live)
            desired, stable = self._recommend(self.pool_recs[name], live, now, a.min_replicas)
            total = cur + self.pool_prov[name]
            if desired > total:
                for _ in range(desired - total):
                    rep = self._new_replica(self.pool_index[name], now, ready=False)
                    self.pool_prov[name] += 1
                    self.push(now + a.provisioning_delay_s + a.model_load_delay_s, _READY, "ready", rep)
                    self.events.append((now, "scale_up", rep.name))
            elif stable < cur and self.pool_prov[name] == 0:
                self._drain(live, cur - stable, now)

    def on_ready(self, rep: _Replica, now: float) -> None:
        name = "decode" if rep.spec is self.dspec else "prefill"
        self.pool_prov[name] -= 1
        if rep.state != "provisioning":
            return
        rep.state = "ready"
        if name == "prefill":
            rep.engine.hold_kv = True
        self._pool(name).append(rep)
        self.events.append((now, "ready", rep.name))

    def on_sample(self, now: float) -> None:
        super().on_sample(now)
        self.ts["replicas"][-1] += len(self.dec)  # ready replicas of both pools

    def _retire(self, rep: _Replica, now: float) -> None:
        if rep.engine.held_kv or self.x_to.get(rep.name, 0):
            return                              # KV still leaving or arriving; retried then
        super()._retire(rep, now)
