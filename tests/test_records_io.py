"""JSONL streaming (crash safety), Parquet round trip, run folders."""

from __future__ import annotations

import json
import math

import pytest

from servelab.metrics import summarize, timeseries_from_records
from servelab.recordio import (JsonlRecordWriter, read_records_jsonl, read_records_parquet, read_run,
                               write_records_parquet, write_run)
from servelab.records import RequestRecord, RunMeta


def recs() -> list[RequestRecord]:
    return [
        RequestRecord(id="a", arrival_s=0.0, dispatch_s=0.001, start_s=0.01, first_token_s=0.25,
                      finish_s=0.5, input_tokens=12, output_tokens=3, token_times_s=[0.25, 0.4, 0.5],
                      cached_tokens=8, replica="r0", priority=1, adapter="sql-lora", retries=1,
                      extra={"http_status": 200, "tags": ["x", "ü"]}),
        RequestRecord(id="b", arrival_s=0.1, input_tokens=40, status="rejected", reason="503 queue full",
                      finish_s=0.1),
        RequestRecord(id="c", arrival_s=0.2, input_tokens=5, status="cancelled", reason="run stopped"),
    ]


def test_jsonl_writer_flushes_each_record_and_reader_skips_truncated_tail(tmp_path):
    path = tmp_path / "run" / "records.jsonl"
    w = JsonlRecordWriter(path, fsync=True).open()
    w.write(recs()[0])
    # Not closed yet: a crash now must still leave the first record on disk.
    assert read_records_jsonl(path) == recs()[:1]
    w.write(recs()[1])
    w.close()
    with open(path, "a", encoding="utf-8") as fh:             # a crash mid-write
        fh.write('{"id": "c", "arrival_s": 0.2, "inpu')
    got = read_records_jsonl(path)
    assert got == recs()[:2]
    assert got.skipped_lines == 1 and got.skipped_line_numbers == [3]
    with pytest.raises(ValueError, match=":3:"):
        read_records_jsonl(path, strict=True)


def test_jsonl_writer_appends_and_counts(tmp_path):
    path = tmp_path / "r.jsonl"
    with JsonlRecordWriter(path) as w:
        w.write(recs()[0])
    with JsonlRecordWriter(path) as w:
        w.write_many(recs()[1:])
        assert w.count == 2
    assert read_records_jsonl(path) == recs()
    assert len(path.read_text().splitlines()) == 3


def test_parquet_round_trip_and_schema(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    p = tmp_path / "r.parquet"
    write_records_parquet(recs(), p)
    assert read_records_parquet(p) == recs()
    schema = pq.read_schema(p)
    assert schema.field("token_times_s").type == pa.list_(pa.float64())
    assert schema.field("extra").type == pa.string()
    assert json.loads(pq.read_table(p).column("extra")[0].as_py()) == {"http_status": 200, "tags": ["x", "ü"]}
    write_records_parquet([], tmp_path / "empty.parquet")
    assert read_records_parquet(tmp_path / "empty.parquet") == []


def test_run_folder_round_trip(tmp_path):
    meta = RunMeta(run_id="sim-1", kind="simulate", started_at="2026-01-01T00:00:00Z", duration_s=1.0,
                   complete=True, config={"rate": 2.0})
    s = summarize(recs(), duration_s=1.0)
    ts = timeseries_from_records(recs(), 0.25)
    d = write_run(tmp_path / "run", meta, recs(), s, ts)
    assert sorted(p.name for p in d.iterdir()) == ["meta.json", "records.jsonl", "records.parquet",
                                                   "summary.json", "timeseries.json"]
    run = read_run(d)
    assert run.meta == meta and run.records == recs() and run.summary == s and run.timeseries == ts
    from servelab.recordio import read_records
    assert read_records(d) == read_records(d / "records.parquet") == read_records(d / "records.jsonl") == recs()
    with pytest.raises(ValueError, match="csv"):
        read_records(tmp_path / "x.csv")
    (d / "records.jsonl").unlink()                             # falls back to Parquet
    assert read_run(d).records == recs()
    with pytest.raises(FileNotFoundError, match="meta.json"):
        read_run(tmp_path)


def test_summary_with_nan_is_refused(tmp_path):
    meta = RunMeta(run_id="x", kind="bench", started_at="2026")
    with pytest.raises(ValueError):
        write_run(tmp_path / "bad", meta, recs(), {"ttft_p95": math.nan})


def test_records_survive_a_killed_writer(tmp_path):
    """A writer process killed with SIGKILL (no close, no atexit) keeps every record written."""
    import signal
    import subprocess
    import sys
    path = tmp_path / "records.jsonl"
    code = (
        "import os, signal\n"
        "from servelab.recordio import JsonlRecordWriter\n"
        "from servelab.records import RequestRecord\n"
        f"w = JsonlRecordWriter({str(path)!r}).open()\n"
        "for i in range(50):\n"
        "    w.write(RequestRecord(id=str(i), arrival_s=i * 0.1, input_tokens=i))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    got = read_records_jsonl(path)
    assert [r.id for r in got] == [str(i) for i in range(50)] and got.skipped_lines == 0
