"""Reading runs back for ``report`` and ``compare``: what an input is, by what it is.

An input is a run folder (``meta.json`` + records), a folder of run folders (a rate
sweep: one run each, in name order), a records file (``.jsonl``/``.ndjson``/``.parquet``),
or a result JSON of ``vllm bench serve --save-result --save-detailed`` (per-request lists
``ttfts``, ``itls`` …) or guidellm (a ``benchmarks`` list); the last two go through
``servelab.load.importers``. A guidellm file with several benchmarks yields one run per
benchmark. :func:`name_runs` gives the runs of a comparison unique labels and picks the
baseline.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError
from ..records import RequestRecord, RunMeta

__all__ = ["load_inputs", "LoadedRun", "VALID_INPUTS", "name_runs", "compare_loaded"]

VALID_INPUTS = ("a run folder (meta.json + records.jsonl/parquet), a records file (.jsonl, .ndjson, "
                ".parquet), or a `vllm bench serve --save-result --save-detailed` / guidellm result .json")


@dataclass(frozen=True, kw_only=True)
class LoadedRun:
    """An input read back: records, metadata when known, stored summary/time series."""
    path: Path
    label: str
    records: list[RequestRecord]
    meta: RunMeta | None = None
    summary: dict[str, Any] | None = None
    timeseries: dict[str, Any] | None = None
    fmt: str = ""                          # run-folder | jsonl | json-list | parquet | vllm | guidellm
    skipped_lines: int = 0                 # unreadable JSONL lines (a crash mid-write), skipped

    @property
    def duration_s(self) -> float | None:
        return self.meta.duration_s if self.meta is not None else None

    def run_summary(self) -> dict[str, Any]:
        """The stored summary when it has latencies, else one computed from the records."""
        from ..metrics import summarize
        stored = self.summary if self.summary and "ttft_s" in self.summary else None
        return stored or summarize(self.records, duration_s=self.duration_s)


def _meta_label(meta: RunMeta | None, fallback: str) -> str:
    return f"{meta.kind} {meta.run_id}" if meta is not None and meta.run_id else fallback


def _import(tool: str, p: Path, data: dict[str, Any]) -> list[LoadedRun]:
    try:
        importers = importlib.import_module("servelab.load.importers")
    except ImportError as e:   # the load package is optional to this command
        raise ConfigError(f"{p} looks like a {tool} result, but reading it needs "
                          f"servelab.load.importers, which cannot be imported here ({e})") from None
    runs = [importers.import_vllm(data, source=str(p))] if tool == "vllm" \
        else importers.import_guidellm(data, source=str(p))
    many = len(runs) > 1
    return [LoadedRun(path=p, label=p.stem + (f"#{i}" if many else ""), records=list(recs), meta=meta, fmt=tool)
            for i, (meta, recs) in enumerate(runs)]


def _unified_timeseries(ts: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored ``timeseries.json`` in the current format (``metrics.run_timeseries``);
    folders written before it (the simulator's gauges, or raw ``/metrics`` samples at
    the top level) get their ``server`` section rebuilt, the request part is
    recomputed from the records by the report."""
    from ..metrics import TIMESERIES_FORMAT
    if not ts or ts.get("format") == TIMESERIES_FORMAT:
        return ts
    server = None
    if isinstance(ts.get("samples"), list):
        from ..load.scrape import server_series
        server = server_series(ts)
    elif isinstance(ts.get("kv_usage"), list) and "bucket_s" not in ts:
        from ..sim.series import server_section_of
        server = server_section_of(ts)
    doc: dict[str, Any] = {"format": TIMESERIES_FORMAT}
    if "bucket_s" in ts:
        doc["requests"] = ts
    if server is not None:
        doc["server"] = server
    return doc


def load_inputs(path: str | Path) -> list[LoadedRun]:
    """Read one input (module docstring); ``ConfigError`` naming the valid inputs
    when the path is missing or its format is not one of them."""
    from .. import recordio
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"no such file or folder {str(p)!r}; expected {VALID_INPUTS}")
    if p.is_file() and p.name in ("meta.json", "summary.json", "timeseries.json") \
            and (p.parent / "meta.json").exists():
        p = p.parent
    if p.is_dir():
        subruns = sorted(c for c in p.iterdir() if c.is_dir() and (c / "meta.json").exists())
        if not (p / "meta.json").exists() and subruns:      # a sweep: bench --rate a,b,c --out DIR
            return [lr for c in subruns for lr in load_inputs(c)]
        if not (p / "meta.json").exists():
            raise ConfigError(f"{str(p)!r} is a folder without meta.json, not a run folder; expected {VALID_INPUTS}")
        run = recordio.read_run(p)
        return [LoadedRun(path=p, label=_meta_label(run.meta, p.name), records=list(run.records), meta=run.meta,
                          summary=run.summary or None, timeseries=_unified_timeseries(run.timeseries),
                          fmt="run-folder",
                          skipped_lines=run.skipped_lines)]
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        return [LoadedRun(path=p, label=p.stem, records=recordio.read_records_parquet(p), fmt="parquet")]
    if suffix in (".jsonl", ".ndjson"):
        recs = recordio.read_records_jsonl(p)
        if recs or not recs.skipped_lines:
            return [LoadedRun(path=p, label=p.stem, records=list(recs), fmt="jsonl",
                              skipped_lines=recs.skipped_lines)]
    if suffix == ".json":
        text = p.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("benchmarks"), list):
            return _import("guidellm", p, data)
        if isinstance(data, dict) and ("ttfts" in data or ("input_lens" in data and "duration" in data)):
            return _import("vllm", p, data)
        if isinstance(data, list) and all(isinstance(d, dict) for d in data):
            try:
                return [LoadedRun(path=p, label=p.stem, records=[RequestRecord.from_dict(d) for d in data],
                                  fmt="json-list")]
            except (TypeError, ValueError):
                pass
        if data is None:   # several JSON documents: records one per line
            try:
                return [LoadedRun(path=p, label=p.stem, fmt="jsonl",
                                  records=list(recordio.read_records_jsonl(p, strict=True)))]
            except ValueError:
                pass
    raise ConfigError(f"unknown input format {str(p)!r}; expected {VALID_INPUTS}")


def name_runs(loaded: Sequence[tuple[str, LoadedRun]], labels: Sequence[str] | None = None,
              baseline: str | None = None) -> tuple[list[str], int]:
    """Unique labels (``labels`` when given, one per run, else each run's own; repeats get
    `` #2``, `` #3`` …) and the baseline's index: an input as given, a label or a 1-based
    index (default: the first)."""
    names = [lr.label for _, lr in loaded]
    if labels:
        if len(labels) != len(loaded):
            raise ConfigError(f"--label given {len(labels)} times for {len(loaded)} runs; give one per run")
        names = list(labels)
    seen: dict[str, int] = {}
    for i, lab in enumerate(names):          # keep labels unique
        seen[lab] = seen.get(lab, 0) + 1
        if seen[lab] > 1:
            names[i] = f"{lab} #{seen[lab]}"
    b = 0
    if baseline is not None:
        hits = [i for i, (arg, _) in enumerate(loaded) if baseline in (arg, names[i])]
        if not hits and baseline.isdigit() and 1 <= int(baseline) <= len(loaded):
            hits = [int(baseline) - 1]
        if not hits:
            raise ConfigError(f"unknown baseline {baseline!r}; give one of the inputs, a label "
                              f"({', '.join(names)}) or an index 1..{len(loaded)}")
        b = hits[0]
    return names, b


def compare_loaded(loaded: Sequence[tuple[str, LoadedRun]], *, labels: Sequence[str] | None = None,
                   baseline: str | None = None, metrics: str = "ttft_p95", confidence: float = 0.95,
                   resamples: int = 1000, seed: int = 0, inputs: Sequence[str] | None = None) -> Any:
    """``compare``: the runs (``(input as given, run)`` pairs, at least two, read from
    ``inputs``) laid side by side on the comma-separated ``metrics`` (``report.compare.compare_runs``)."""
    from .compare import CompareRun, compare_runs
    if len(loaded) < 2:
        given = list(inputs) if inputs is not None else list(dict.fromkeys(arg for arg, _ in loaded))
        raise ConfigError(f"compare needs at least two runs, got {len(loaded)} from {given}")
    names, b = name_runs(loaded, labels, baseline)
    wanted = [m.strip() for m in metrics.split(",") if m.strip()]
    if not wanted:
        raise ConfigError("--metrics is empty; e.g. ttft_p95,throughput_tokens_per_s")
    crs = [CompareRun(label=names[i], records=lr.records, duration_s=lr.duration_s, meta=lr.meta,
                      source=str(lr.path)) for i, (_, lr) in enumerate(loaded)]
    return compare_runs(crs, baseline=b, metrics=wanted, confidence=confidence, n_resamples=resamples, seed=seed)
