"""Import results of other load tools as servelab records.

``vllm bench serve --save-result --save-detailed`` (vllm/benchmarks/serve.py): the
result JSON holds aggregate keys (``duration``, ``completed``, ``request_rate``,
``max_concurrency``, ``total_input_tokens`` …) and, with ``--save-detailed``, per-request
lists of equal length: ``input_lens``, ``output_lens``, ``ttfts`` (s), ``itls`` (list of
s per request), ``errors`` ("" when ok), optionally ``start_times`` (perf_counter s,
newer releases). Record i: ``arrival_s`` = start_times[i] − min(start_times) (0 when
absent: vLLM does not keep arrival times), first token = arrival + ttft, token times
= first token + cumulative ITLs, finish = arrival + ``latencies``[i] (vLLM's E2EL,
newer releases) or else the last token time (the tail after the last chunk is then
lost). A non-empty error → ``failed``. Files written by ``servelab bench
--save-result`` have the same schema (``servelab.load.vllm_result``).
Without the per-request lists no record can be rebuilt: a ConfigError says so.

guidellm (``guidellm benchmark``/``run`` JSON output, ``benchmarks[].requests`` =
``{"successful", "incomplete", "errored"}``): per request, new schema (0.4+):
``info.timings`` {``targeted_start``, ``request_start``, ``first_token_iteration``,
``last_token_iteration``, ``request_end``/``resolve_end``}, ``input_metrics.text_tokens``,
``output_metrics.text_tokens``; old schema (0.2/0.3): flat ``start_time``,
``first_token_time``, ``last_token_time``, ``end_time``, ``prompt_tokens``,
``output_tokens``, ``scheduler_info.targeted_start_time``. Wall-clock times are made
relative to the benchmark's earliest start. successful → ok, incomplete → cancelled,
errored → failed. Token times inside a stream are not kept by guidellm; records carry
first and last token times only (``token_times_s`` = None).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..records import RequestRecord, RunMeta
from .results import now_iso

__all__ = ["import_vllm", "import_guidellm", "import_result", "summarize_imported", "IMPORT_TOOLS"]

IMPORT_TOOLS = ("vllm", "guidellm")
_VLLM_LISTS = ("input_lens", "output_lens", "ttfts", "itls", "errors")


def import_vllm(data: dict[str, Any], *, source: str = "") -> tuple[RunMeta, list[RequestRecord]]:
    missing = [k for k in _VLLM_LISTS if k not in data]
    if missing:
        raise ConfigError(
            f"vLLM result {source or ''} has no per-request lists {missing}; re-run "
            "`vllm bench serve --save-result --save-detailed` to keep them")
    n = len(data["ttfts"])
    for k in _VLLM_LISTS:
        if len(data[k]) != n:
            raise ConfigError(f"vLLM result: list {k!r} has {len(data[k])} entries, ttfts has {n}")
    starts = data.get("start_times")
    base = min(starts) if starts else 0.0
    latencies = data.get("latencies") if isinstance(data.get("latencies"), list) \
        and len(data["latencies"]) == n else None
    records = []
    for i in range(n):
        arrival = (starts[i] - base) if starts else 0.0
        err = data["errors"][i] or ""
        ttft = float(data["ttfts"][i] or 0.0)
        itl = [float(x) for x in (data["itls"][i] or [])]
        rec = RequestRecord(id=f"vllm-{i}", arrival_s=arrival, dispatch_s=arrival,
                            input_tokens=int(data["input_lens"][i] or 0),
                            output_tokens=int(data["output_lens"][i] or 0),
                            extra={"source": "vllm", "token_count_source": "vllm"})
        if err:
            rec.status, rec.reason = "failed", str(err)[:2000]
        else:
            first = arrival + ttft
            times = [first]
            for g in itl:
                times.append(times[-1] + g)
            lat = latencies[i] if latencies is not None else None
            finish = arrival + float(lat) if lat else times[-1]
            rec.first_token_s, rec.token_times_s, rec.finish_s = first, times, max(finish, times[-1])
        records.append(rec)
    cfg = {k: data.get(k) for k in ("backend", "model_id", "tokenizer_id", "num_prompts", "request_rate",
                                    "burstiness", "max_concurrency", "endpoint_type") if k in data}
    meta = RunMeta(run_id=f"vllm-{data.get('date', '')}".strip("-") or "vllm", kind="import-vllm",
                   started_at=str(data.get("date") or now_iso()), duration_s=data.get("duration"),
                   complete=True, config={**cfg, "source_file": source},
                   versions={"vllm": str(data.get("vllm_version") or data.get("version") or "unknown")},
                   notes="" if starts else "arrival times unknown in this vLLM result (all set to 0)")
    return meta, records


def _g(d: dict[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)  # type: ignore[assignment]
    return d


def _first(*vals: Any) -> Any:
    for v in vals:
        if v is not None:
            return v
    return None


def _guidellm_request(r: dict[str, Any], status: str) -> dict[str, Any]:
    t = _g(r, "info", "timings") or {}
    sched = r.get("scheduler_info") or {}
    return {
        "id": str(_first(r.get("request_id"), _g(r, "info", "request_id"), "")),
        "targeted": _first(t.get("targeted_start"), _g(sched, "targeted_start_time"),
                           r.get("request_start_time"), t.get("request_start"), r.get("start_time")),
        "start": _first(t.get("request_start"), r.get("request_start_time"), r.get("start_time")),
        "first": _first(t.get("first_token_iteration"), t.get("first_output_token_iteration"),
                        r.get("first_token_time")),
        "last": _first(t.get("last_token_iteration"), r.get("last_token_time")),
        "end": _first(t.get("request_end"), t.get("resolve_end"), r.get("request_end_time"), r.get("end_time")),
        "in": _first(_g(r, "input_metrics", "text_tokens"), r.get("prompt_tokens"), 0),
        "out": _first(_g(r, "output_metrics", "text_tokens"), r.get("output_tokens"), 0),
        "error": _first(_g(r, "info", "error"), r.get("error"), ""),
        "status": status,
    }


def import_guidellm(data: dict[str, Any], *, source: str = "") -> list[tuple[RunMeta, list[RequestRecord]]]:
    benches = data.get("benchmarks")
    if not isinstance(benches, list) or not benches:
        raise ConfigError(f"guidellm result {source}: no 'benchmarks' list")
    runs = []
    for bi, b in enumerate(benches):
        reqs = b.get("requests") or {}
        rows = [_guidellm_request(r, st) for key, st in (("successful", "ok"), ("incomplete", "cancelled"),
                                                          ("errored", "failed"))
                for r in (reqs.get(key) or [])]
        if not rows:
            raise ConfigError(f"guidellm result {source}: benchmark {bi} has no per-request entries")
        base = min(float(x["targeted"]) for x in rows if x["targeted"] is not None)
        records = []
        for x in rows:
            rel = (lambda v: None if v is None else float(v) - base)
            arrival = rel(x["targeted"]) or 0.0
            rec = RequestRecord(id=f"guidellm-{bi}-{x['id']}", arrival_s=arrival, dispatch_s=rel(x["start"]),
                                input_tokens=int(x["in"] or 0), output_tokens=int(x["out"] or 0),
                                status=x["status"], first_token_s=rel(x["first"]),
                                finish_s=_first(rel(x["end"]), rel(x["last"])),
                                extra={"source": "guidellm", "token_count_source": "guidellm"})
            if rec.status == "ok" and rec.first_token_s is not None and x["last"] is not None:
                rec.extra["last_token_s"] = rel(x["last"])
            if rec.status != "ok":
                rec.reason = str(x["error"] or x["status"])[:2000]
            records.append(rec)
        finishes = [r.finish_s for r in records if r.finish_s is not None]
        dur = _first(_g(b, "duration"), (max(finishes) if finishes else None))
        meta = RunMeta(run_id=f"guidellm-{bi}", kind="import-guidellm", started_at=now_iso(),
                       duration_s=float(dur) if dur is not None else None, complete=True,
                       config={"source_file": source, "benchmark_index": bi,
                               "profile": _g(b, "config", "strategy") or _g(b, "args", "profile")},
                       versions={"guidellm": str(_g(data, "metadata", "guidellm_version") or "unknown")})
        runs.append((meta, records))
    return runs


def import_result(tool: str, path: str | Path) -> list[tuple[RunMeta, list[RequestRecord]]]:
    """Read ``path`` as ``tool``'s result JSON; one (meta, records) per benchmark in it."""
    tool = tool.lower()
    if tool not in IMPORT_TOOLS:
        raise ConfigError(f"unknown tool {tool!r}; known: {', '.join(IMPORT_TOOLS)}")
    try:
        data = json.loads(Path(path).read_text())
    except ValueError as e:
        raise ConfigError(f"{path}: not JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    if tool == "vllm":
        return [import_vllm(data, source=str(path))]
    return import_guidellm(data, source=str(path))


def summarize_imported(runs: list[tuple[RunMeta, list[RequestRecord]]], *, out: str | Path | None = None,
                       percentiles: tuple[float, ...] = (50, 90, 95, 99)) -> list[dict[str, Any]]:
    """The summary of each imported run (``metrics.summarize``); with ``out``, each run
    written as a run folder there (``out/benchmark_I`` when there are several)."""
    from ..metrics import summarize
    from .results import write_run_files
    summaries = []
    for i, (meta, records) in enumerate(runs):
        s = summarize(records, duration_s=meta.duration_s, percentiles=percentiles)
        summaries.append(s)
        if out is not None:
            write_run_files(Path(out) if len(runs) == 1 else Path(out) / f"benchmark_{i}", meta, records, s, None)
    return summaries
