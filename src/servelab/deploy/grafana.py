"""A Grafana dashboard (JSON model, schemaVersion 39) for a fleet against its plan.

Panels in the order an on-call engineer reads them: request rate vs the planned rate;
TTFT, TPOT and E2E p50/p95 vs the SLO; running and waiting requests; KV-cache usage;
preemptions; output tokens/s; cost per 1M output tokens = fleet USD/hour ÷ (output
tokens/s × 3600) × 10⁶, where USD/hour = the scenario's price per GPU-hour × tp × pp ×
the replicas reporting metrics (one ``vllm:num_requests_running`` series each).
Queries use the recording rules of :mod:`.prometheus` where one exists; the dashboard's
datasource is the variable ``$datasource``.
"""

from __future__ import annotations

from typing import Any

from ._source import Target
from .prometheus import HISTOGRAMS, planned_rate_rps

__all__ = ["dashboard"]


def _panel(pid: int, title: str, targets: list[tuple[str, str]], *, unit: str, y: int, x: int = 0,
           w: int = 12) -> dict[str, Any]:
    return {"id": pid, "type": "timeseries", "title": title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": w, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": leg} for i, (e, leg) in enumerate(targets)]}


def dashboard(t: Target) -> dict[str, Any]:
    from ..scenario import build

    sc = t.scenario
    s = f'{{model_name="{sc.model}"}}'
    slo = {tg.metric: tg for tg in build.slo(sc).targets}
    rate = planned_rate_rps(t)
    usd_per_replica_hour = build.price_per_gpu_hour(sc) * sc.tp * sc.pp
    panels = [_panel(1, "Request rate vs plan", [("servelab:arrival_rate_rps", "arrivals"),
                                                 (f"vector({rate:g})", "planned")], unit="reqps", y=0)]
    pid, y, x = 2, 0, 12
    for metric, hist in HISTOGRAMS.items():
        if metric == "itl":
            continue
        tg = [(f"servelab:{metric}_seconds:p50", "p50"), (f"servelab:{metric}_seconds:p95", "p95")]
        if metric in slo:
            tg.append((f"vector({slo[metric].threshold_s:g})", f"SLO p{slo[metric].percentile:g}"))
        panels.append(_panel(pid, f"{metric.upper()} p50/p95 vs SLO", tg, unit="s", y=y, x=x))
        pid += 1
        x = 0 if x else 12
        y += 8 if x == 0 else 0
    panels += [
        _panel(pid, "Running / waiting", [("servelab:running", "running"), ("servelab:waiting", "waiting")],
               unit="short", y=16, x=12),
        _panel(pid + 1, "KV-cache usage (max replica)", [("servelab:kv_usage_max", "kv usage")],
               unit="percentunit", y=24),
        _panel(pid + 2, "Preemptions", [("servelab:preemptions_per_s", "preemptions/s")], unit="short", y=24, x=12),
        _panel(pid + 3, "Output tokens/s", [("servelab:output_tokens_per_s", "tokens/s")], unit="short", y=32),
        _panel(pid + 4, "Cost per 1M output tokens (USD)",
               [(f"{usd_per_replica_hour:g} * count(vllm:num_requests_running{s}) / "
                 f"(servelab:output_tokens_per_s * 3600) * 1e6", "USD / 1M tokens")],
               unit="currencyUSD", y=32, x=12),
    ]
    return {"title": f"servelab fleet {t.name}", "uid": f"servelab-{t.name}"[:40], "schemaVersion": 39,
            "editable": True, "time": {"from": "now-3h", "to": "now"}, "refresh": "30s", "tags": ["servelab", "vllm"],
            "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                     "label": "Prometheus"}]},
            "description": f"Rendered by servelab from {t.source}; planned rate {rate:g} req/s.",
            "panels": panels}
