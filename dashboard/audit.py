"""The dashboard's own records: who viewed or exported what, and which findings were reviewed.

They live in `<data_dir>/dashboard-audit.duckdb`, never in the warehouse Parquet (which the
dashboard only reads). Each write opens and closes the file, so other processes (a test, an
auditor's `duckdb` shell) can read it in between.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from voxledger.config import Settings
from voxledger.errors import VoxLedgerError

FILE_NAME = "dashboard-audit.duckdb"
ACTIONS = ("view_transcript", "export_pdf", "export_json", "export_residency_csv")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS access_audit (
    who VARCHAR NOT NULL, role VARCHAR NOT NULL, action VARCHAR NOT NULL,
    target VARCHAR NOT NULL, "at" TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE TABLE IF NOT EXISTS reviews (
    finding_id VARCHAR NOT NULL, reviewer VARCHAR NOT NULL, comment VARCHAR NOT NULL,
    "at" TIMESTAMP WITH TIME ZONE NOT NULL
);
"""
# One writer at a time inside this process (Streamlit runs each browser session in a thread).
_LOCK = threading.Lock()


class AuditError(VoxLedgerError):
    """The dashboard's audit file cannot be written or read."""


def audit_path(settings: Settings) -> Path:
    return settings.data_dir / FILE_NAME


@contextmanager
def _open(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    path = audit_path(settings)
    with _LOCK:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(str(path))
            con.execute(_SCHEMA)
        except (OSError, duckdb.Error) as exc:
            raise AuditError(f"cannot open the access-audit file {path}: {exc}") from None
        try:
            yield con
        finally:
            con.close()


def record_access(settings: Settings, who: str, role: str, action: str, target: str) -> None:
    """One transcript view or export; `action` is one of ACTIONS."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    with _open(settings) as con:
        con.execute(
            "INSERT INTO access_audit VALUES (?, ?, ?, ?, ?)",
            [who, role, action, target, datetime.now(UTC)],
        )


def record_review(settings: Settings, finding_id: str, reviewer: str, comment: str) -> None:
    """Mark a finding reviewed; a comment is required (it is the reviewer's reasoning)."""
    if not comment.strip():
        raise AuditError("a review needs a comment")
    with _open(settings) as con:
        con.execute(
            "INSERT INTO reviews VALUES (?, ?, ?, ?)",
            [finding_id, reviewer, comment.strip(), datetime.now(UTC)],
        )


def reviewed_ids(settings: Settings) -> list[str]:
    if not audit_path(settings).is_file():
        return []
    with _open(settings) as con:
        return [row[0] for row in con.execute("SELECT DISTINCT finding_id FROM reviews").fetchall()]


def access_log(settings: Settings, limit: int = 1000) -> list[dict[str, Any]]:
    return _select(settings, 'SELECT * FROM access_audit ORDER BY "at" DESC LIMIT ?', limit)


def reviews(settings: Settings, limit: int = 1000) -> list[dict[str, Any]]:
    return _select(settings, 'SELECT * FROM reviews ORDER BY "at" DESC LIMIT ?', limit)


def _select(settings: Settings, sql: str, limit: int) -> list[dict[str, Any]]:
    if not audit_path(settings).is_file():
        return []
    with _open(settings) as con:
        result = con.execute(sql, [limit])
        names = [d[0] for d in result.description]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
