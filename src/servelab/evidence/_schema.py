"""SQL schema of the evidence ledger (documented table by table in ledger.py and docs/evidence.md)."""

from __future__ import annotations

__all__ = ["SCHEMA_SQL", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL,
    fingerprint TEXT, scenario TEXT, config_json TEXT NOT NULL, versions_json TEXT NOT NULL,
    git_commit TEXT, catalog_hash TEXT, host TEXT, pid INTEGER, pid_start TEXT,
    gpu TEXT, engine_version TEXT, started_at TEXT NOT NULL, finished_at TEXT,
    duration_s REAL, n_records INTEGER, error TEXT
);
CREATE INDEX IF NOT EXISTS runs_fp ON runs(fingerprint, status);
CREATE TABLE IF NOT EXISTS records (
    run_id TEXT PRIMARY KEY REFERENCES runs(id), format TEXT NOT NULL, path TEXT,
    sha256 TEXT NOT NULL, n_rows INTEGER NOT NULL, inline BLOB, meta_json TEXT
);
CREATE TABLE IF NOT EXISTS claims (
    id TEXT PRIMARY KEY, decision TEXT, text TEXT, spec_json TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verdicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, claim_id TEXT NOT NULL REFERENCES claims(id),
    judged_at TEXT NOT NULL, verdict TEXT NOT NULL, simulation_only INTEGER NOT NULL,
    value REAL, ci_lo REAL, ci_hi REAL, threshold REAL, margin REAL, margin_rel REAL,
    evidence_kind TEXT, run_ids_json TEXT NOT NULL, reason TEXT, detail_json TEXT
);
CREATE INDEX IF NOT EXISTS verdicts_claim ON verdicts(claim_id, id);
CREATE TABLE IF NOT EXISTS calibration (
    id INTEGER PRIMARY KEY AUTOINCREMENT, claim_id TEXT, scenario TEXT, metric TEXT NOT NULL,
    measured_value REAL, simulated_value REAL, rel_diff REAL, measured_run TEXT,
    simulated_run TEXT, recorded_at TEXT NOT NULL
);
"""
