"""Result files of a load run, and its summary.

Layout of a run directory (the same as ``servelab simulate`` writes through
``servelab.recordio``): ``records.jsonl`` (one record per line, written and flushed
as each request finishes, so an interrupted run keeps what it measured),
``meta.json`` (``RunMeta``), ``summary.json`` (``metrics.summarize`` plus the load
client's additions) and ``timeseries.json`` (scraped ``/metrics`` samples).
When ``servelab.recordio`` is importable its writers are used; otherwise the same
layout is written here.
"""

from __future__ import annotations

import json
import os
import platform
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from ..records import RequestRecord, RunMeta

__all__ = ["RecordSink", "DispatchJournal", "DISPATCH_JOURNAL", "recover_run", "write_run_files", "load_summary",
           "now_iso", "host_versions"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def host_versions() -> tuple[str, dict[str, str]]:
    import aiohttp
    from .. import __version__ as sv

    return socket.gethostname(), {
        "servelab": str(sv), "python": platform.python_version(), "aiohttp": aiohttp.__version__,
    }


class RecordSink:
    """Append records to ``records.jsonl``, flushing after each (crash-safe)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            from ..recordio import JsonlRecordWriter  # type: ignore[attr-defined]
            self._w: Any = JsonlRecordWriter(self.path)
            self._f = None
        except (ImportError, AttributeError, TypeError):
            self._w = None
            self._f = open(self.path, "w", encoding="utf-8")

    def write(self, rec: RequestRecord) -> None:
        if self._w is not None:
            self._w.write(rec)
            return
        assert self._f is not None
        self._f.write(json.dumps(rec.to_dict(), separators=(",", ":")) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
        elif self._f is not None:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            self._f = None

    def __enter__(self) -> "RecordSink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


DISPATCH_JOURNAL = "dispatched.jsonl"


class DispatchJournal:
    """``dispatched.jsonl``: one line per request as it is sent, flushed, so that a run
    killed outright (SIGKILL) still says which requests were in flight. Removed when
    the run folder is written in full (every request then has its record)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f: Any = open(self.path, "a", encoding="utf-8")

    def write(self, p: Any, dispatch_s: float) -> None:
        if self._f is None:
            return
        self._f.write(json.dumps({"id": p.id, "arrival_s": p.arrival_s, "dispatch_s": dispatch_s,
                                  "input_tokens": p.input_tokens, "output_tokens": p.output_tokens,
                                  "priority": p.priority, "adapter": p.adapter},
                                 separators=(",", ":")) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def recover_run(out_dir: str | Path) -> int:
    """Give every request of a killed run a record: those in ``dispatched.jsonl`` without
    one in ``records.jsonl`` get a ``cancelled`` record ("in flight when the run
    ended"); the summary is recomputed, ``meta.json`` stays ``complete: false`` with a
    note. Returns how many records were added (0 when nothing was missing)."""
    from ..metrics import summarize
    from ..recordio import read_records_jsonl, write_run

    d = Path(out_dir)
    meta_p = d / "meta.json"
    if not meta_p.exists():
        raise FileNotFoundError(f"{d} is not a run folder: no meta.json")
    meta = RunMeta.from_dict(json.loads(meta_p.read_text(encoding="utf-8")))
    recs = list(read_records_jsonl(d / "records.jsonl")) if (d / "records.jsonl").exists() else []
    have = {r.id for r in recs}
    added = 0
    journal = d / DISPATCH_JOURNAL
    if journal.exists():
        for line in journal.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                j = json.loads(line)
            except ValueError:
                continue                        # a line cut by the kill
            if j.get("id") in have:
                continue
            have.add(j["id"])
            recs.append(RequestRecord(
                id=j["id"], arrival_s=j["arrival_s"], input_tokens=j["input_tokens"], status="cancelled",
                reason="in flight when the run ended (the client was killed); no response recorded",
                dispatch_s=j["dispatch_s"], priority=j.get("priority", 0), adapter=j.get("adapter"),
                extra={"requested_input_tokens": j["input_tokens"],
                       "requested_output_tokens": j.get("output_tokens"), "recovered": True}))
            added += 1
    finishes = [r.finish_s for r in recs if r.finish_s is not None]
    duration = meta.duration_s or (max(finishes) if finishes else 0.0)
    summary = summarize(recs, duration_s=duration)
    meta.complete = False
    note = f"recovered: {added} request(s) in flight when the run ended recorded as 'cancelled'"
    meta.notes = " · ".join(x for x in (meta.notes, note) if x)
    write_run(d, meta, recs, summary, None)
    journal.unlink(missing_ok=True)
    return added


def _dump(path: Path, obj: Any) -> None:
    from .._files import atomic_write_text
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def write_run_files(
    out_dir: str | Path,
    meta: RunMeta,
    records: Iterable[RequestRecord] | None,
    summary: dict[str, Any],
    timeseries: dict[str, Any] | None,
) -> Path:
    """Write meta/summary/timeseries (and the records when not already streamed)."""
    from .._scrub import scrub

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = RunMeta.from_dict(scrub(meta.to_dict()))     # nothing secret is written
    summary = scrub(summary)
    timeseries = scrub(timeseries) if timeseries is not None else None
    try:
        from ..recordio import write_run  # type: ignore[attr-defined]
    except ImportError:
        write_run = None
    if write_run is not None and records is not None:
        write_run(out, meta, list(records), summary, timeseries)
        return out
    if records is not None:
        with RecordSink(out / "records.jsonl") as sink:
            for r in records:
                sink.write(r)
    _dump(out / "meta.json", meta.to_dict())
    _dump(out / "summary.json", summary)
    if timeseries is not None:
        _dump(out / "timeseries.json", timeseries)
    return out


def load_summary(out_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(out_dir) / "summary.json").read_text())
