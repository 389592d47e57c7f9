"""``watch``: a live fleet against its scenario's prediction at the observed load.

Every interval a :class:`~servelab.deploy.live.Sample` is read; the operating point is
taken over the last ``window_s`` (:func:`~servelab.deploy.live.operating_point`) and
judged (:func:`assess`):

* **load** — arrival rate / planned rate above ``load_tolerance`` (default 1.1, the
  planner's default headroom) → warning "load 1.9× plan (3.8 vs 2 req/s)". A short
  window holds few arrivals, so the finding needs evidence: the one-sided 95 % lower
  bound of the arrival count (Poisson, Byar's approximation
  ``N·(1 − 1/(9N) − z/(3√N))³``, z = 1.645; Breslow & Day 1987, vol. 2, p. 69) must
  exceed the tolerance;
* **SLO risk** — the scenario simulated at the observed rate (:class:`Predictor`, same
  fleet, workload, seed and duration; cached on a grid of 5 % of the planned rate)
  predicts an SLO target missed → alert "predicted p95 TTFT at this load 3.1 s > SLO 2 s";
* **SLO breach** — the observed percentile above its SLO threshold → alert;
* **drift** — observed percentile above ``drift_tolerance`` (default 1.5) × the
  prediction at the observed rate, and beyond the histogram bucket that holds the
  prediction (a histogram cannot resolve finer than its buckets) → warning;
* **queue** — waiting requests rising over three successive intervals → warning;
* **KV cache** above 0.95 full, **preemptions** where the prediction has none → warning.

A window with no traffic is "idle". The status of an interval is its worst finding.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from ..errors import ConfigError
from ._source import Target
from .live import HIST, OperatingPoint, Sample, operating_point

__all__ = ["poisson_lower", "Prediction", "Predictor", "Finding", "Report", "assess", "watch", "WatchSettings", "STATUS_ORDER", "check_watch_options"]

STATUS_ORDER = ("idle", "ok", "warn", "alert")


@dataclass(frozen=True, kw_only=True)
class Prediction:
    rate_rps: float
    values: dict[str, float]            # SLO metric name (ttft_p95, …) -> predicted seconds
    delivery: float
    preemptions: int
    n_requests: int


class Predictor:
    """The scenario simulated at a given fleet arrival rate; one simulation per grid cell."""

    def __init__(self, t: Target, *, grid: float = 0.05, max_duration_s: float = 300.0) -> None:
        from ..scenario import build

        self.t = t
        self.sc = t.scenario
        self.planned_rps = build.rate_rps(self.sc)
        self.slo = build.slo(self.sc)
        self.grid = grid
        self.max_duration_s = max_duration_s
        self.cache: dict[float, Prediction] = {}
        self.simulations = 0

    def key(self, rate_rps: float) -> float:
        step = self.planned_rps * self.grid
        return max(1, round(rate_rps / step)) * step

    def metric_names(self) -> list[str]:
        return [f"{tg.metric}_p{tg.percentile:g}" for tg in self.slo.targets]

    def __call__(self, rate_rps: float) -> Prediction:
        k = round(self.key(rate_rps), 9)
        if k not in self.cache:
            self.cache[k] = self._simulate(k)
        return self.cache[k]

    def _simulate(self, rate: float) -> Prediction:
        from ..metrics import metric_value
        from ..scenario import build
        from ..sim import simulate

        sc = build.derive(self.sc, rate_rps=rate, duration_s=min(self.sc.duration_s, self.max_duration_s))
        res = simulate(build.sim_config(sc), build.requests(sc))
        self.simulations += 1
        names = {*self.metric_names(), "ttft_p95", "tpot_p95", "e2e_p95"}
        vals = {n: metric_value(res.records, n) for n in names}
        preempt = sum(int(getattr(r, "preemptions", 0) or 0) for r in res.records)
        return Prediction(rate_rps=rate, values={k: v for k, v in vals.items() if not math.isnan(v)},
                          delivery=metric_value(res.records, "delivery"), preemptions=preempt,
                          n_requests=len(res.records))


@dataclass(frozen=True)
class Finding:
    level: str          # "warn" | "alert"
    kind: str           # load | slo_risk | slo_breach | drift | queue | kv | preemptions
    message: str


@dataclass(frozen=True, kw_only=True)
class Report:
    point: OperatingPoint
    status: str
    findings: tuple[Finding, ...]
    load_factor: float
    prediction: Prediction | None

    def to_dict(self) -> dict[str, Any]:
        return {"t_s": self.point.t_s, "status": self.status, "load_factor": self.load_factor,
                "reasons": [f.message for f in self.findings],
                "findings": [{"level": f.level, "kind": f.kind, "message": f.message} for f in self.findings],
                "observed": self.point.to_dict(),
                "predicted": None if self.prediction is None else
                {"rate_rps": self.prediction.rate_rps, **self.prediction.values,
                 "delivery": self.prediction.delivery}}


@dataclass(frozen=True, kw_only=True)
class WatchSettings:
    interval_s: float = 15.0
    window_s: float = 60.0           # operating point over this much of the source's time
    load_tolerance: float = 1.1
    drift_tolerance: float = 1.5
    kv_usage_alert: float = 0.95
    time_scale: float = 1.0          # emulator --speedup


def check_watch_options(*, urls: Sequence[str] = (), prometheus: str | None = None, interval: float = 15.0,
                        window: float = 60.0, speedup: float = 1.0, fail_on: str = "alert",
                        count: int | None = None) -> None:
    """``ConfigError`` naming the first bad option of ``servelab watch``: one source
    (``--url`` or ``--prometheus``), positive interval, window and speedup, ``--fail-on``
    alert or warn, ``--count`` >= 1."""
    if bool(urls) == bool(prometheus):
        raise ConfigError("give either --url (one or more) or --prometheus URL")
    if interval <= 0 or window <= 0 or speedup <= 0:
        raise ConfigError(f"--interval, --window and --speedup must be > 0, got {interval}, {window}, {speedup}")
    if fail_on not in ("alert", "warn"):
        raise ConfigError(f"--fail-on {fail_on!r}; valid: alert, warn")
    if count is not None and count < 1:
        raise ConfigError(f"--count must be >= 1, got {count}")


def poisson_lower(n: float, z: float = 1.645) -> float:
    """One-sided lower confidence bound of a Poisson mean after observing ``n`` events
    (Byar's approximation, module docstring); 0 for n = 0."""
    if n <= 0:
        return 0.0
    return n * max(0.0, 1.0 - 1.0 / (9.0 * n) - z / (3.0 * math.sqrt(n))) ** 3


def _fmt_s(x: float) -> str:
    return f"{x * 1e3:.3g} ms" if x < 1.0 else f"{x:.3g} s"


def _bucket_upper(buckets: tuple[tuple[float, float], ...], value: float, scale: float) -> float:
    """The upper bound (modelled seconds) of the bucket holding ``value``."""
    for le, _ in buckets:
        if value <= le * scale:
            return le * scale
    return math.inf


def assess(point: OperatingPoint, *, planned_rps: float, slo: Any, prediction: Prediction | None,
           settings: WatchSettings, sample: Sample | None = None,
           waiting_history: tuple[float, ...] = ()) -> Report:
    """Judge one operating point (module docstring)."""
    f: list[Finding] = []
    load = point.arrival_rate_rps / planned_rps if planned_rps > 0 else math.inf
    if point.arrival_rate_rps <= 0 and point.completed <= 0 and point.running + point.waiting <= 0:
        return Report(point=point, status="idle", findings=(), load_factor=0.0, prediction=None)
    arrivals = point.arrival_rate_rps * point.window_s
    if load > settings.load_tolerance and \
            poisson_lower(arrivals) / point.window_s > settings.load_tolerance * planned_rps:
        f.append(Finding("warn", "load", f"load {load:.1f}× plan ({point.arrival_rate_rps:.3g} vs "
                                          f"{planned_rps:.3g} req/s)"))
    for tg in slo.targets:
        name = f"{tg.metric}_p{tg.percentile:g}"
        label = f"p{tg.percentile:g} {tg.metric.upper()}"
        if prediction is not None and name in prediction.values and prediction.values[name] > tg.threshold_s:
            f.append(Finding("alert", "slo_risk", f"predicted {label} at this load "
                                                  f"{_fmt_s(prediction.values[name])} > SLO {_fmt_s(tg.threshold_s)}"))
        obs = point.quantiles.get(tg.metric, {}).get(tg.percentile / 100.0) if tg.metric in HIST else None
        if obs is not None and obs > tg.threshold_s:
            f.append(Finding("alert", "slo_breach", f"observed {label} {_fmt_s(obs)} > SLO {_fmt_s(tg.threshold_s)}"))
        if obs is not None and prediction is not None and name in prediction.values:
            pred = prediction.values[name]
            bound = _bucket_upper(sample.buckets.get(HIST[tg.metric], ()), pred, settings.time_scale) \
                if sample is not None else pred
            if obs > settings.drift_tolerance * pred and obs > bound:
                f.append(Finding("warn", "drift", f"{label} {obs / pred:.1f}× the prediction at this load "
                                                  f"(observed {_fmt_s(obs)}, predicted {_fmt_s(pred)})"))
    if len(waiting_history) >= 3 and all(b > a for a, b in zip(waiting_history[-3:], waiting_history[-2:])) \
            and waiting_history[-1] > 0:
        f.append(Finding("warn", "queue", f"queue growing: {waiting_history[-1]:g} waiting "
                                          f"(was {waiting_history[-3]:g} two intervals ago)"))
    if point.kv_usage is not None and point.kv_usage > settings.kv_usage_alert:
        f.append(Finding("warn", "kv", f"KV cache {point.kv_usage:.0%} full on a replica"))
    if point.preemptions_per_s and (prediction is None or prediction.preemptions == 0):
        f.append(Finding("warn", "preemptions", f"{point.preemptions_per_s:.2g} preemptions/s; the prediction "
                                                "at this load has none"))
    status = max((x.level for x in f), key=STATUS_ORDER.index, default="ok")
    return Report(point=point, status=status, findings=tuple(f), load_factor=load, prediction=prediction)


def watch(source: Any, t: Target, settings: WatchSettings, *, count: int | None = None,
          sleep: Callable[[float], None] | None = None, predictor: Predictor | None = None) -> Iterator[Report]:
    """Sample ``source`` every ``interval_s`` (``sleep`` is injectable) and yield one
    :class:`Report` per interval after the first sample; ``count`` reports, or forever."""
    import time

    sleep = sleep or time.sleep
    pred = predictor or Predictor(t)
    qs = tuple(tg.percentile / 100.0 for tg in pred.slo.targets)
    samples: deque[Sample] = deque()
    waiting: deque[float] = deque(maxlen=4)
    samples.append(source.sample())
    n = 0
    while count is None or n < count:
        sleep(settings.interval_s)
        cur = source.sample()
        samples.append(cur)
        while len(samples) > 2 and cur.t_s - samples[1].t_s >= settings.window_s / settings.time_scale:
            samples.popleft()
        point = operating_point(samples[0], cur, time_scale=settings.time_scale, quantiles=qs)
        waiting.append(point.waiting)
        prediction = pred(point.arrival_rate_rps) if point.arrival_rate_rps > 0 else None
        yield assess(point, planned_rps=pred.planned_rps, slo=pred.slo, prediction=prediction,
                     settings=settings, sample=cur, waiting_history=tuple(waiting))
        n += 1
