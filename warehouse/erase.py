"""GDPR erasure: rewrite the Parquet files without a session's (or a subject's) rows, and
remember the erasure so neither the sink nor a rebuild ever writes those rows again.

Scopes:
- `session`: every row whose session_id is the session, in every base table; rows with no
  session_id (a dead letter the sink could not parse) go too when their text names it.
- `subject`: a pseudonym such as `<PERSON_4821>`. Pseudonyms are drawn per session, so the
  same token in two sessions may be two people: erasing whole sessions would erase strangers.
  Instead every row, of any table, whose text columns contain the exact token is removed.

Order: the erasure is appended to the erasure list first (so a sink flushing from then on
already drops the rows), then the files are rewritten, then the audit row is written. A file
left with no rows is kept, empty: its name still marks the offset range it covers.

The topics still hold the erased records; the erasure list keeps them out of the warehouse on
every replay and rebuild. Kafka log compaction cannot remove them: it keeps the latest record
per key, and these topics are event logs keyed by session_id, so compaction would collapse
every session to its last record. To purge them from Kafka itself, copy the topic without the
erased sessions to a new topic and switch to it, or let retention expire them. A tombstone
(null value) the sink reads becomes a dead-letter row, never data.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from voxledger.config import Settings
from voxledger.errors import VoxLedgerError
from voxledger.warehouse.schema import BASE_TABLES, ERASURES, SCHEMAS, conform
from voxledger.warehouse.storage import ERASURE_LIST, Store, open_store

__all__ = ["ErasureError", "ErasureList", "ErasureResult", "erase"]

Scope = Literal["session", "subject"]
PSEUDONYM = re.compile(r"^<[A-Z][A-Z0-9_]*_\d+>$")


class ErasureError(VoxLedgerError):
    """An erasure request that cannot be carried out as asked."""


@dataclass(frozen=True)
class ErasureList:
    """The sessions and subjects erased so far; rows matching them are never written."""

    sessions: frozenset[str] = frozenset()
    subjects: frozenset[str] = frozenset()

    @classmethod
    def load(cls, store: Store) -> ErasureList:
        return cls.parse(store.read_bytes(store.path(ERASURE_LIST)) or b"")

    @classmethod
    def parse(cls, data: bytes) -> ErasureList:
        sessions, subjects = set(), set()
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = orjson.loads(line)
                scope, target = entry["scope"], entry["target"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise ErasureError(
                    f"{ERASURE_LIST} line {number} is not an erasure entry; "
                    "fix it by hand (it decides which rows are never written again)"
                ) from None
            (sessions if scope == "session" else subjects).add(target)
        return cls(frozenset(sessions), frozenset(subjects))

    def __bool__(self) -> bool:
        return bool(self.sessions or self.subjects)

    def erased(self, table: pa.Table) -> pa.ChunkedArray | pa.Array:
        """A boolean mask: which rows of `table` fall under an erasure."""
        mask = pa.array([False] * table.num_rows, pa.bool_())
        texts = [
            n
            for n, t in zip(table.column_names, table.schema.types, strict=True)
            if t == pa.string()
        ]
        if self.sessions and "session_id" in table.column_names:
            ids = table["session_id"]
            mask = pc.or_(mask, pc.fill_null(pc.is_in(ids, pa.array(sorted(self.sessions))), False))
            named = _contains_any(table, texts, self.sessions)
            mask = pc.or_(mask, pc.and_(pc.is_null(ids), named))
        if self.subjects:
            mask = pc.or_(mask, _contains_any(table, texts, self.subjects))
        return mask

    def apply(self, table: pa.Table) -> tuple[pa.Table, int]:
        """`table` without erased rows, and how many were removed."""
        if not self or table.num_rows == 0:
            return table, 0
        mask = self.erased(table)
        removed = pc.sum(mask).as_py() or 0
        return (table.filter(pc.invert(mask)), removed) if removed else (table, 0)


def _contains_any(table: pa.Table, columns: list[str], needles: frozenset[str]) -> pa.Array:
    pattern = "|".join(re.escape(n) for n in sorted(needles))
    mask = pa.array([False] * table.num_rows, pa.bool_())
    for name in columns:
        hit = pc.fill_null(pc.match_substring_regex(table[name], pattern), False)
        mask = pc.or_(mask, hit)
    return mask


@dataclass(frozen=True)
class ErasureResult:
    erasure_id: str
    scope: Scope
    target: str
    rows_removed: int
    files_rewritten: int


def erase(settings: Settings, *, scope: Scope, target: str, requested_by: str) -> ErasureResult:
    """Erase a session or a subject from every base table, and record who asked and when."""
    _check(scope, target, requested_by)
    store = open_store(settings)
    erased_at = datetime.now(UTC)
    _append_to_list(store, scope, target, erased_at)
    only = ErasureList(
        frozenset([target]) if scope == "session" else frozenset(),
        frozenset([target]) if scope == "subject" else frozenset(),
    )
    rows, files = 0, 0
    for data_file in store.list_files(BASE_TABLES):
        table = store.read_table(data_file.path)
        kept, removed = only.apply(table)
        if removed:
            store.write_table(data_file.path, conform(kept, data_file.table))
            rows += removed
            files += 1
    result = ErasureResult(str(uuid.uuid4()), scope, target, rows, files)
    _record(store, result, erased_at, requested_by)
    return result


def _check(scope: str, target: str, requested_by: str) -> None:
    if scope not in ("session", "subject"):
        raise ErasureError(f"unknown erasure scope {scope!r}: use session or subject")
    if not target.strip():
        raise ErasureError(f"the {scope} to erase is empty")
    if scope == "subject" and not PSEUDONYM.match(target):
        raise ErasureError(
            f"{target!r} is not a pseudonym: a subject is named by its token, as in <PERSON_4821>"
        )
    if not requested_by.strip():
        raise ErasureError("say who requests the erasure (--by NAME)")


def _append_to_list(store: Store, scope: str, target: str, erased_at: datetime) -> None:
    path = store.path(ERASURE_LIST)
    before = store.read_bytes(path) or b""
    if before and not before.endswith(b"\n"):
        before += b"\n"
    entry = {"scope": scope, "target": target, "erased_at": erased_at.isoformat()}
    store.write_bytes(path, before + orjson.dumps(entry) + b"\n")


def _record(store: Store, result: ErasureResult, erased_at: datetime, requested_by: str) -> None:
    row = {
        "erasure_id": result.erasure_id,
        "erased_at": erased_at,
        "requested_by": requested_by,
        "scope": result.scope,
        "target": result.target,
        "rows_removed": result.rows_removed,
        "files_rewritten": result.files_rewritten,
    }
    micros = int(erased_at.timestamp() * 1_000_000)
    name = f"erasure-{micros:020d}-{result.erasure_id}.parquet"
    path = store.path(ERASURES, f"date={erased_at.date().isoformat()}", name)
    store.write_table(path, pa.Table.from_pylist([row], schema=SCHEMAS[ERASURES]))
