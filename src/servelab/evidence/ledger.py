"""The evidence ledger: an embedded SQLite database of runs, records, claims and verdicts.

Location: ``--ledger PATH``, else ``$SERVELAB_LEDGER``, else ``.servelab/ledger.sqlite``
under the current directory (:func:`default_ledger_path`).

Tables (schema version 1; see docs/evidence.md):

- ``runs`` — one row per experiment run: id, kind (simulate | bench | import-vllm |
  import-guidellm | kernels), status (running | complete | incomplete | failed),
  fingerprint (sha256 of the experiment's scrubbed config, used to reuse runs),
  scenario, config JSON (scrubbed), versions JSON, git commit, catalog hash, host, pid,
  GPU, engine version, started/finished (ISO-8601 UTC), duration_s, n_records, error.
- ``records`` — one row per run with records: either ``format='inline'`` (gzip-
  compressed JSON of the record dicts, for runs of at most :data:`INLINE_MAX_RECORDS`
  records) or ``format='parquet'`` (a path relative to the ledger's directory, written
  by ``servelab.recordio``); both with the sha256 of the stored bytes, checked on read.
- ``claims`` — one row per claim id (spec JSON, decision file, text).
- ``verdicts`` — append-only history: every judgement with its timestamp.
- ``calibration`` — measured vs simulated value of the same metric on the same
  scenario, whenever both exist (the disagreement is calibration data).

Concurrency: WAL journal, ``busy_timeout`` of 30 s, every write is one short
``BEGIN IMMEDIATE`` transaction, and no transaction spans experiment work. A run is
inserted as ``running`` before its work and updated to ``complete`` after; a process
that dies in between leaves ``running`` behind, which the next open turns into
``incomplete`` when the row's host is this host and its pid is gone (or now belongs to
another process, detected by the process start time). Rows from other hosts are left
alone. Nothing secret is stored: configs pass through :func:`~._scrub.scrub`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import LedgerError
from ..records import RequestRecord
from ._liveness import pid_alive, proc_start
from ._provenance import catalog_hash, git_commit, hostname, versions
from ._schema import SCHEMA_SQL, SCHEMA_VERSION
from ._scrub import scrub

__all__ = [
    "Ledger", "default_ledger_path", "open_existing", "utc_now", "INLINE_MAX_RECORDS", "RUN_STATUSES",
    "SCHEMA_VERSION",
]

INLINE_MAX_RECORDS = 1000      # larger runs go to a Parquet file next to the ledger
RUN_STATUSES = ("running", "complete", "incomplete", "failed")
BUSY_TIMEOUT_MS = 30_000


def utc_now() -> str:
    """ISO-8601 UTC timestamp with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def default_ledger_path() -> Path:
    """``$SERVELAB_LEDGER`` or ``./.servelab/ledger.sqlite``."""
    env = os.environ.get("SERVELAB_LEDGER")
    return Path(env) if env else Path.cwd() / ".servelab" / "ledger.sqlite"


def open_existing(path: str | Path | None = None) -> "Ledger":
    """The ledger at ``path`` (default :func:`default_ledger_path`) for reading: a missing
    file is a ``LedgerError`` instead of a new empty ledger (and folder) at a mistyped path."""
    where = path if path is not None else default_ledger_path()
    if not Path(where).is_file():
        raise LedgerError(f"no ledger at {where}; `servelab decide FILE` creates one "
                          "(the ledger is --ledger PATH, else $SERVELAB_LEDGER, else .servelab/ledger.sqlite)")
    return Ledger(path)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


class Ledger:
    """One open ledger database. Safe to open from many processes at once."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_ledger_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._setup()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise LedgerError(f"{self.path} is not a servelab ledger ({exc}); give --ledger a ledger file "
                              "or a new path") from None
        self.mark_stale_runs()

    # -- plumbing -------------------------------------------------------------------
    def _setup(self) -> None:
        for attempt in range(50):
            try:
                mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise LedgerError(f"ledger {self.path}: WAL mode refused (got {mode!r})")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 49:
                    raise LedgerError(f"cannot set up ledger {self.path}: {exc}") from exc
                time.sleep(0.05 * (attempt + 1))
        with self._tx() as db:
            for stmt in SCHEMA_SQL.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                       (str(SCHEMA_VERSION),))
        version = self._db.execute(
            "SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        if int(version) != SCHEMA_VERSION:
            raise LedgerError(f"ledger {self.path} has schema version {version}; "
                              f"this servelab reads version {SCHEMA_VERSION}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction (BEGIN IMMEDIATE takes the write lock up front)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LedgerError(f"ledger {self.path} is busy: {exc}") from exc
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` result (``"ok"`` when intact)."""
        return self._db.execute("PRAGMA integrity_check").fetchone()[0]

    @property
    def store_dir(self) -> Path:
        """Directory holding the Parquet files of large runs."""
        return self.path.parent / "runs"

    # -- runs -----------------------------------------------------------------------
    def start_run(
        self, *, kind: str, config: dict[str, Any], fingerprint: str | None = None,
        scenario: str | None = None, gpu: str | None = None, engine_version: str | None = None,
    ) -> str:
        """Insert a run as ``running`` (before any work) and return its id."""
        run_id = f"{kind}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        pid = os.getpid()
        row = (run_id, kind, "running", fingerprint, scenario, _dumps(scrub(config)),
               _dumps(versions()), git_commit(), catalog_hash(), hostname(), pid,
               proc_start(pid), gpu, engine_version, utc_now())   # computed outside the lock
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs(id, kind, status, fingerprint, scenario, config_json,"
                " versions_json, git_commit, catalog_hash, host, pid, pid_start, gpu,"
                " engine_version, started_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
        return run_id

    def finish_run(
        self, run_id: str, *, status: str = "complete", duration_s: float | None = None,
        n_records: int | None = None, error: str = "",
    ) -> None:
        """Mark a run ``complete`` (or ``failed``/``incomplete`` with an error)."""
        if status not in RUN_STATUSES or status == "running":
            raise LedgerError(f"cannot finish run with status {status!r}; "
                              f"valid: complete, incomplete, failed")
        with self._tx() as db:
            cur = db.execute(
                "UPDATE runs SET status=?, finished_at=?, duration_s=?, n_records=?, error=?"
                " WHERE id=?",
                (status, utc_now(), duration_s, n_records, str(scrub(error)), run_id),
            )
            if cur.rowcount != 1:
                raise LedgerError(f"unknown run {run_id!r}")

    def set_run_info(self, run_id: str, *, gpu: str | None = None,
                     engine_version: str | None = None) -> None:
        """Record what a run learned while running (GPU name, engine version)."""
        with self._tx() as db:
            db.execute("UPDATE runs SET gpu=COALESCE(?, gpu), engine_version=COALESCE(?,"
                       " engine_version) WHERE id=?", (gpu, engine_version or None, run_id))

    def mark_stale_runs(self) -> list[str]:
        """Turn ``running`` rows of dead processes on this host into ``incomplete``."""
        host = hostname()
        rows = self._db.execute(
            "SELECT id, pid, pid_start FROM runs WHERE status='running' AND host=?", (host,)
        ).fetchall()
        stale = [r["id"] for r in rows
                 if r["pid"] is None or not pid_alive(int(r["pid"]), r["pid_start"])]
        if stale:
            with self._tx() as db:
                for run_id in stale:
                    db.execute(
                        "UPDATE runs SET status='incomplete', error=? WHERE id=? AND status='running'",
                        ("process ended while the run was running", run_id),
                    )
        return stale

    def run(self, run_id: str) -> dict[str, Any]:
        """One run as a dict (config/versions decoded); LedgerError if unknown."""
        row = self._db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise LedgerError(f"unknown run {run_id!r}")
        return self._run_dict(row)

    def runs(self, *, kind: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM runs WHERE 1=1", []
        if kind:
            sql, args = sql + " AND kind=?", [*args, kind]
        if status:
            sql, args = sql + " AND status=?", [*args, status]
        return [self._run_dict(r) for r in self._db.execute(sql + " ORDER BY started_at", args)]

    def find_complete_run(self, fingerprint: str) -> dict[str, Any] | None:
        """The latest complete run with this fingerprint, if any."""
        row = self._db.execute(
            "SELECT * FROM runs WHERE fingerprint=? AND status='complete'"
            " ORDER BY finished_at DESC LIMIT 1", (fingerprint,)
        ).fetchone()
        return self._run_dict(row) if row else None

    @staticmethod
    def _run_dict(row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        d["config"] = json.loads(d.pop("config_json"))
        d["versions"] = json.loads(d.pop("versions_json"))
        return d

    # -- records --------------------------------------------------------------------
    def store_records(
        self, run_id: str, records: Sequence[RequestRecord], *, meta: dict[str, Any] | None = None
    ) -> None:
        """Keep a run's records: inline when small, else a Parquet file (see module doc)."""
        meta_json = _dumps(scrub(meta or {}))
        if len(records) <= INLINE_MAX_RECORDS:
            blob = gzip.compress(json.dumps([r.to_dict() for r in records]).encode(), mtime=0)
            row = (run_id, "inline", None, hashlib.sha256(blob).hexdigest(), len(records),
                   blob, meta_json)
        else:
            from .. import recordio  # written by the records owner; only needed for big runs
            from ._provenance import file_sha256

            self.store_dir.mkdir(parents=True, exist_ok=True)
            path = self.store_dir / f"{run_id}.parquet"
            recordio.write_records_parquet(list(records), path)
            row = (run_id, "parquet", str(path.relative_to(self.path.parent)),
                   file_sha256(path), len(records), None, meta_json)
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO records(run_id, format, path, sha256, n_rows,"
                       " inline, meta_json) VALUES (?,?,?,?,?,?,?)", row)

    def store_rows(self, run_id: str, rows: Sequence[dict[str, Any]]) -> None:
        """Keep non-request rows inline (kernel-lab results)."""
        blob = gzip.compress(_dumps(scrub(list(rows))).encode(), mtime=0)
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO records(run_id, format, path, sha256, n_rows,"
                       " inline, meta_json) VALUES (?,?,?,?,?,?,?)",
                       (run_id, "rows", None, hashlib.sha256(blob).hexdigest(), len(rows),
                        blob, "{}"))

    def _records_row(self, run_id: str) -> sqlite3.Row:
        row = self._db.execute("SELECT * FROM records WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            raise LedgerError(f"run {run_id!r} has no stored records")
        return row

    def records_meta(self, run_id: str) -> dict[str, Any]:
        return json.loads(self._records_row(run_id)["meta_json"] or "{}")

    def load_records(self, run_id: str) -> list[RequestRecord]:
        """The run's records; LedgerError when missing or their hash does not match."""
        row = self._records_row(run_id)
        if row["format"] == "inline":
            blob = row["inline"]
            if hashlib.sha256(blob).hexdigest() != row["sha256"]:
                raise LedgerError(f"records of run {run_id!r} do not match their sha256")
            return [RequestRecord.from_dict(d) for d in json.loads(gzip.decompress(blob))]
        if row["format"] == "parquet":
            from .. import recordio
            from ._provenance import file_sha256

            path = self.path.parent / row["path"]
            if not path.exists():
                raise LedgerError(f"records file of run {run_id!r} is missing: {path}")
            if file_sha256(path) != row["sha256"]:
                raise LedgerError(f"records file {path} does not match its sha256 "
                                  f"(changed since run {run_id!r} stored it)")
            return list(recordio.read_records_parquet(path))
        raise LedgerError(f"run {run_id!r} stores {row['format']!r} rows, not request records")

    def load_rows(self, run_id: str) -> list[dict[str, Any]]:
        row = self._records_row(run_id)
        if row["format"] != "rows":
            raise LedgerError(f"run {run_id!r} stores request records, not rows")
        if hashlib.sha256(row["inline"]).hexdigest() != row["sha256"]:
            raise LedgerError(f"rows of run {run_id!r} do not match their sha256")
        return json.loads(gzip.decompress(row["inline"]))

    # -- claims and verdicts ---------------------------------------------------------
    def check_claim_owner(self, claim_id: str, decision: str) -> None:
        """LedgerError when ``claim_id`` is already a claim of another decision."""
        row = self._db.execute("SELECT decision FROM claims WHERE id=?", (claim_id,)).fetchone()
        if row is not None and row["decision"] and decision and row["decision"] != decision:
            raise LedgerError(
                f"claim id {claim_id!r} already belongs to decision {row['decision']!r} in this ledger; "
                f"decision {decision!r} must use another claim id (claim ids are unique per decision "
                "name, so that verdict histories never mix)")

    def upsert_claim(self, claim_id: str, *, spec: dict[str, Any], decision: str = "",
                     text: str = "") -> None:
        now = utc_now()
        with self._tx() as db:
            self.check_claim_owner(claim_id, decision)
            db.execute(
                "INSERT INTO claims(id, decision, text, spec_json, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET decision=excluded.decision,"
                " text=excluded.text, spec_json=excluded.spec_json, updated_at=excluded.updated_at",
                (claim_id, decision, text, _dumps(scrub(spec)), now, now),
            )

    def add_verdict(self, claim_id: str, v: dict[str, Any]) -> int:
        """Append one judgement (keys as in ``Verdict.to_dict``); returns its row id."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO verdicts(claim_id, judged_at, verdict, simulation_only, value,"
                " ci_lo, ci_hi, threshold, margin, margin_rel, evidence_kind, run_ids_json,"
                " reason, detail_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (claim_id, utc_now(), v["verdict"], int(bool(v.get("simulation_only"))),
                 v.get("value"), v.get("ci_lo"), v.get("ci_hi"), v.get("threshold"),
                 v.get("margin"), v.get("margin_rel"), v.get("evidence_kind"),
                 _dumps(list(v.get("run_ids", []))), v.get("reason", ""),
                 _dumps(scrub(v.get("detail", {})))),
            )
            return int(cur.lastrowid)

    def add_calibration(self, *, claim_id: str, scenario: str, metric: str,
                        measured_value: float, simulated_value: float, rel_diff: float | None,
                        measured_run: str, simulated_run: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO calibration(claim_id, scenario, metric, measured_value,"
                " simulated_value, rel_diff, measured_run, simulated_run, recorded_at)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (claim_id, scenario, metric, measured_value, simulated_value, rel_diff,
                 measured_run, simulated_run, utc_now()),
            )

    def claims(self) -> list[dict[str, Any]]:
        """Every claim with its latest verdict (``latest`` is None if never judged)."""
        out = []
        for row in self._db.execute("SELECT * FROM claims ORDER BY id"):
            d = dict(row)
            d["spec"] = json.loads(d.pop("spec_json"))
            hist = self.verdicts(d["id"], limit=1)
            d["latest"] = hist[0] if hist else None
            out.append(d)
        return out

    def claim(self, claim_id: str) -> dict[str, Any]:
        row = self._db.execute("SELECT * FROM claims WHERE id=?", (claim_id,)).fetchone()
        if row is None:
            raise LedgerError(f"unknown claim {claim_id!r}")
        d = dict(row)
        d["spec"] = json.loads(d.pop("spec_json"))
        return d

    def item(self, item_id: str) -> dict[str, Any]:
        """A run (``{"run": …, "records": {"meta_keys": […]}}``, records when stored) or else
        a claim with its verdict history (``{"claim": …, "verdicts": […]}``); ``LedgerError``
        when the id is neither."""
        try:
            obj: dict[str, Any] = {"run": self.run(item_id)}
            try:
                obj["records"] = {"meta_keys": sorted(self.records_meta(item_id))}
            except LedgerError:
                pass
            return obj
        except LedgerError:
            try:
                return {"claim": self.claim(item_id), "verdicts": self.verdicts(item_id)}
            except LedgerError:
                raise LedgerError(f"no run or claim with id {item_id!r}; "
                                  "see `servelab ledger runs` / `servelab ledger claims`") from None

    def verdicts(self, claim_id: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Verdict history of a claim, newest first."""
        sql = "SELECT * FROM verdicts WHERE claim_id=? ORDER BY id DESC"
        rows = self._db.execute(sql + (f" LIMIT {int(limit)}" if limit else ""), (claim_id,))
        out = []
        for r in rows:
            d = dict(r)
            d["run_ids"] = json.loads(d.pop("run_ids_json"))
            d["detail"] = json.loads(d.pop("detail_json") or "{}")
            d["simulation_only"] = bool(d["simulation_only"])
            out.append(d)
        return out

    def calibration(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM calibration ORDER BY id")]

    def dump_text(self) -> str:
        """Every stored text value concatenated (used to check that no secret is stored)."""
        parts = []
        for table in ("runs", "records", "claims", "verdicts", "calibration", "meta"):
            for row in self._db.execute(f"SELECT * FROM {table}"):
                for value in row:
                    if isinstance(value, bytes):
                        try:
                            value = gzip.decompress(value).decode()
                        except OSError:
                            value = value.decode(errors="replace")
                    parts.append(str(value))
        return "\n".join(parts)
