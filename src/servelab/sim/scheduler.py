"""One replica's continuous-batching scheduler, after vLLM's v1 scheduler.

Each engine step (vLLM ``Scheduler.schedule``):
1. Token budget ``max_num_batched_tokens``. Decoding sequences come first, one
   token each; their new KV blocks are allocated. If blocks run out, the newest
   running request (or, with the priority policy, the lowest-priority newest one)
   is preempted by recompute: its blocks are freed (full ones stay cached) and it
   goes back to the front of the waiting queue with everything it generated so far
   as its new prompt.
2. Running requests still prefilling get ``min(remaining, budget)`` tokens (chunked).
3. If nothing was preempted this step, waiting requests are admitted in FCFS
   (or priority) order while budget, ``max_num_seqs`` and KV blocks allow; a prefix
   cache lookup gives their cached tokens; the rest is prefilled in chunks. Without
   chunked prefill a prompt that does not fit the remaining budget waits.
   Multi-LoRA (``max_loras > 0``): a request whose adapter is not resident needs a
   free slot (an idle adapter is evicted, LRU); if every slot is held by running
   requests it is passed over, keeps its place, and later requests whose adapters
   are running are admitted (vLLM v1 ``Scheduler.schedule``: with ``max_loras``
   distinct adapters scheduled, a waiting request for another one goes to
   ``skipped_waiting_requests``, which are put back at the head of the queue in order
   after the pass). Nothing bounds how often a request is passed over (vLLM has no
   aging here either): a slot free at a step boundary goes to the first request in
   queue order that needs one, so never to a later request while it waits, but while
   the running requests keep every slot busy it waits however long that is. Loading adds ``lora_load_s`` to that step (vLLM's worker activates the batch's
   adapters before its forward pass: ``LRUCacheWorkerLoRAManager``).
   Prefix blocks found in an offload tier (:mod:`.kv`) are loaded back instead of
   recomputed; their load time (:meth:`Scheduler._load_s`) is added to the step that
   admits the request, like the LoRA load.
4. A request whose prefill completes emits its first token at the end of the step;
   each decode step emits one token per decoding sequence.

Decoding sequences are kept in aggregate: their number ``B``, the sum of their
contexts ``C``, a histogram of ``(context - step) mod block_size`` (which step
each one needs its next block on) and a heap of the step index at which each
finishes. A sequence's own counters are brought up to date only when it leaves.
How time advances (one step, or a stretch of decode steps) is :mod:`.engine`.

Units: tokens, blocks.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque

from ..catalog.workloads import RequestSpec
from .config import SchedulerConfig
from .kv import BlockPool, chain_hashes
from .tier_sched import TierScheduling
from .tiering import restore_s
from .request import ABORTED, DECODE, DONE, PREFILL, WAITING, SimRequest

__all__ = ["Scheduler"]


class Scheduler(TierScheduling):
    """Queues, KV cache and batch composition of one replica (no notion of time)."""

    def __init__(self, scheduler: SchedulerConfig, num_blocks: int, *, name: str,
                 record_token_times: bool, priority_preemption: bool, chains: dict | None) -> None:
        self.name = name
        self.cfg = scheduler
        self.bs = scheduler.block_size
        tiers = scheduler.offload_tiers()
        self._init_tiers(scheduler, int(num_blocks), tiers)
        # P/D prefill side: finished requests keep their KV blocks until release_kv (the
        # decode side has read them); set by the disaggregated fleet
        self.hold_kv = False
        self.held_kv: dict[int, SimRequest] = {}
        self.fit_tokens = self.pool.num_blocks * self.bs
        # plain LRU pool: a release with no shared blocks only returns private blocks
        self.plain_pool = type(self.pool) is BlockPool
        self.tier_cost = [(t.load_s_per_block, t.latency_s) for t in tiers]
        self.tier_names = [t.name for t in tiers]
        self.record_times = record_token_times
        self.priority = scheduler.scheduling_policy == "priority" or priority_preemption
        self.priority_preemption = priority_preemption
        self.chains: dict = chains if chains is not None else {}
        # waiting queue: deque (fcfs) or heap of (priority, arrival, seq, req)
        self.waiting_q: deque[SimRequest] = deque()
        self.waiting_h: list[tuple[int, float, int, SimRequest]] = []
        self.num_waiting = 0
        self.prefilling: list[SimRequest] = []
        self.decoding: dict[str, SimRequest] = {}
        self.S = 0                     # steps taken
        self.B = 0                     # decoding sequences
        self.C = 0                     # sum of their contexts (tokens in KV)
        self.cnt = [0] * self.bs       # decoders by (context - S) mod block_size
        self.fin_heap: list[tuple[int, int, SimRequest]] = []
        self.times: list[float] = [0.0]  # end time of step s (only with record_token_times)
        self._seq = 0
        self.num_preempted = 0
        self.pending_aborts: list[SimRequest] = []
        self.lora: OrderedDict[str, int] = OrderedDict()   # resident adapter -> running users
        self.lora_loads = 0
        self.lora_open = False           # last admission pass ended with only adapter-blocked waiting
        self.p_extra_s = 0.0             # adapter and host-KV loads of the step being scheduled
        self.p_t = 0.0                   # start of the step being scheduled
        self.active = False              # a step is in flight (set by the engine)
        self.p_preempted = False
        self.last_preempted: list[SimRequest] = []

    # ------------------------------------------------------------------ queue
    def fits(self, spec: RequestSpec) -> str:
        """'' if the request can ever run here, else the reason (as a 400 error)."""
        out = spec.output_tokens
        total = spec.input_tokens + (out if out > 1 else 1)
        if total > self.fit_tokens:            # = ceil(total / block_size) > num_blocks
            return f"400 request needs {total} tokens of KV; replica holds {self.pool.num_blocks * self.bs}"
        if not self.cfg.enable_chunked_prefill and total > self.cfg.max_num_batched_tokens:
            return (f"400 prompt of {total} tokens exceeds max_num_batched_tokens "
                    f"{self.cfg.max_num_batched_tokens} without chunked prefill")
        return ""

    def add(self, req: RequestSpec, now_s: float) -> bool:
        """Queue a request; False when the waiting queue is full (503) or it can never fit
        (check :meth:`fits` first to tell a 400 from a 503)."""
        r = SimRequest(req, self._next_seq())
        if self.record_times:
            r.token_times = []
        return self.enqueue(r, now_s)

    def enqueue(self, r: SimRequest, now_s: float, *, checked: bool = False) -> bool:
        """Queue a simulator request; ``checked``: the caller already called :meth:`fits`."""
        mw = self.cfg.max_waiting
        if (mw is not None and self.num_waiting >= mw) or (not checked and self.fits(r.spec)):
            return False
        r.state = WAITING
        r.replica = self.name
        r.dispatch_s = now_s
        if self.pf_on:
            self._prefetch(r, now_s)
            if self.pf_wait and r.pf is not None:
                self.pf_hold.append(r)            # waits outside the queue for its prefetch
                self.num_waiting += 1
                t_data, per, n, stop = r.pf
                ready = min(t_data + n * per, stop)
                if self.wake_s is None or ready < self.wake_s:
                    self.wake_s = ready
                return True
        if self.priority:
            self._wpush(r, front=False)
        else:
            self.num_waiting += 1
            self.waiting_q.append(r)
        return True

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _wpush(self, r: SimRequest, *, front: bool) -> None:
        self.num_waiting += 1
        if self.priority:
            heapq.heappush(self.waiting_h, (r.priority, r.arrival_s, self._next_seq(), r))
        elif front:
            self.waiting_q.appendleft(r)
        else:
            self.waiting_q.append(r)

    def _wpeek(self) -> SimRequest | None:
        if self.priority:
            h = self.waiting_h
            while h and h[0][3].state != WAITING:
                heapq.heappop(h)
            return h[0][3] if h else None
        q = self.waiting_q
        while q and q[0].state != WAITING:
            q.popleft()
        return q[0] if q else None

    def joins_past_lora_block(self, r: SimRequest) -> bool:
        """True when the last admission pass left only adapter-blocked requests waiting
        and ``r`` (just queued behind them) needs no slot: it would be admitted at the
        next step boundary, so a decode stretch in flight must be cut there."""
        ad = r.spec.adapter
        return self.lora_open and (ad is None or self.lora.get(ad, 0) > 0)

    def _wskip(self, skipped: list) -> None:
        """Pass over the head of the waiting queue (it keeps its count and, through
        :meth:`_wrestore`, its place)."""
        skipped.append(heapq.heappop(self.waiting_h) if self.priority else self.waiting_q.popleft())

    def _wrestore(self, skipped: list) -> None:
        """Put requests passed over by :meth:`_wskip` back at the head, in order."""
        if self.priority:
            for e in skipped:
                heapq.heappush(self.waiting_h, e)
        else:
            self.waiting_q.extendleft(reversed(skipped))

    def _wpop(self) -> None:
        self.num_waiting -= 1
        if self.priority:
            heapq.heappop(self.waiting_h)
        else:
            self.waiting_q.popleft()

    @property
    def has_work(self) -> bool:
        return bool(self.num_waiting or self.prefilling or self.B)

    def outstanding(self) -> int:
        return self.num_waiting + len(self.prefilling) + self.B

    def all_requests(self) -> list[SimRequest]:
        """Every request waiting or running here (for faults)."""
        out = [r for r in self.waiting_q if r.state == WAITING]
        out += [e[3] for e in self.waiting_h if e[3].state == WAITING]
        out += [r for r in self.pf_hold if r.state == WAITING]
        return out + self.prefilling + list(self.decoding.values())

    # ------------------------------------------------------------------ KV helpers
    def _chain(self, r: SimRequest, nblocks: int) -> list[int]:
        s = r.spec
        if r.recompute or s.conversation >= 0:
            key = ("c", s.conversation) if (s.conversation >= 0 and not r.recompute) else None
            base = self.chains.get(key, r.chain) if key else r.chain
            if len(base) < nblocks:
                base = chain_hashes(nblocks, self.bs, prefix_group=s.prefix_group,
                                    prefix_tokens=s.prefix_tokens, conversation=s.conversation,
                                    own=r.idx, start=base)
                if key:
                    self.chains[key] = base
                else:
                    r.chain = base
            return base
        if s.prefix_group >= 0:
            nb = min(nblocks, s.prefix_tokens // self.bs)
            key = ("g", s.prefix_group)
            base = self.chains.get(key, ())
            if len(base) < nb:
                base = chain_hashes(nb, self.bs, prefix_group=s.prefix_group,
                                    prefix_tokens=s.prefix_tokens, conversation=-1, own=0,
                                    start=base)
                self.chains[key] = base
            return base
        return []

    def _register(self, r: SimRequest) -> None:
        """Cache the request's newly computed full shareable blocks."""
        upto = min(r.share_upto, r.computed // self.bs)
        if upto <= r.registered:
            return
        chain = self._chain(r, upto)
        pool = self.pool
        shared = r.shared
        for b in range(r.registered, upto):
            if pool.register(chain[b]):
                shared.append(chain[b])
        r.registered = upto

    def _release(self, r: SimRequest, *, keep_own: bool) -> None:
        """Free a request's blocks; with ``keep_own`` its full blocks stay cached first."""
        if self.cfg.enable_prefix_caching and keep_own:
            r.share_upto = r.computed // self.bs
            self._register(r)
        nblocks = -(-r.computed // self.bs)
        shared = r.shared
        if shared or not self.plain_pool:
            self.pool.release(shared, nblocks - len(shared), r.priority)
            r.shared = []
        else:
            self.pool.free_uncached += nblocks   # BlockPool.release of private blocks only
        r.registered = 0
        ad = r.spec.adapter
        if ad is not None and self.cfg.max_loras:
            self.lora[ad] -= 1

    # ------------------------------------------------------------------ decoders
    def _join_decode(self, r: SimRequest) -> None:
        r.state = DECODE
        r.sync = self.S
        r.ctx_join = r.computed
        r.out_join = r.outputs
        self.decoding[r.rid] = r
        self.B += 1
        self.C += r.computed
        self.cnt[(r.computed - self.S) % self.bs] += 1
        fin = self.S + r.target - r.outputs
        r.fin_s_idx = fin
        heapq.heappush(self.fin_heap, (fin, r.idx, r))

    def _leave_decode(self, r: SimRequest) -> None:
        m = self.S - r.sync
        r.outputs = r.out_join + m
        r.computed = r.ctx_join + m
        if r.token_times is not None and m:
            r.token_times.extend(self.times[r.sync + 1:self.S + 1])
        del self.decoding[r.rid]
        self.B -= 1
        self.C -= r.computed
        self.cnt[(r.ctx_join - r.sync) % self.bs] -= 1

    def _need(self, s_start: int, m: int) -> int:
        """Blocks the decoders need over the m steps starting at step index s_start."""
        if m <= 0:
            return 0
        bs = self.bs
        full, rem = divmod(m, bs)
        total = full * self.B
        cnt = self.cnt
        for i in range(rem):
            total += cnt[(-(s_start + i)) % bs]
        return total

    # ------------------------------------------------------------------ preemption
    def _victim(self) -> SimRequest | None:
        cands: list[SimRequest] = []
        if self.prefilling:
            cands.append(max(self.prefilling, key=self._vkey))
        if self.decoding:
            cands.append(max(self.decoding.values(), key=self._vkey))
        return max(cands, key=self._vkey) if cands else None

    def _vkey(self, r: SimRequest) -> tuple[int, int]:
        return (r.priority, r.admit_seq) if self.priority else (0, r.admit_seq)

    def _preempt(self, r: SimRequest) -> None:
        if r.state == DECODE:
            self._leave_decode(r)
        else:
            self.prefilling.remove(r)
        r.recompute = True
        r.remote = False                 # P/D: its KV is gone; recompute the prompt here
        self._release(r, keep_own=True)
        r.computed = 0
        r.prompt_len = r.input + r.outputs
        r.recompute = True
        r.state = WAITING
        self.num_preempted += 1
        self.last_preempted.append(r)
        self._wpush(r, front=True)

    # ------------------------------------------------------------------ scheduling
    def _schedule(self) -> list[tuple[SimRequest, int]]:
        """One vLLM scheduling pass; returns the prefill chunks (decoders are implicit)."""
        pool = self.pool
        bs = self.bs
        budget = self.cfg.max_num_batched_tokens
        preempted = False
        if self.last_preempted:
            self.last_preempted = []
        self.p_extra_s = 0.0
        if self.priority_preemption:
            self._priority_pass()
        # 1. decoders, one token each
        if self.B:
            need = self.cnt[(-self.S) % bs]
            if need and self.plain_pool and need <= pool.free_uncached:
                pool.free_uncached -= need        # BlockPool.allocate from uncached blocks, inline
            elif need:
                while need > (pool.free_uncached + len(pool.evictable) if self.kv_policy is None
                               else pool.num_free()):
                    v = self._victim()
                    if v is None:
                        break
                    self._preempt(v)
                    preempted = True
                    need = self.cnt[(-self.S) % bs]
                if need:
                    pool.allocate(need)
            budget -= self.B
        # 2. running prefills (victims only among the not-yet-scheduled, newest first)
        chunks: list[tuple[SimRequest, int]] = []
        if not self.prefilling and not self.num_waiting:
            self.p_preempted = preempted
            return chunks
        i = 0
        while i < len(self.prefilling) and budget > 0:
            r = self.prefilling[i]
            n = min(r.prompt_len - r.computed, budget)
            want = -(-(r.computed + n) // bs) - (-(-r.computed // bs))
            ok = True
            while not pool.allocate(want):
                v = max(self.prefilling[i:], key=self._vkey)
                preempted = True
                self._preempt(v)
                if v is r:
                    ok = False
                    break
            if not ok:
                break
            chunks.append((r, n))
            budget -= n
            i += 1
        # 3. waiting
        if self.pf_hold:
            self._pf_release(self.p_t)
        self.lora_open = False
        if not preempted and self.num_waiting:
            self._admit(chunks, budget)
        self.p_preempted = preempted
        return chunks

    def _admit(self, chunks: list[tuple[SimRequest, int]], budget: int) -> None:
        cfg = self.cfg
        pool = self.pool
        bs = self.bs
        max_seqs = cfg.max_num_seqs
        caching = cfg.enable_prefix_caching
        lora = self.lora
        max_loras = cfg.max_loras
        # every adapter slot held by running requests (changes in this pass only when an
        # idle or new adapter starts running)
        slots_full = bool(max_loras) and len(lora) >= max_loras and 0 not in lora.values()
        skipped: list = []
        while budget > 0:
            r = self._wpeek()
            if r is None:
                self.lora_open = bool(skipped)
                break
            if len(self.prefilling) + self.B >= max_seqs:
                break
            ad = r.spec.adapter if max_loras else None
            load = ad is not None and ad not in lora
            if load and slots_full:
                self._wskip(skipped)      # passed over, as vLLM does (module docstring)
                continue
            L = r.prompt_len
            hits = landed = 0
            loaded: list[int] = []
            where: list[int] = []
            if caching and not r.remote:
                s = r.spec
                if r.recompute or s.conversation >= 0 or s.prefix_group >= 0:
                    look = (L - 1) // bs
                    chain = self._chain(r, look)
                    hits = pool.match(chain, look)
                    if hits:
                        pool.acquire(chain[:hits])
                        r.shared = list(chain[:hits])
                    if pool.tiered and hits < look:
                        where = pool.match_tiers(chain, hits, look)
                        if where:
                            loaded = chain[hits:hits + len(where)]
                            pool.take_tiers(loaded, where)
                            if self.kv_policy is not None:
                                where, loaded, landed = self._policy_restore(r, hits, where, loaded, L)
                    r.share_upto = (L // bs if (r.recompute or s.conversation >= 0)
                                    else s.prefix_tokens // bs)
                    r.registered = hits + len(loaded)
            done = (hits + len(loaded)) * bs if not r.remote else L - 1
            n = L - done
            if n > budget:
                if not cfg.enable_chunked_prefill:
                    self._undo_hits(r, loaded, where)
                    break
                n = budget
            want = -(-(done + n) // bs) - hits
            if not pool.allocate(want):
                self._undo_hits(r, loaded, where)
                break
            if self.priority:
                self._wpop()
            else:                         # _wpop of the FCFS deque, inline
                self.num_waiting -= 1
                self.waiting_q.popleft()
            if loaded:
                pool.load_tiers(loaded, where, bs)
                r.shared.extend(loaded)
                if landed:
                    self.p_extra_s += restore_s(where, self.tier_cost, None, landed)
                    self.pf_landed += landed
                else:
                    self.p_extra_s += self._load_s(where)
            if ad is not None:
                if load:
                    if len(lora) >= max_loras:
                        del lora[next(a for a, c in lora.items() if c == 0)]
                    lora[ad] = 0
                    self.lora_loads += 1
                    self.p_extra_s += cfg.lora_load_s
                lora[ad] += 1
                lora.move_to_end(ad)
                if lora[ad] == 1:         # an idle or new adapter now runs
                    slots_full = len(lora) >= max_loras and 0 not in lora.values()
            if caching and not r.remote:
                pool.query_tokens += L
                pool.hit_tokens += hits * bs
            r.state = PREFILL
            r.computed = done
            self._seq += 1                # _next_seq()
            r.admit_seq = self._seq
            if r.pf is not None:
                r.pf = None
            if r.start_s is None:
                r.cached_tokens = done
                r.start_s = self.p_t
            self.prefilling.append(r)
            chunks.append((r, n))
            budget -= n
        if skipped:
            self._wrestore(skipped)

    def _load_s(self, where: list[int]) -> float:
        """Time to bring blocks back from their tiers: Σ over tiers touched of
        latency + blocks · block_bytes / read_bytes_per_s (tiers load one after another)."""
        cost = self.tier_cost
        counts = [0] * len(cost)
        for i in where:
            counts[i] += 1
        return sum(lat + n * per for (per, lat), n in zip(cost, counts) if n)

    def _undo_hits(self, r: SimRequest, loaded: list[int], where: list[int]) -> None:
        if loaded:
            self.pool.untake_tiers(loaded, where)
        if r.shared:
            self.pool.release(r.shared, 0)
            r.shared = []
        r.registered = 0

    def _priority_pass(self) -> None:
        """Priority preemption: while the best waiting request is blocked by a full batch or
        by KV space, evict strictly lower-priority running requests (newest first)."""
        while True:
            r = self._wpeek()
            if r is None:
                return
            full = len(self.prefilling) + self.B >= self.cfg.max_num_seqs
            short = -(-r.prompt_len // self.bs) > self.pool.num_free()
            if not (full or short):
                return
            v = self._victim()
            if v is None or v.priority <= r.priority:
                return
            self._preempt(v)

    def _finish(self, r: SimRequest, t: float) -> None:
        r.state = DONE
        r.finish_s = t
        if r.spec.conversation >= 0 and self.cfg.enable_prefix_caching:
            r.share_upto = r.computed // self.bs
            self._register(r)
        if self.hold_kv:
            self.held_kv[r.idx] = r
            return
        self._release(r, keep_own=False)

    def release_kv(self, r: SimRequest) -> bool:
        """Free the blocks of a finished request held for a KV transfer (``hold_kv``)."""
        if self.held_kv.pop(r.idx, None) is None:
            return False
        self._release(r, keep_own=False)
        return True

    # ------------------------------------------------------------------ aborts
    def request_abort(self, r: SimRequest) -> None:
        """Drop ``r`` at the next step boundary (now, if no step is in flight)."""
        if r.state == WAITING:
            r.state = ABORTED
            self.num_waiting -= 1
            return
        if r.state in (PREFILL, DECODE):
            self.pending_aborts.append(r)
            if not self.active:
                self._apply_aborts()

    def _apply_aborts(self) -> None:
        if not self.pending_aborts:
            return
        for r in self.pending_aborts:
            if r.state == DECODE:
                self._leave_decode(r)
            elif r.state == PREFILL:
                self.prefilling.remove(r)
            else:
                continue
            self._release(r, keep_own=False)
            r.state = ABORTED
        self.pending_aborts = []

    def abort(self, request_id: str) -> bool:
        """Abort a request by id between steps; False if it is not here."""
        r = self.decoding.get(request_id)
        if r is None:
            r = next((x for x in self.all_requests() if x.rid == request_id), None)
        if r is None:
            return False
        self.request_abort(r)
        return True
