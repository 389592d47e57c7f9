"""An OpenAI-compatible server whose token timing comes from the simulator's engine.

What it emulates: one vLLM-like replica. Requests go into ``sim.ReplicaEngine``
(continuous batching, token budget, chunked prefill, paged KV cache with prefix
caching, preemption, bounded waiting queue); a driver coroutine runs the engine step
by step in real time — each step's modelled duration (``perf.StepModel``) is slept,
divided by ``speedup`` — and streams each request's new tokens as the step ends.
While the engine has work, modelled time is continuous: a step starts where the last
one ended, so the time the host spends between steps (sleep overshoot, writing
chunks) delays delivery but does not slow the emulated engine; when it is idle it
resumes at the wall clock.

Timing parameters: the deployment runs under an engine profile (``EmulatorConfig.engine``,
default ``vllm``, :mod:`servelab.perf.engines`): its efficiencies (kernel fractions of
peak plus vLLM's fitted per-step overhead) and KV memory rule. A non-zero
``request_overhead_s`` delays each request's entry into the engine by that much
(divided by ``speedup``), so it appears in TTFT and E2E (0 in the shipped profiles).

Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/completions``,
``POST /v1/chat/completions`` (streaming SSE with ``stream_options.include_usage``,
and non-streaming), ``GET /metrics`` (Prometheus text, vLLM's names, label
``model_name``): gauges ``vllm:num_requests_running``, ``vllm:num_requests_waiting``,
``vllm:kv_cache_usage_perc`` (0–1, as vLLM V1); counters ``vllm:prompt_tokens_total``,
``vllm:generation_tokens_total``, ``vllm:num_preemptions_total``; histograms
``vllm:time_to_first_token_seconds``, ``vllm:inter_token_latency_seconds``,
``vllm:time_per_output_token_seconds``, ``vllm:e2e_request_latency_seconds``,
``vllm:request_queue_time_seconds`` (wall-clock seconds as served).

Errors (OpenAI error body ``{"error": {"message", "type", "param", "code"}}``):
bad JSON or any malformed field (:mod:`.requests` checks the whole body before the
engine sees it) → 400 ``invalid_request_error``; prompt + max_tokens beyond the
model's context (``ModelSpec.max_context``) or the replica's KV capacity → 400;
waiting queue full (``max_queue``) → 503; body larger than the limit → 413; head or
body not received in time → 408; too many open connections → 503 (limits and
timeouts: :class:`._guard.ServerLimits`). A client that disconnects — streaming or
not — aborts its request in the engine. Binds 127.0.0.1 unless told otherwise.

Tokenizer: prompt tokens = whitespace-separated words of the prompt (chat: of all
message contents) — deterministic and dependency-free, not the model's tokenizer.
Generated text: the word ``" tok"`` per token. ``ignore_eos`` is accepted; every
request produces exactly ``max_tokens`` tokens (no EOS is modelled).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..catalog.workloads import RequestSpec
from ._guard import GuardedFactory, ServerLimits
from .requests import BadRequest, parse_request

__all__ = ["EmulatorConfig", "Emulator", "ServerLimits", "count_prompt_tokens"]

# Bucket bounds of vLLM's histograms (vllm/v1/metrics/loggers.py, v0.8–0.10; quoted
# from memory of that file, flagged "verify").
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
_ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                10.0, 20.0, 40.0, 80.0)
_E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)


def count_prompt_tokens(text: str) -> int:
    """The emulator's tokenizer: whitespace-separated words."""
    return len(text.split())


@dataclass(frozen=True, kw_only=True)
class EmulatorConfig:
    model: str = "llama-3.1-8b"
    gpu: str = "h100-sxm"
    tp: int = 1
    speedup: float = 1.0
    max_queue: int | None = None
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    served_model_name: str | None = None
    engine: str = "vllm"       # engine profile (servelab.perf.engines): efficiencies, KV rule
    # The whole deployment as a servelab.scenario.Scenario (model, GPU, parallelism, dtypes,
    # engine knobs, LoRA, speculative decoding, KV tiers, calibration). When given, it
    # replaces model/gpu/tp/max_queue/max_num_seqs/max_num_batched_tokens/engine above.
    scenario: Any = None

    def to_scenario(self) -> Any:
        """The scenario this emulator serves (``scenario``, else one from the fields above)."""
        if self.scenario is not None:
            return self.scenario
        from ..scenario import resolve

        return resolve({"model": self.model, "gpu": self.gpu, "tp": self.tp,
                        "engine": {"profile": self.engine, "max_num_seqs": self.max_num_seqs,
                                   "max_num_batched_tokens": self.max_num_batched_tokens,
                                   "max_queue": self.max_queue}}, source="(emulator config)")


def _error(status: int, message: str, etype: str, param: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": etype, "param": param, "code": status}},
                             status=status)


class _Req:
    __slots__ = ("id", "queue", "t_arrive", "t_first", "t_last", "n_out", "max_tokens")

    def __init__(self, rid: str, max_tokens: int) -> None:
        self.id = rid
        self.queue: asyncio.Queue[int | None] = asyncio.Queue()
        self.t_arrive = time.perf_counter()
        self.t_first = 0.0
        self.t_last = 0.0
        self.n_out = 0
        self.max_tokens = max_tokens


class Emulator:
    """Build with a config (or a ready engine for tests), then ``await start(host, port)``."""

    def __init__(self, config: EmulatorConfig = EmulatorConfig(), *, engine: Any = None,
                 max_context: int | None = None, limits: ServerLimits = ServerLimits(),
                 clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        # clock [s] and sleep: the wall clock and asyncio's sleep; tests pass a virtual pair.
        self._clock = clock
        self._sleep = sleep
        self.config = config
        self.limits = limits
        self._factory: GuardedFactory | None = None
        self._server: asyncio.AbstractServer | None = None
        sc = config.to_scenario() if engine is None else None
        self.name = config.served_model_name or (sc.model if sc is not None else config.model)
        self.request_overhead_s = 0.0
        if engine is None:
            from ..scenario import build
            from ..sim import ReplicaEngine
            dep = build.deployment(sc)
            self.request_overhead_s = dep.efficiency.request_overhead_s
            engine = ReplicaEngine(dep, build.replica_settings(sc, dep))
            max_context = max_context or getattr(dep.model, "max_context", None)
        self.engine = engine
        self.max_context = max_context
        self.reqs: dict[str, _Req] = {}
        self._ids = itertools.count()
        self._wake = asyncio.Event()
        self._t0 = self._clock()
        self._sim_now = 0.0
        self._driver: asyncio.Task | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        reg = self.registry = CollectorRegistry()
        lbl = ["model_name"]
        self.g_running = Gauge("vllm:num_requests_running", "Requests in model execution batches.", lbl, registry=reg)
        self.g_waiting = Gauge("vllm:num_requests_waiting", "Requests waiting to be processed.", lbl, registry=reg)
        self.g_kv = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", lbl, registry=reg)
        self.c_prompt = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", lbl, registry=reg)
        self.c_gen = Counter("vllm:generation_tokens", "Number of generation tokens processed.", lbl, registry=reg)
        self.c_preempt = Counter("vllm:num_preemptions", "Cumulative number of preemptions.", lbl, registry=reg)
        self.h_ttft = Histogram("vllm:time_to_first_token_seconds", "Time to first token in seconds.", lbl,
                                buckets=_TTFT_BUCKETS, registry=reg)
        self.h_itl = Histogram("vllm:inter_token_latency_seconds", "Inter-token latency in seconds.", lbl,
                               buckets=_ITL_BUCKETS, registry=reg)
        self.h_tpot = Histogram("vllm:time_per_output_token_seconds", "Time per output token in seconds.", lbl,
                                buckets=_ITL_BUCKETS, registry=reg)
        self.h_e2e = Histogram("vllm:e2e_request_latency_seconds", "End-to-end request latency in seconds.",
                               lbl, buckets=_E2E_BUCKETS, registry=reg)
        self.h_queue = Histogram("vllm:request_queue_time_seconds", "Time spent waiting in the queue.", lbl,
                                 buckets=_E2E_BUCKETS, registry=reg)

    # ------------------------------------------------------------------ engine driver
    def _sim_clock(self) -> float:
        return (self._clock() - self._t0) * self.config.speedup

    async def _drive(self) -> None:
        speed = self.config.speedup
        while True:
            if not self.engine.has_work:
                self._wake.clear()
                await self._wake.wait()
                now = max(self._sim_now, self._sim_clock())     # idle: the engine resumes at the present
            else:
                # busy: the next step starts when the last one ended in modelled time. Starting
                # it at the wall clock instead would add every sleep overshoot and every
                # millisecond spent writing chunks (× speedup) to the engine's step time, and
                # the emulated replica would serve fewer requests than the model it emulates.
                now = self._sim_now
            out = self.engine.step(now)
            end = now + out.duration_s
            self._sim_now = end
            delay = self._t0 + end / speed - self._clock()
            if delay > 0:
                await self._sleep(delay)
            if out.preempted:
                self.c_preempt.labels(self.name).inc(len(out.preempted))
            for rid, start_s in out.started:
                r = self.reqs.get(rid)
                if r is not None:           # wall time from arrival to first scheduling
                    self.h_queue.labels(self.name).observe(
                        max(0.0, self._t0 + start_s / speed - r.t_arrive))
            t = self._clock()
            for rid, n in out.tokens:
                r = self.reqs.get(rid)
                if r is None:
                    continue
                n = min(n, r.max_tokens - r.n_out)
                if n <= 0:
                    continue
                if r.n_out == 0:
                    r.t_first = t
                    self.h_ttft.labels(self.name).observe(t - r.t_arrive)
                else:
                    self.h_itl.labels(self.name).observe(t - r.t_last)
                r.t_last = t
                r.n_out += n
                self.c_gen.labels(self.name).inc(n)
                r.queue.put_nowait(n)
            for rid in out.finished:
                r = self.reqs.pop(rid, None)
                if r is not None:
                    self.h_e2e.labels(self.name).observe(t - r.t_arrive)
                    if r.n_out > 1:
                        self.h_tpot.labels(self.name).observe((r.t_last - r.t_first) / (r.n_out - 1))
                    r.queue.put_nowait(None)
            if out.duration_s <= 0 and not out.tokens and not out.finished:
                await self._sleep(0.001)          # engine idle this instant (e.g. all blocked)

    # ------------------------------------------------------------------ HTTP
    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": self.name, "object": "model", "owned_by": "servelab-emulator",
             "max_model_len": self.max_context}]})

    async def _metrics(self, _: web.Request) -> web.Response:
        st = self.engine.stats(self._sim_clock())
        self.g_running.labels(self.name).set(st["running"])
        self.g_waiting.labels(self.name).set(st["waiting"])
        self.g_kv.labels(self.name).set(st["kv_usage_perc"])
        return web.Response(body=generate_latest(self.registry), content_type="text/plain",
                            charset="utf-8", headers={"X-Content-Type-Version": "0.0.4"})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=False)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=True)

    async def _serve(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        try:
            async with asyncio.timeout(self.limits.body_timeout_s):
                raw = await request.read()
        except TimeoutError:
            return _error(408, f"request body not received within {self.limits.body_timeout_s:g} s", "timeout")
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request body larger than {self.limits.max_body_bytes} bytes",
                          "invalid_request_error")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):    # RecursionError: absurd nesting
            return _error(400, "request body is not valid JSON", "invalid_request_error")
        try:
            req = parse_request(body, chat=chat)
        except BadRequest as e:
            return _error(400, e.message, "invalid_request_error", e.param)
        mt = req.max_tokens
        n_in = max(1, count_prompt_tokens(req.text) + req.token_ids)
        if self.max_context and n_in + mt > self.max_context:
            return _error(400, f"This model's maximum context length is {self.max_context} tokens. However, "
                          f"you requested {n_in + mt} tokens ({n_in} in the messages, {mt} in the completion).",
                          "invalid_request_error", "messages" if chat else "prompt")
        t_arrive = self._clock()
        if self.request_overhead_s > 0:       # the engine's fixed per-request cost
            await self._sleep(self.request_overhead_s / self.config.speedup)
        rid = f"cmpl-{next(self._ids)}"
        spec = RequestSpec(id=rid, arrival_s=self._sim_clock(), input_tokens=n_in, output_tokens=mt)
        fits = getattr(self.engine, "fits", None)
        why = fits(spec) if fits is not None else ""
        if why:
            return _error(400, why.removeprefix("400 "), "invalid_request_error")
        r = _Req(rid, mt)
        r.t_arrive = t_arrive
        self.reqs[rid] = r
        if not self.engine.add(spec, max(self._sim_now, self._sim_clock())):
            self.reqs.pop(rid, None)
            return _error(503, "waiting queue is full; retry later", "service_unavailable")
        try:                                         # from here on, every exit frees the request
            self.c_prompt.labels(self.name).inc(n_in)
            self._wake.set()
            if req.stream:
                return await self._stream(request, r, chat, n_in, req.include_usage)
            return await self._whole(r, chat, n_in)
        finally:
            if rid in self.reqs:                     # client went away (or an error): free its KV
                self.reqs.pop(rid, None)
                self.engine.abort(rid)

    def _chunk(self, r: _Req, chat: bool, text: str | None, finish: str | None,
               usage: dict[str, int] | None = None) -> bytes:
        if chat:
            choice: dict[str, Any] = {"index": 0, "delta": {} if text is None else {"content": text},
                                      "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": finish}
        obj: dict[str, Any] = {"id": r.id, "object": "chat.completion.chunk" if chat else "text_completion",
                               "created": int(time.time()), "model": self.name,
                               "choices": [choice] if usage is None or finish else []}
        if usage is not None:
            obj["usage"] = usage
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    async def _stream(self, request: web.Request, r: _Req, chat: bool, n_in: int, usage: bool) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        if chat:
            await resp.write(b"data: " + json.dumps({"id": r.id, "object": "chat.completion.chunk",
                                                     "model": self.name, "choices": [{"index": 0, "delta": {
                                                         "role": "assistant", "content": ""}}]}).encode() + b"\n\n")
        while True:
            n = await r.queue.get()
            if n is None:
                break
            await resp.write(self._chunk(r, chat, " tok" * n, None))
        await resp.write(self._chunk(r, chat, None if chat else "", "length"))
        if usage:
            await resp.write(self._chunk(r, chat, None, None, {
                "prompt_tokens": n_in, "completion_tokens": r.n_out, "total_tokens": n_in + r.n_out}))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _whole(self, r: _Req, chat: bool, n_in: int) -> web.Response:
        while await r.queue.get() is not None:
            pass
        text = " tok" * r.n_out
        choice: dict[str, Any] = ({"index": 0, "message": {"role": "assistant", "content": text},
                                   "finish_reason": "length"} if chat else
                                  {"index": 0, "text": text, "finish_reason": "length"})
        return web.json_response({
            "id": r.id, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
            "model": self.name, "choices": [choice],
            "usage": {"prompt_tokens": n_in, "completion_tokens": r.n_out, "total_tokens": n_in + r.n_out}})

    @web.middleware
    async def _guard_mw(self, request: web.Request, handler: Any) -> web.StreamResponse:
        g = self._factory.by_transport.get(request.transport) if self._factory is not None else None
        if g is not None:
            g.request_started()
        try:
            return await handler(request)
        except web.HTTPException as e:              # 404, 405, 413: OpenAI-style bodies too
            if e.status < 400:
                raise
            return _error(e.status, e.reason, "invalid_request_error" if e.status < 500 else "server_error")
        finally:
            if g is not None:
                g.request_finished()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.limits.max_body_bytes, middlewares=[self._guard_mw])
        app.add_routes([
            web.get("/health", self._health), web.get("/v1/models", self._models),
            web.get("/metrics", self._metrics), web.post("/v1/completions", self._completions),
            web.post("/v1/chat/completions", self._chat),
        ])
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> "Emulator":
        """Serve on ``host:port`` (0: a free port). OSError when the address is taken."""
        self._t0 = self._clock()
        # handler_cancellation: a client that goes away cancels its handler, whose
        # ``finally`` aborts the request in the engine (streaming or not).
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True,
                                     keepalive_timeout=self.limits.keepalive_timeout_s)
        await self._runner.setup()
        assert self._runner.server is not None
        self._factory = GuardedFactory(self._runner.server, self.limits)
        try:
            self._server = await asyncio.get_running_loop().create_server(self._factory, host, port)
        except OSError:
            await self._runner.cleanup()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        self._driver = asyncio.create_task(self._drive())
        return self

    async def stop(self) -> None:
        if self._driver is not None:
            self._driver.cancel()
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()
