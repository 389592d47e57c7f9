"""Prometheus recording and alerting rules from a scenario's operating point and SLO.

Recording rules (``servelab:<quantity>``, one fleet = one ``model_name``):
arrival rate (completed requests plus the change of running + waiting, so that a growing
queue counts as load: ``rate(count) + deriv(running + waiting)``), p50/p95 of each
vLLM latency histogram (``histogram_quantile`` over ``rate(..._bucket[5m])``), running,
waiting, KV-cache usage (max over replicas), preemptions/s and output tokens/s.

Alerts, each with the plan's number in its summary:

* ``ServelabLoadAbovePlan`` — arrival rate above ``load_tolerance`` × the planned rate
  (default 1.1, the planner's default headroom: the fleet was sized for that much more);
* ``ServelabLoadAboveCapacity`` — above the plan's SLO capacity (active replicas × the
  simulated capacity per replica), when the input is a plan;
* ``ServelabSLO<Metric>`` — one per SLO target, the p-th percentile of its histogram
  above the threshold;
* ``ServelabQueueGrowing`` — waiting requests rising for 5 min while above the
  autoscaler's per-replica target × replicas (or above 0 for a fixed fleet);
* ``ServelabKVCacheNearFull`` — KV usage above ``kv_usage_alert`` (default 0.95: vLLM
  preempts when no block is free; this warns before);
* ``ServelabPreemptions`` — any preemption in 5 min (the plan's operating point has none
  when the simulation shows none).

``for:`` durations are 5 min for load/latency (one HPA cool-down would hide shorter
spikes), 10 min for the queue.
"""

from __future__ import annotations

from typing import Any

from ._source import Target

__all__ = ["HISTOGRAMS", "rules", "planned_rate_rps"]

# SLO metric -> vLLM histogram (vllm/v1/metrics/loggers.py names, as the emulator serves).
HISTOGRAMS: dict[str, str] = {
    "ttft": "vllm:time_to_first_token_seconds", "tpot": "vllm:time_per_output_token_seconds",
    "itl": "vllm:inter_token_latency_seconds", "e2e": "vllm:e2e_request_latency_seconds",
}


def planned_rate_rps(t: Target) -> float:
    """The fleet's planned arrival rate (the scenario's rate)."""
    from ..scenario import build

    return build.rate_rps(t.scenario)


def _sel(model: str) -> str:
    return f'{{model_name="{model}"}}'


def rules(t: Target, *, load_tolerance: float = 1.1, kv_usage_alert: float = 0.95) -> dict[str, Any]:
    """A Prometheus rule file (``groups:``) for the fleet of ``t``."""
    from ..scenario import build

    sc = t.scenario
    s = _sel(sc.model)
    name = t.name
    slo = build.slo(sc)
    rate = planned_rate_rps(t)
    rec = [
        {"record": "servelab:arrival_rate_rps",
         "expr": f"sum(rate(vllm:e2e_request_latency_seconds_count{s}[5m])) + "
                 f"sum(deriv(vllm:num_requests_running{s}[5m])) + sum(deriv(vllm:num_requests_waiting{s}[5m]))"},
        {"record": "servelab:running", "expr": f"sum(vllm:num_requests_running{s})"},
        {"record": "servelab:waiting", "expr": f"sum(vllm:num_requests_waiting{s})"},
        {"record": "servelab:kv_usage_max", "expr": f"max(vllm:kv_cache_usage_perc{s})"},
        {"record": "servelab:preemptions_per_s", "expr": f"sum(rate(vllm:num_preemptions_total{s}[5m]))"},
        {"record": "servelab:output_tokens_per_s", "expr": f"sum(rate(vllm:generation_tokens_total{s}[5m]))"},
    ]
    for metric, hist in HISTOGRAMS.items():
        for q in (0.5, 0.95):
            rec.append({"record": f"servelab:{metric}_seconds:p{round(q * 100)}",
                        "expr": f"histogram_quantile({q:g}, sum by (le) (rate({hist}_bucket{s}[5m])))"})
    labels = {"fleet": name, "model_name": sc.model}
    alerts: list[dict[str, Any]] = [
        {"alert": "ServelabLoadAbovePlan", "expr": f"servelab:arrival_rate_rps > {rate * load_tolerance:g}",
         "for": "5m", "labels": {**labels, "severity": "warning"},
         "annotations": {"summary": f"load above plan: {{{{ $value | printf \"%.2f\" }}}} req/s vs planned "
                                    f"{rate:g} req/s (alert above {load_tolerance:g}×)"}},
    ]
    cap = t.plan.get("capacity_per_replica_rps")
    active = t.plan.get("active_replicas")
    if cap and active:
        alerts.append({"alert": "ServelabLoadAboveCapacity", "expr": f"servelab:arrival_rate_rps > {cap * active:g}",
                       "for": "5m", "labels": {**labels, "severity": "critical"},
                       "annotations": {"summary": f"load above the plan's SLO capacity {cap * active:g} req/s "
                                                  f"({active} active replicas × {cap:g} req/s)"}})
    for tgt in slo.targets:
        q = tgt.percentile / 100.0
        hist = HISTOGRAMS[tgt.metric]
        alerts.append({
            "alert": f"ServelabSLO{tgt.metric.upper()}",
            "expr": f"histogram_quantile({q:g}, sum by (le) (rate({hist}_bucket{s}[5m]))) > {tgt.threshold_s:g}",
            "for": "5m", "labels": {**labels, "severity": "critical"},
            "annotations": {"summary": f"p{tgt.percentile:g} {tgt.metric.upper()} {{{{ $value | printf \"%.3f\" }}}} s "
                                       f"over the SLO {tgt.threshold_s:g} s"}})
    auto = sc.autoscaler
    qmax = auto.target * auto.max_replicas if auto else 0
    alerts += [
        {"alert": "ServelabQueueGrowing",
         "expr": f"servelab:waiting > {qmax:g} and deriv(servelab:waiting[5m]) > 0",
         "for": "10m", "labels": {**labels, "severity": "warning"},
         "annotations": {"summary": "waiting requests growing: {{ $value }} waiting"
                                    + (f" (autoscaler at most {auto.max_replicas} replicas × target {auto.target:g})"
                                       if auto else " (fixed fleet)")}},
        {"alert": "ServelabKVCacheNearFull", "expr": f"servelab:kv_usage_max > {kv_usage_alert:g}",
         "for": "5m", "labels": {**labels, "severity": "warning"},
         "annotations": {"summary": "KV cache {{ $value | humanizePercentage }} full on a replica; "
                                    "preemptions follow"}},
        {"alert": "ServelabPreemptions", "expr": "servelab:preemptions_per_s > 0",
         "for": "5m", "labels": {**labels, "severity": "warning"},
         "annotations": {"summary": "{{ $value }} preemptions/s: requests are recomputed; the plan assumed none"}},
    ]
    return {"groups": [{"name": f"servelab-{name}-recording", "interval": "30s", "rules": rec},
                       {"name": f"servelab-{name}-alerts", "rules": alerts}]}
