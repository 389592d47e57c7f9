"""A running fleet's operating point from vLLM's metrics.

Two sources give the same :class:`Sample` (cumulative counters, histogram buckets and
gauges, summed over replicas; KV usage as the maximum over replicas):

* :class:`DirectSource` — GETs each replica's ``/metrics`` (Prometheus text format,
  parsed by ``prometheus_client``'s reference parser);
* :class:`PrometheusSource` — instant queries over Prometheus's HTTP API
  (``/api/v1/query``) for the same series, summed ``by (le)`` for buckets.

:func:`operating_point` turns two samples into rates over the window between them:

* arrival rate = (Δ completed + Δ(running + waiting)) / Δt — requests that arrived and
  are still in the system count, so an overloaded fleet shows its offered load rather
  than its throughput (completed = ``vllm:e2e_request_latency_seconds_count``);
* latency percentiles from the bucket increments, interpolated linearly inside the
  bucket as Prometheus's ``histogram_quantile`` does (a quantile in the ``+Inf`` bucket
  is the largest finite bound);
* preemptions/s and output/prompt tokens/s from counter increments (a counter that went
  down — a replica restarted — counts from zero);
* running, waiting, KV usage: the later sample's gauges.

``time_scale`` converts an emulator run at ``--speedup K`` back to modelled time: rates
are divided by K and durations multiplied by K (the emulator serves modelled time K×
faster; its histograms hold wall-clock seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..errors import ServelabError

__all__ = ["SourceError", "Sample", "OperatingPoint", "histogram_quantile", "parse_sample",
           "DirectSource", "PrometheusSource", "operating_point", "HIST", "GAUGES", "COUNTERS"]

# Concept -> vLLM series (vllm/v1/metrics/loggers.py; the emulator serves the same names).
HIST: dict[str, str] = {
    "ttft": "vllm:time_to_first_token_seconds", "tpot": "vllm:time_per_output_token_seconds",
    "e2e": "vllm:e2e_request_latency_seconds",
}
GAUGES: dict[str, tuple[str, ...]] = {
    "running": ("vllm:num_requests_running",), "waiting": ("vllm:num_requests_waiting",),
    "kv_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
}
COUNTERS: dict[str, str] = {
    "preemptions": "vllm:num_preemptions_total", "generation_tokens": "vllm:generation_tokens_total",
    "prompt_tokens": "vllm:prompt_tokens_total",
}
# Always exposed by vLLM (gauges exist from start-up); a histogram appears with its first
# observation in some exporters (the emulator's labelled prometheus_client metrics), so an
# absent completion count reads as 0.
REQUIRED = ("vllm:num_requests_running", "vllm:num_requests_waiting")


class SourceError(ServelabError):
    """A metrics source that cannot be read or lacks the vLLM series."""


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One reading of the fleet at ``t_s`` (the source's clock, seconds)."""
    t_s: float
    counters: Mapping[str, float]                       # concept or histogram _count/_sum -> value
    buckets: Mapping[str, tuple[tuple[float, float], ...]]   # histogram -> ((le, cumulative count), …)
    gauges: Mapping[str, float]
    missing: tuple[str, ...] = ()                       # optional series the source does not expose
    replicas: int = 1


@dataclass(frozen=True, kw_only=True)
class OperatingPoint:
    """The fleet over one window, in modelled seconds (see ``time_scale``)."""
    t_s: float
    window_s: float
    arrival_rate_rps: float
    completed: float
    ttft_p95_s: float | None
    tpot_p95_s: float | None
    e2e_p95_s: float | None
    running: float
    waiting: float
    kv_usage: float | None
    preemptions_per_s: float | None
    output_tokens_per_s: float | None
    prompt_tokens_per_s: float | None
    missing: tuple[str, ...] = ()
    quantiles: dict[str, dict[float, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "quantiles"}
        d["missing"] = list(self.missing)
        return d


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of a histogram given as cumulative ``(le, count)`` pairs, by
    Prometheus's rule: find the bucket holding rank q·total, interpolate linearly
    between its lower and upper bound (lower bound of the first bucket: 0); a rank in
    the +Inf bucket returns the largest finite bound. None when the histogram is empty."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    bs = sorted(buckets)
    if not bs or bs[-1][1] <= 0:
        return None
    total = bs[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in bs:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def parse_sample(texts: Sequence[str], t_s: float) -> Sample:
    """A :class:`Sample` from the ``/metrics`` texts of the fleet's replicas."""
    from prometheus_client.parser import text_string_to_metric_families

    counters: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    gauges: dict[str, float] = {}
    seen: set[str] = set()
    kv: list[float] = []
    for text in texts:
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError as exc:
            raise SourceError(f"not Prometheus text format: {exc}") from None
        for fam in families:
            for s in fam.samples:
                seen.add(s.name)
                if s.name.endswith("_created"):
                    continue
                base = s.name.removesuffix("_bucket")
                if s.name.endswith("_bucket") and base in HIST.values():
                    le = float(s.labels.get("le", "inf"))
                    buckets.setdefault(base, {})
                    buckets[base][le] = buckets[base].get(le, 0.0) + float(s.value)
                elif any(s.name == f"{h}_{x}" for h in HIST.values() for x in ("count", "sum")) \
                        or s.name in COUNTERS.values():
                    counters[s.name] = counters.get(s.name, 0.0) + float(s.value)
                else:
                    for concept, names in GAUGES.items():
                        if s.name in names:
                            if concept == "kv_usage":
                                kv.append(float(s.value))
                            else:
                                gauges[concept] = gauges.get(concept, 0.0) + float(s.value)
    if kv:
        gauges["kv_usage"] = max(kv)
    lacking = [n for n in REQUIRED if n not in seen]
    if lacking:
        raise SourceError(f"the metrics lack {', '.join(lacking)}: is this a vLLM server (or servelab emulate)? "
                          f"series present: {', '.join(sorted(seen)[:8]) or 'none'}{' …' if len(seen) > 8 else ''}")
    optional = [*(f"{h}_bucket" for h in HIST.values() if h not in buckets),
                *(n for n in COUNTERS.values() if n not in counters),
                *(("vllm:kv_cache_usage_perc",) if "kv_usage" not in gauges else ())]
    return Sample(t_s=t_s, counters=counters, gauges=gauges, missing=tuple(optional), replicas=len(texts),
                  buckets={k: tuple(sorted(v.items())) for k, v in buckets.items()})


class DirectSource:
    """Scrapes ``urls`` (each a replica's ``/metrics``) with an httpx client."""

    def __init__(self, urls: Sequence[str], *, timeout_s: float = 5.0, clock: Callable[[], float] | None = None,
                 client: Any = None) -> None:
        import time

        import httpx

        if not urls:
            raise SourceError("no --url given")
        self.urls = [u if u.rstrip("/").endswith("/metrics") else u.rstrip("/") + "/metrics" for u in urls]
        self.clock = clock or time.monotonic
        self.client = client or httpx.Client(timeout=timeout_s)

    def sample(self) -> Sample:
        import httpx

        texts = []
        for url in self.urls:
            try:
                r = self.client.get(url)
            except httpx.HTTPError as exc:
                raise SourceError(f"cannot reach {url}: {exc}") from None
            if r.status_code != 200:
                raise SourceError(f"{url} answered HTTP {r.status_code}")
            texts.append(r.text)
        try:
            return parse_sample(texts, self.clock())
        except SourceError as exc:
            raise SourceError(f"{', '.join(self.urls)}: {exc}") from None

    def close(self) -> None:
        self.client.close()


class PrometheusSource:
    """Instant queries over a Prometheus server's HTTP API; ``model`` selects the fleet
    (``model_name`` label). The sample time is the server's evaluation time."""

    def __init__(self, url: str, *, model: str | None = None, timeout_s: float = 5.0,
                 clock: Callable[[], float] | None = None, client: Any = None) -> None:
        import time

        import httpx

        self.url = url.rstrip("/")
        self.sel = f'{{model_name="{model}"}}' if model else ""
        self.clock = clock or time.time
        self.client = client or httpx.Client(timeout=timeout_s)

    def _query(self, expr: str, t: float) -> list[dict[str, Any]]:
        import httpx

        try:
            r = self.client.get(f"{self.url}/api/v1/query", params={"query": expr, "time": f"{t:.3f}"})
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot reach Prometheus at {self.url}: {exc}") from None
        try:
            body = r.json()
        except ValueError:
            raise SourceError(f"Prometheus at {self.url} answered HTTP {r.status_code} without JSON") from None
        if body.get("status") != "success":
            raise SourceError(f"Prometheus at {self.url} refused {expr!r}: {body.get('error', body)}")
        return body["data"]["result"]

    def sample(self) -> Sample:
        t = self.clock()
        s = self.sel
        counters: dict[str, float] = {}
        gauges: dict[str, float] = {}
        buckets: dict[str, tuple[tuple[float, float], ...]] = {}
        missing: list[str] = []
        n = self._query(f"count(vllm:num_requests_running{s})", t)
        for name in REQUIRED:
            if not self._query(f"{name}{s}", t):
                raise SourceError(f"Prometheus at {self.url} has no series {name}{s}: is it scraping the vLLM "
                                  "servers (job up, model_name as served)?")
        for h in HIST.values():
            for x in ("count", "sum"):
                res = self._query(f"sum({h}_{x}{s})", t)
                if res:
                    counters[f"{h}_{x}"] = float(res[0]["value"][1])
            res = self._query(f"sum by (le) ({h}_bucket{s})", t)
            if res:
                buckets[h] = tuple(sorted((float(r["metric"]["le"]), float(r["value"][1])) for r in res))
            else:
                missing.append(f"{h}_bucket")
        for name in COUNTERS.values():
            res = self._query(f"sum({name}{s})", t)
            if res:
                counters[name] = float(res[0]["value"][1])
            else:
                missing.append(name)
        for concept, names in GAUGES.items():
            for name in names:
                res = self._query(f"{'max' if concept == 'kv_usage' else 'sum'}({name}{s})", t)
                if res:
                    gauges[concept] = float(res[0]["value"][1])
                    break
            else:
                missing.append(names[0])
        return Sample(t_s=t, counters=counters, gauges=gauges, buckets=buckets, missing=tuple(missing),
                      replicas=int(float(n[0]["value"][1])) if n else 0)

    def close(self) -> None:
        self.client.close()


def _inc(a: float, b: float) -> float:
    """Counter increase from ``a`` to ``b``; a reset (b < a) counts from zero."""
    return b - a if b >= a else b


def operating_point(prev: Sample, cur: Sample, *, time_scale: float = 1.0,
                    quantiles: Sequence[float] = (0.5, 0.95)) -> OperatingPoint:
    """The operating point over ``prev → cur`` (module docstring)."""
    dt_wall = cur.t_s - prev.t_s
    if dt_wall <= 0:
        raise ValueError(f"samples must advance in time, got {prev.t_s} -> {cur.t_s}")
    k = time_scale
    dt = dt_wall * k
    cnt = f"{HIST['e2e']}_count"
    completed = _inc(prev.counters.get(cnt, 0.0), cur.counters.get(cnt, 0.0))
    in_sys = lambda s: s.gauges.get("running", 0.0) + s.gauges.get("waiting", 0.0)  # noqa: E731
    arrivals = max(0.0, completed + in_sys(cur) - in_sys(prev))
    qs: dict[str, dict[float, float | None]] = {}
    for concept, h in HIST.items():
        b1 = dict(cur.buckets.get(h, ()))
        b0 = dict(prev.buckets.get(h, ()))
        if not b1:
            qs[concept] = {q: None for q in (0.5, 0.95, *quantiles)}
            continue
        delta = tuple((le, _inc(b0.get(le, 0.0), c)) for le, c in sorted(b1.items()))
        qs[concept] = {q: (None if (v := histogram_quantile(q, delta)) is None else v * k) for q in (0.5, 0.95, *quantiles)}

    def per_s(name: str) -> float | None:
        if name not in cur.counters:
            return None
        return _inc(prev.counters.get(name, 0.0), cur.counters[name]) / dt

    return OperatingPoint(
        t_s=cur.t_s, window_s=dt, arrival_rate_rps=arrivals / dt, completed=completed,
        ttft_p95_s=qs["ttft"][0.95], tpot_p95_s=qs["tpot"][0.95], e2e_p95_s=qs["e2e"][0.95],
        running=cur.gauges.get("running", 0.0), waiting=cur.gauges.get("waiting", 0.0),
        kv_usage=cur.gauges.get("kv_usage"), preemptions_per_s=per_s(COUNTERS["preemptions"]),
        output_tokens_per_s=per_s(COUNTERS["generation_tokens"]), prompt_tokens_per_s=per_s(COUNTERS["prompt_tokens"]),
        missing=cur.missing, quantiles=qs)
