"""The summary of a simulated run: the metrics every source gets, plus what only a
simulation knows (makespan, per-replica engine statistics, fleet events, KV-tier hits)."""

from __future__ import annotations

from typing import Any

__all__ = ["summarize_result"]


def summarize_result(result: Any, *, slo: Any = None, window_s: float | None = None,
                     engine: str = "") -> dict[str, Any]:
    """``metrics.summarize`` of ``result.records`` over ``window_s`` (default: the run's
    makespan, ``result.duration_s``) with a ``sim`` section."""
    from ..metrics import summarize

    window = result.duration_s if window_s is None else window_s
    summary = summarize(result.records, duration_s=window, slo=slo)
    tier_hits: dict[str, int] = {}
    for st in result.replica_stats.values():
        for name, tok in st.get("kv_tier_hit_tokens", {}).items():
            tier_hits[name] = tier_hits.get(name, 0) + tok
    summary["sim"] = {"makespan_s": result.duration_s, "replicas": result.replica_stats,
                      "events": [list(e) for e in result.events], "engine": engine,
                      "kv_tier_hit_tokens": tier_hits}
    return summary
