"""Persisting request records: streamed JSONL, Parquet, and run folders.

- JSONL (one ``RequestRecord.to_dict()`` per line, UTF-8) is the crash-safe stream:
  ``JsonlRecordWriter`` appends and flushes after every record (optionally fsyncs),
  so a crash loses at most the line being written; ``read_records_jsonl`` skips
  an unreadable line (a truncated last line after a crash) and counts it.
- Parquet (pyarrow): one row per record; ``token_times_s`` as ``list<double>``,
  ``extra`` as a JSON string column, optional times as nullable doubles.
- A run folder: ``meta.json`` (``RunMeta``), ``records.jsonl``, ``records.parquet``,
  ``summary.json`` (``metrics.summarize`` output), ``timeseries.json`` (optional).
  Files are written to a temporary name and renamed, so a reader never sees half
  a file. A large run (a simulated day of millions of requests) is written with
  ``write_run_parts``: its records were streamed by ``ParquetRecordWriter`` into part
  files as they were produced and are concatenated, row group by row group, into one
  ``records.parquet`` (no ``records.jsonl``: at ~300 bytes a line it would be the
  largest file and the slowest to write); ``read_run`` reads such a folder like any other.

JSON is the standard library's (``allow_nan`` kept for records — a NaN time stays
NaN — and refused for summaries, which are NaN-free by contract).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import IO, Any, Iterable

from ._files import atomic_path, atomic_write_text
from .records import RequestRecord, RunMeta

__all__ = [
    "JsonlRecordWriter", "RecordList", "read_records_jsonl", "write_records_jsonl",
    "write_records_parquet", "read_records_parquet", "read_records", "write_run", "read_run", "Run",
    "RUN_FILES", "ParquetRecordWriter", "records_table", "concat_parquet", "write_run_parts",
]

RUN_FILES = ("meta.json", "records.jsonl", "records.parquet", "summary.json", "timeseries.json")
_FIELDS = tuple(f.name for f in fields(RequestRecord))


def _record_line(rec: RequestRecord | dict[str, Any]) -> str:
    d = rec if isinstance(rec, dict) else {k: getattr(rec, k) for k in _FIELDS}
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False) + "\n"


class JsonlRecordWriter:
    """Append records to a JSONL file, one line each, flushed as written.

    ``with JsonlRecordWriter(path, fsync=True) as w: w.write(record)``. The file is
    opened in append mode, so a resumed run keeps earlier lines; ``count`` is the
    number of records this writer wrote.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.count = 0
        self._fh: IO[str] | None = None

    def open(self) -> "JsonlRecordWriter":
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        return self

    def write(self, record: RequestRecord | dict[str, Any]) -> None:
        fh = self._fh if self._fh is not None else self.open()._fh
        assert fh is not None
        fh.write(_record_line(record))
        fh.flush()
        if self.fsync:
            os.fsync(fh.fileno())
        self.count += 1

    def write_many(self, records: Iterable[RequestRecord]) -> None:
        for r in records:
            self.write(r)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "JsonlRecordWriter":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecordList(list):
    """A list of records read from a file, with ``skipped_lines`` (unreadable lines,
    e.g. a truncated last line) and ``skipped_line_numbers`` (1-based)."""

    def __init__(self, records: Iterable[RequestRecord] = (), *,
                 skipped_line_numbers: Iterable[int] = ()) -> None:
        super().__init__(records)
        self.skipped_line_numbers: list[int] = list(skipped_line_numbers)

    @property
    def skipped_lines(self) -> int:
        return len(self.skipped_line_numbers)


def read_records_jsonl(path: str | os.PathLike[str], *, strict: bool = False) -> RecordList:
    """Records of a JSONL file. Blank lines are ignored; a line that is not a valid
    record (a crash mid-write) is skipped and counted in ``skipped_lines`` — or,
    with ``strict``, raises ``ValueError`` naming the line."""
    out = RecordList()
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                out.append(RequestRecord.from_dict(json.loads(raw)))
            except (ValueError, TypeError, UnicodeDecodeError) as exc:
                if strict:
                    raise ValueError(f"{path}:{lineno}: not a record ({exc})") from None
                out.skipped_line_numbers.append(lineno)
    return out


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def write_records_jsonl(records: Iterable[RequestRecord], path: str | os.PathLike[str]) -> None:
    """Write (replace) a JSONL file with ``records``, atomically."""
    _atomic_write_text(Path(path), "".join(_record_line(r) for r in records))


def _arrow_schema():  # noqa: ANN202 - pyarrow imported lazily
    import pyarrow as pa
    f64, i64, s = pa.float64(), pa.int64(), pa.string()
    return pa.schema([
        ("id", s), ("arrival_s", f64), ("input_tokens", i64), ("output_tokens", i64),
        ("status", s), ("reason", s), ("dispatch_s", f64), ("start_s", f64),
        ("first_token_s", f64), ("finish_s", f64), ("token_times_s", pa.list_(f64)),
        ("cached_tokens", i64), ("replica", s), ("priority", i64), ("adapter", s),
        ("retries", i64), ("extra", s),
    ])


def records_table(records: Iterable[RequestRecord]):  # noqa: ANN201 - pyarrow.Table, imported lazily
    """Records as one Arrow table of the Parquet schema (module docstring)."""
    import pyarrow as pa
    schema = _arrow_schema()
    recs = list(records)
    cols: dict[str, list[Any]] = {name: [getattr(r, name) for r in recs] for name in schema.names}
    memo: dict[int, tuple[dict[str, Any], str]] = {}
    extra = []
    for e in cols["extra"]:                 # records of one run often share one ``extra`` dict
        hit = memo.get(id(e))
        if hit is None or hit[0] is not e:
            hit = (e, json.dumps(e, separators=(",", ":"), ensure_ascii=False))
            memo[id(e)] = hit
        extra.append(hit[1])
    cols["extra"] = extra
    return pa.table(cols, schema=schema)


def write_records_parquet(records: Iterable[RequestRecord], path: str | os.PathLike[str]) -> None:
    """Write records to Parquet (schema in the module docstring), atomically."""
    import pyarrow.parquet as pq
    table = records_table(records)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


class ParquetRecordWriter:
    """Stream records into one Parquet file, one row group per ``write`` call.

    ``with ParquetRecordWriter(path) as w: w.write(batch)``. The file is written under
    a temporary name and renamed on ``close``, so a reader never sees a half file;
    ``count`` is the number of records written.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.count = 0
        self._tmp = self.path.with_name(self.path.name + ".part")
        self._writer: Any = None

    def write(self, records: Iterable[RequestRecord]) -> Any:
        """Append ``records`` as one row group; returns them as the Arrow table written."""
        import pyarrow.parquet as pq
        table = records_table(records)
        if table.num_rows == 0:
            return table
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._tmp, _arrow_schema())
        self._writer.write_table(table)
        self.count += table.num_rows
        return table

    def close(self) -> Path:
        import pyarrow.parquet as pq
        if self._writer is None:
            pq.write_table(_arrow_schema().empty_table(), self._tmp)
        else:
            self._writer.close()
            self._writer = None
        os.replace(self._tmp, self.path)
        return self.path

    def __enter__(self) -> "ParquetRecordWriter":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        elif self._writer is not None:
            self._writer.close()
            self._writer = None
            self._tmp.unlink(missing_ok=True)


def concat_parquet(parts: Iterable[str | os.PathLike[str]], dest: str | os.PathLike[str]) -> int:
    """Concatenate record Parquet files (same schema) into ``dest``, one row group at a
    time (memory: one row group), atomically; returns the number of rows."""
    import pyarrow.parquet as pq
    schema = _arrow_schema()
    rows = 0
    with atomic_path(dest) as tmp:
        with pq.ParquetWriter(tmp, schema) as w:
            for part in parts:
                f = pq.ParquetFile(part)
                for g in range(f.num_row_groups):
                    t = f.read_row_group(g)
                    w.write_table(t.cast(schema))
                    rows += t.num_rows
    return rows


def read_records_parquet(path: str | os.PathLike[str]) -> list[RequestRecord]:
    """Records of a Parquet file written by ``write_records_parquet``."""
    import pyarrow.parquet as pq
    rows = pq.read_table(path).to_pylist()
    for row in rows:
        row["extra"] = json.loads(row["extra"]) if row.get("extra") else {}
    return [RequestRecord.from_dict(row) for row in rows]


def read_records(path: str | os.PathLike[str]) -> list[RequestRecord]:
    """Records of a ``.jsonl`` or ``.parquet`` file, or of a run folder."""
    p = Path(path)
    if p.is_dir():
        return read_run(p).records
    if p.suffix == ".parquet":
        return read_records_parquet(p)
    if p.suffix in (".jsonl", ".json", ".ndjson"):
        return read_records_jsonl(p)
    raise ValueError(f"unknown records file {str(p)!r}; expected .jsonl, .parquet or a run folder")


@dataclass(frozen=True, kw_only=True)
class Run:
    """A run folder read back: metadata, records, summary, optional time series."""
    path: Path
    meta: RunMeta
    records: list[RequestRecord]
    summary: dict[str, Any]
    timeseries: dict[str, Any] | None = None
    skipped_lines: int = 0


def _json_default(o: Any) -> Any:
    """numpy scalars/arrays, paths, dataclasses and sets in metadata and summaries."""
    if hasattr(o, "item") and callable(o.item) and getattr(o, "ndim", 1) == 0:
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if is_dataclass(o) and not isinstance(o, type):
        return asdict(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON: {o!r}")


def _dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False, default=_json_default) + "\n"


def write_run(
    directory: str | os.PathLike[str],
    meta: RunMeta | dict[str, Any],
    records: Iterable[RequestRecord],
    summary: dict[str, Any],
    timeseries: dict[str, Any] | None = None,
) -> Path:
    """Write a run folder (see ``RUN_FILES``); returns its path. Raises
    ``ValueError`` if ``summary``/``timeseries`` hold NaN or infinity."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    recs = list(records)
    meta_d = meta.to_dict() if isinstance(meta, RunMeta) else dict(meta)
    _atomic_write_text(d / "meta.json", _dump_json(meta_d))
    write_records_jsonl(recs, d / "records.jsonl")
    write_records_parquet(recs, d / "records.parquet")
    _atomic_write_text(d / "summary.json", _dump_json(summary))
    if timeseries is not None:
        _atomic_write_text(d / "timeseries.json", _dump_json(timeseries))
    return d


def write_run_parts(
    directory: str | os.PathLike[str],
    meta: RunMeta | dict[str, Any],
    parts: Iterable[str | os.PathLike[str]],
    summary: dict[str, Any],
    timeseries: dict[str, Any] | None = None,
) -> Path:
    """Write a run folder whose records are already in Parquet part files
    (``ParquetRecordWriter``): they become one ``records.parquet`` (module docstring)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta_d = meta.to_dict() if isinstance(meta, RunMeta) else dict(meta)
    summary_text = _dump_json(summary)      # NaN/inf refused before anything is written
    concat_parquet(parts, d / "records.parquet")
    (d / "records.jsonl").unlink(missing_ok=True)   # a stale one would shadow the new records
    _atomic_write_text(d / "meta.json", _dump_json(meta_d))
    _atomic_write_text(d / "summary.json", summary_text)
    if timeseries is not None:
        _atomic_write_text(d / "timeseries.json", _dump_json(timeseries))
    return d


def read_run(directory: str | os.PathLike[str]) -> Run:
    """Read a run folder. Records come from ``records.jsonl`` (crash-safe; skipped
    lines counted) or, without it, ``records.parquet``; a missing summary is {}."""
    d = Path(directory)
    if not (d / "meta.json").exists():
        raise FileNotFoundError(f"{d} is not a run folder: no meta.json (expected {', '.join(RUN_FILES)})")
    meta = RunMeta.from_dict(json.loads((d / "meta.json").read_text(encoding="utf-8")))
    skipped = 0
    if (d / "records.jsonl").exists():
        recs = read_records_jsonl(d / "records.jsonl")
        skipped = recs.skipped_lines
        records: list[RequestRecord] = list(recs)
    elif (d / "records.parquet").exists():
        records = read_records_parquet(d / "records.parquet")
    else:
        records = []
    summary = json.loads((d / "summary.json").read_text(encoding="utf-8")) if (d / "summary.json").exists() else {}
    ts = json.loads((d / "timeseries.json").read_text(encoding="utf-8")) if (d / "timeseries.json").exists() else None
    return Run(path=d, meta=meta, records=records, summary=summary, timeseries=ts, skipped_lines=skipped)
