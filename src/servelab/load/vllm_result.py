"""Write a run as ``vllm bench serve --save-result`` does, so tools that read vLLM's
result files (dashboards, scripts, servelab's own importer) read servelab's runs.

Schema (vllm/benchmarks/serve.py, ``result_json``): set-up keys ``date``
(``%Y%m%d-%H%M%S``), ``endpoint_type``, ``backend``, ``label``, ``model_id``,
``tokenizer_id``, ``num_prompts``, ``request_rate`` (number or ``"inf"``),
``burstiness``, ``max_concurrency``; aggregates ``duration`` (s), ``completed``,
``failed``, ``total_input_tokens``, ``total_output_tokens``, ``request_throughput``,
``request_goodput`` (None without an SLO), ``output_throughput``,
``total_token_throughput``, ``max_output_tokens_per_s``, ``max_concurrent_requests``;
per metric m in ttft, tpot, itl, e2el: ``mean_m_ms``, ``median_m_ms``, ``std_m_ms``,
``pP_m_ms`` per requested percentile (P written as vLLM does: ``99``, ``99.9``); and
the per-request lists ``input_lens``, ``output_lens``, ``ttfts`` (s), ``itls`` (list
of s per request), ``latencies`` (s), ``start_times`` (s), ``errors`` ("" when ok),
``generated_texts``.

Differences, all stated in the file's ``servelab`` key:
- The per-request lists are always written (vLLM keeps them only with
  ``--save-detailed``): without them no tool can rebuild the requests.
- ``start_times`` are the scheduled arrival times (seconds from the run's start;
  vLLM writes ``perf_counter`` seconds of the send), and ``ttfts``/``latencies`` count
  from them, as servelab's TTFT and E2E do; the dispatch lateness (scheduled → sent,
  typically well under a millisecond) is reported by servelab separately.
- ``generated_texts`` are empty: the load client does not keep response texts.
- Statistics come from ``servelab.metrics.summarize`` over the ok requests (the
  definitions match vLLM's, docs/metrics.md); ``std`` is numpy's population standard
  deviation, as vLLM's.
- ``max_output_tokens_per_s`` is the largest count of output tokens emitted in one
  second-long bucket from the run's start; ``max_concurrent_requests`` the most
  requests in flight (arrival → finish) at any instant during that bucket.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..records import RequestRecord, RunMeta

__all__ = ["vllm_result", "vllm_result_filename", "write_vllm_result", "save_vllm_result", "VLLM_METRICS"]

VLLM_METRICS = {"ttft": "ttft", "tpot": "tpot", "itl": "itl", "e2el": "e2e"}   # vLLM name → servelab base


def _p_word(p: float) -> str:
    return str(int(p)) if int(p) == p else str(p)


def _peak(records: Sequence[RequestRecord]) -> tuple[float, int]:
    from ..metrics import timeseries_from_records
    ok = [r for r in records if r.status == "ok"]
    if not ok:
        return 0.0, 0
    ts = timeseries_from_records(records, 1.0)
    tput = [x or 0.0 for x in ts["throughput_tokens_per_s"]]
    k = int(np.argmax(tput))
    lo, hi = float(k), float(k + 1)
    events = sorted([(r.arrival_s, 1) for r in records if r.finish_s is not None and r.finish_s > lo
                     and r.arrival_s < hi] +
                    [(r.finish_s, -1) for r in records if r.finish_s is not None and r.finish_s > lo
                     and r.arrival_s < hi], key=lambda e: (e[0], e[1]))
    live = sum(1 for r in records if r.finish_s is not None and r.arrival_s <= lo < r.finish_s)
    best = live
    for t, d in events:
        if t <= lo:
            continue
        live += d
        best = max(best, live)
    return float(tput[k]), int(best)


def vllm_result(records: Sequence[RequestRecord], summary: dict[str, Any], *, meta: RunMeta,
                model: str = "", request_rate: float = math.inf, burstiness: float = 1.0,
                max_concurrency: int | None = None, num_prompts: int | None = None,
                endpoint_type: str = "openai", label: str | None = None) -> dict[str, Any]:
    """The result JSON (module docstring) of one run from its records and its
    ``metrics.summarize`` summary."""
    from .. import __version__
    recs = list(records)
    started = meta.started_at or ""
    try:
        date = datetime.fromisoformat(started).strftime("%Y%m%d-%H%M%S")
    except ValueError:
        date = datetime.now().strftime("%Y%m%d-%H%M%S")
    dur = float(summary.get("duration_s") or meta.duration_s or 0.0)
    tin = int(summary.get("total_input_tokens") or 0)
    tout = int(summary.get("total_output_tokens") or 0)
    out: dict[str, Any] = {
        "date": date, "endpoint_type": endpoint_type, "backend": endpoint_type,
        "label": label or endpoint_type, "model_id": model, "tokenizer_id": model,
        "num_prompts": num_prompts if num_prompts is not None else len(recs),
        "request_rate": "inf" if math.isinf(request_rate) else request_rate,
        "burstiness": burstiness, "max_concurrency": max_concurrency,
        "duration": dur,
        "completed": int(summary.get("completed") or 0),
        "failed": len(recs) - int(summary.get("completed") or 0),
        "total_input_tokens": tin, "total_output_tokens": tout,
        "request_throughput": summary.get("request_throughput_rps"),
        "request_goodput": summary.get("goodput_rps"),
        "output_throughput": tout / dur if dur > 0 else None,
        "total_token_throughput": (tin + tout) / dur if dur > 0 else None,
    }
    # vLLM's token throughputs divide the ok requests' tokens by the benchmark duration
    out["max_output_tokens_per_s"], out["max_concurrent_requests"] = _peak(recs)
    pcts = [float(p) for p in summary.get("percentiles") or (50, 90, 95, 99)]
    for vname, base in VLLM_METRICS.items():
        row = summary.get(f"{base}_s") or {}
        vals = _values(recs, base)
        out[f"mean_{vname}_ms"] = _ms(row.get("mean"))
        out[f"median_{vname}_ms"] = _ms(row.get("p50"))
        out[f"std_{vname}_ms"] = _std_ms(*vals)
        for p in pcts:
            out[f"p{_p_word(p)}_{vname}_ms"] = _ms(row.get(f"p{p:g}"))
    ok = [r.status == "ok" for r in recs]
    out["input_lens"] = [int(r.input_tokens) for r in recs]
    out["output_lens"] = [int(r.output_tokens) if o else 0 for r, o in zip(recs, ok)]
    out["ttfts"] = [(r.first_token_s - r.arrival_s) if o and r.first_token_s is not None else 0.0
                    for r, o in zip(recs, ok)]
    out["itls"] = [list(np.diff(r.token_times_s).tolist()) if o and r.token_times_s else []
                   for r, o in zip(recs, ok)]
    out["latencies"] = [(r.finish_s - r.arrival_s) if o and r.finish_s is not None else 0.0
                        for r, o in zip(recs, ok)]
    out["start_times"] = [r.arrival_s for r in recs]
    out["errors"] = ["" if o else (r.reason or r.status) for r, o in zip(recs, ok)]
    out["generated_texts"] = ["" for _ in recs]
    out["servelab"] = {"version": __version__, "run_id": meta.run_id, "kind": meta.kind,
                       "start_times": "scheduled arrival, s from the run's start; ttfts and latencies count "
                                      "from it", "generated_texts": "not kept"}
    return out


def _ms(x: Any) -> float | None:
    return None if x is None else float(x) * 1e3


def _values(recs: list[RequestRecord], base: str) -> tuple[np.ndarray, np.ndarray]:
    from ..metrics import columns
    c = columns(recs)
    if base == "itl":
        return c.itl_values_s, c.itl_weights
    v = c.latency(base)
    v = v[np.isfinite(v)]
    return v, np.ones_like(v)


def _std_ms(v: np.ndarray, w: np.ndarray) -> float | None:
    if v.size == 0:
        return None
    mean = float(np.average(v, weights=w))
    return float(np.sqrt(np.average((v - mean) ** 2, weights=w))) * 1e3


def vllm_result_filename(*, label: str, request_rate: float, model: str, date: str,
                         max_concurrency: int | None = None) -> str:
    """vLLM's default file name: ``{label}-{rate}qps[-concurrency{n}]-{model}-{date}.json``."""
    rate = "inf" if math.isinf(request_rate) else f"{request_rate:g}"
    conc = f"-concurrency{max_concurrency}" if max_concurrency is not None else ""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", (model or "model").split("/")[-1])
    return f"{label}-{rate}qps{conc}-{base}-{date}.json"


def write_vllm_result(doc: dict[str, Any], path: str | Path) -> Path:
    """Write ``doc`` as JSON (creating the folder); returns the path."""
    import json

    from .._files import atomic_write_text
    from .._scrub import scrub
    return atomic_write_text(path, json.dumps(scrub(doc), allow_nan=False))


def save_vllm_result(outcome: Any, spec: Any, rate: float, folder: Path | str | None, filename: str | None,
                     label: str | None, *, tag: str | None = None) -> Path:
    """Write vLLM's result JSON of one bench run (``load.bench.BenchOutcome`` of
    ``spec`` at ``rate``) into ``folder`` (default: the current one). The name is
    ``filename`` (with ``-TAG`` before its extension when ``tag`` is given: one file
    per rate or sweep point), else vLLM's ``LABEL-RATEqps-MODEL-DATE.json``; the label
    defaults to the endpoint type, ``openai`` or ``openai-chat``."""
    ep = spec.endpoint
    etype = "openai-chat" if ep.endpoint.rstrip("/").endswith("chat/completions") else "openai"
    doc = vllm_result(outcome.records, outcome.summary, meta=outcome.meta, model=ep.model, request_rate=rate,
                      burstiness=spec.burstiness, max_concurrency=spec.max_concurrency,
                      num_prompts=spec.num_prompts, endpoint_type=etype, label=label)
    name = filename or vllm_result_filename(label=label or etype, request_rate=rate, model=ep.model,
                                            date=doc["date"], max_concurrency=spec.max_concurrency)
    if filename and tag:
        stem, dot, ext = filename.rpartition(".")
        name = f"{stem}-{tag}.{ext}" if dot else f"{filename}-{tag}"
    return write_vllm_result(doc, Path(folder or ".") / name)
