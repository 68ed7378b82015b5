"""The warehouse's on-disk contract: Parquet schemas of the base tables, and Kafka record → row.

Layout (under the warehouse root: Settings.warehouse.url, default `<data_dir>/warehouse`)::

    <root>/<table>/date=YYYY-MM-DD/<topic>+<partition>+<first:020d>-<last:020d>.parquet
    <root>/erasures/date=YYYY-MM-DD/erasure-<erased_at_us:020d>-<erasure_id>.parquet
    <root>/_erasure_list.jsonl        the erasure list the sink and rebuild honour (not a table)

- No `tenant=` level: findings and cost records carry no tenant, so every table has the
  same two levels (`<table>/date=`); filter by tenant through the `sessions` view.
- `date` exists only as the hive partition (read with `hive_partitioning=true,
  union_by_name=true`; DuckDB types it DATE). It is the UTC date of the row's `observed_at`
  (events, findings, costs, dead letters), else of the Kafka record's timestamp (verdicts,
  session summaries, and records whose observed_at is missing).
- `<first>-<last>` is the range of Kafka offsets (positions) the sink's batch covered for
  that topic partition; every table fed by the batch gets a file of that name (only tables
  that received rows). A file may hold zero rows (an erasure emptied it): it still marks its
  range. Offsets are zero-padded to 20 digits, so names sort by offset.
- A file whose range lies inside the range of another file of the same table, topic and
  partition is *covered*: compaction wrote the larger one and was about to remove it.
  Readers that must never double count list files with
  `voxledger.warehouse.storage.live_files()`, which skips covered files; the sink and the
  compactor delete covered files when they find them.
- Every base table has one row per Kafka record and ends with `kafka_topic`,
  `kafka_partition` INT, `kafka_offset` BIGINT, `kafka_timestamp` TIMESTAMPTZ; the first
  three are a unique key of the table. Timestamps are UTC, microseconds. JSON columns are
  VARCHAR holding JSON text (read with DuckDB's `->>`/`json_extract`). Money is
  DECIMAL(18,9) (rounded half-even to 9 places).

Tables (columns in file order, before the four kafka_* columns):

- `events` ← redacted topic: envelope_id, session_id, seq BIGINT, direction, type,
  observed_at TIMESTAMPTZ, tenant, app, region, upstream_host, model, source, payload (JSON
  text), extra (JSON text of unknown top-level envelope fields, else NULL).
- `findings_raw` ← findings topic, kind "finding": finding_id, session_id, tenant, rule_id,
  policy_version, severity, status, action, message, evidence (JSON), observed_at.
- `verdicts_raw` ← findings topic, kind "verdict": session_id, verdict, deciding_rules (JSON),
  policy_version, findings BIGINT, events BIGINT, tenant, region, upstream_host, model,
  language, warnings (JSON).
- `costs_raw` ← costs topic, kind "response" | "transcription": record_id, session_id, tenant,
  kind,
  ref (response_id or item_id), model, status, status_reason, cost_usd DECIMAL(18,9),
  cost_by_modality (JSON), tokens (JSON), usage (JSON), complete BOOLEAN, price_entry,
  catalog_version, uplift_factor DECIMAL(18,9), context_window BIGINT, context_used_ratio
  DOUBLE, truncation_inferred BOOLEAN, estimated_tokens_dropped BIGINT, observed_at,
  warnings (JSON).
- `session_costs_raw` ← costs topic, kind "session_summary": session_id, tenant, total_usd
  DECIMAL(18,9), by_model, by_modality, unknown_models, truncations, unplayed_audio,
  warnings (all JSON), catalog_version, record (the whole record, JSON).
- `dead_letters` ← deadletter topic (what a processor rejected) and every record of the four
  topics the sink itself cannot turn into a row (agent "sink"): dead_letter_id, agent,
  reason, source_topic, source_partition INT, source_offset BIGINT, session_id,
  original_bytes BIGINT, original_sha256, original_text (the redacted rendering; never bytes
  read from the raw topic), observed_at.
- `erasures` (written by `voxledger erase`, not by the sink): erasure_id, erased_at,
  requested_by, scope ('session' | 'subject'), target, rows_removed BIGINT,
  files_rewritten BIGINT.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal

import orjson
import pyarrow as pa

from voxledger.deadletter import DEAD_LETTER_NAMESPACE

__all__ = [
    "BASE_TABLES",
    "ERASURES",
    "SCHEMAS",
    "KafkaRecord",
    "Role",
    "Row",
    "record_to_row",
]

EVENTS = "events"
FINDINGS = "findings_raw"
VERDICTS = "verdicts_raw"
COSTS = "costs_raw"
SESSION_COSTS = "session_costs_raw"
DEAD_LETTERS = "dead_letters"
ERASURES = "erasures"
BASE_TABLES = (EVENTS, FINDINGS, VERDICTS, COSTS, SESSION_COSTS, DEAD_LETTERS)

# Which topic a record came from, in the settings' words (topic names are configurable).
Role = Literal["redacted", "findings", "costs", "deadletter"]

TS = pa.timestamp("us", tz="UTC")
MONEY = pa.decimal128(18, 9)
_NINE_PLACES = Decimal("0.000000001")
MAX_TEXT_CHARS = 1_000_000  # a dead letter's text is cut here: one bad record stays small

KAFKA_FIELDS = [
    pa.field("kafka_topic", pa.string()),
    pa.field("kafka_partition", pa.int32()),
    pa.field("kafka_offset", pa.int64()),
    pa.field("kafka_timestamp", TS),
]


class BadRecord(ValueError):
    """A record that cannot become a row of its table; it becomes a dead-letter row."""


@dataclass(frozen=True)
class KafkaRecord:
    """What the sink needs of one consumed message."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class Row:
    """One row for one table, with the hive `date` partition it belongs to."""

    table: str
    date: str  # YYYY-MM-DD
    values: dict[str, Any]


# -- value coercion: each raises BadRecord with a reason that names the field ------------------


def _str(v: Any, name: str) -> str | None:
    if v is None or isinstance(v, str):
        return v
    raise BadRecord(f"{name}: expected a string, got {type(v).__name__}")


def _int(v: Any, name: str) -> int | None:
    if v is None or (isinstance(v, int) and not isinstance(v, bool)):
        if v is not None and not -(2**63) <= v < 2**63:
            raise BadRecord(f"{name}: integer out of range")
        return v
    raise BadRecord(f"{name}: expected an integer, got {type(v).__name__}")


def _bool(v: Any, name: str) -> bool | None:
    if v is None or isinstance(v, bool):
        return v
    raise BadRecord(f"{name}: expected true/false, got {type(v).__name__}")


def _float(v: Any, name: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise BadRecord(f"{name}: expected a number, got bool")
    try:
        return float(v)  # cost records carry ratios as decimal strings
    except (TypeError, ValueError):
        raise BadRecord(f"{name}: expected a number, got {v!r:.40}") from None


def _money(v: Any, name: str) -> Decimal | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        raise BadRecord(f"{name}: expected a decimal amount, got {type(v).__name__}")
    try:
        amount = Decimal(str(v)).quantize(_NINE_PLACES, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        raise BadRecord(f"{name}: not a decimal amount: {v!r:.40}") from None
    if not amount.is_finite() or abs(amount) >= Decimal(10) ** 9:
        raise BadRecord(f"{name}: amount out of range for DECIMAL(18,9)")
    return amount


def _ts(v: Any, name: str) -> datetime | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise BadRecord(f"{name}: expected an ISO timestamp, got {type(v).__name__}")
    try:
        value = datetime.fromisoformat(v)
    except ValueError:
        raise BadRecord(f"{name}: not an ISO timestamp: {v!r:.40}") from None
    if value.tzinfo is None:
        raise BadRecord(f"{name}: timestamp without a time zone")
    return value.astimezone(UTC)


def _json(v: Any, name: str) -> str | None:
    if v is None:
        return None
    try:
        return orjson.dumps(v).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(v)  # integers beyond 64 bits: the standard library writes them exactly


_COERCE: dict[pa.DataType, Callable[[Any, str], Any]] = {
    pa.string(): _str,
    pa.int64(): _int,
    pa.int32(): _int,
    pa.bool_(): _bool,
    pa.float64(): _float,
    MONEY: _money,
    TS: _ts,
}
STRING = pa.string()
JSON = STRING  # a column built by _json: JSON text, typed VARCHAR


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    source: str | None = None  # the record's key, when it differs from the column name
    json: bool = False


def _c(name: str, type_: pa.DataType = STRING, source: str | None = None) -> Column:
    return Column(name, type_, source)


def _j(name: str, source: str | None = None) -> Column:
    return Column(name, JSON, source, json=True)


COLUMNS: dict[str, list[Column]] = {
    EVENTS: [
        _c("envelope_id"),
        _c("session_id"),
        _c("seq", pa.int64()),
        _c("direction"),
        _c("type"),
        _c("observed_at", TS),
        _c("tenant"),
        _c("app"),
        _c("region"),
        _c("upstream_host"),
        _c("model"),
        _c("source"),
        _j("payload"),
        _j("extra"),
    ],
    FINDINGS: [
        _c("finding_id"),
        _c("session_id"),
        _c("tenant"),
        _c("rule_id"),
        _c("policy_version"),
        _c("severity"),
        _c("status"),
        _c("action"),
        _c("message"),
        _j("evidence"),
        _c("observed_at", TS),
    ],
    VERDICTS: [
        _c("session_id"),
        _c("verdict"),
        _j("deciding_rules"),
        _c("policy_version"),
        _c("findings", pa.int64()),
        _c("events", pa.int64()),
        _c("tenant"),
        _c("region"),
        _c("upstream_host"),
        _c("model"),
        _c("language"),
        _j("warnings"),
    ],
    COSTS: [
        _c("record_id"),
        _c("session_id"),
        _c("tenant"),
        _c("kind"),
        _c("ref"),
        _c("model"),
        _c("status"),
        _c("status_reason"),
        _c("cost_usd", MONEY),
        _j("cost_by_modality"),
        _j("tokens"),
        _j("usage"),
        _c("complete", pa.bool_()),
        _c("price_entry"),
        _c("catalog_version"),
        _c("uplift_factor", MONEY),
        _c("context_window", pa.int64()),
        _c("context_used_ratio", pa.float64()),
        _c("truncation_inferred", pa.bool_()),
        _c("estimated_tokens_dropped", pa.int64()),
        _c("observed_at", TS),
        _j("warnings"),
    ],
    SESSION_COSTS: [
        _c("session_id"),
        _c("tenant"),
        _c("total_usd", MONEY),
        _j("by_model"),
        _j("by_modality"),
        _j("unknown_models"),
        _j("truncations"),
        _j("unplayed_audio"),
        _j("warnings"),
        _c("catalog_version"),
        _j("record"),
    ],
    DEAD_LETTERS: [
        _c("dead_letter_id"),
        _c("agent"),
        _c("reason"),
        _c("source_topic"),
        _c("source_partition", pa.int32()),
        _c("source_offset", pa.int64()),
        _c("session_id"),
        _c("original_bytes", pa.int64()),
        _c("original_sha256"),
        _c("original_text"),
        _c("observed_at", TS),
    ],
}

SCHEMAS: dict[str, pa.Schema] = {
    table: pa.schema([pa.field(c.name, c.type) for c in cols] + KAFKA_FIELDS)
    for table, cols in COLUMNS.items()
}
SCHEMAS[ERASURES] = pa.schema(
    [
        pa.field("erasure_id", pa.string()),
        pa.field("erased_at", TS),
        pa.field("requested_by", pa.string()),
        pa.field("scope", pa.string()),
        pa.field("target", pa.string()),
        pa.field("rows_removed", pa.int64()),
        pa.field("files_rewritten", pa.int64()),
    ]
)


# -- records → rows ------------------------------------------------------------------------------

_ENVELOPE_KEYS = frozenset(c.name for c in COLUMNS[EVENTS] if c.name != "extra") | {"v"}
_DIRECTIONS = frozenset({"client", "server"})
_HUGE_INT = re.compile(rb"\d{19,}")  # orjson would read such an integer as a float


def _load(value: bytes, role: Role) -> Any:
    # Envelopes are parsed fast and their payload text taken from the bytes (see _event);
    # the other records are few, and read exactly.
    if role != "redacted" and _HUGE_INT.search(value):
        return json.loads(value)  # the standard library keeps big integers exact
    return orjson.loads(value)


def record_to_row(record: KafkaRecord, role: Role, raw_topic: str | None = None) -> Row:
    """The row a record becomes; a record that cannot (not JSON, wrong types, unknown kind)
    becomes a dead-letter row saying why. Never raises on bad input."""
    try:
        if record.value is None:
            raise BadRecord("empty message (a tombstone?)")
        try:
            body = _load(record.value, role)
        except (ValueError, RecursionError) as exc:
            raise BadRecord(f"not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRecord(f"not a JSON object but {type(body).__name__}")
        table, values = _BUILDERS[role](body, record, raw_topic)
        return _finish(table, values, record)
    except BadRecord as exc:
        return _finish(DEAD_LETTERS, _sink_dead_letter(record, str(exc)), record)


def _finish(table: str, values: dict[str, Any], record: KafkaRecord) -> Row:
    kafka_ts = _kafka_time(record.timestamp_ms)
    values["kafka_topic"] = record.topic
    values["kafka_partition"] = record.partition
    values["kafka_offset"] = record.offset
    values["kafka_timestamp"] = kafka_ts
    when = values.get("observed_at") or kafka_ts
    day = when.date().isoformat() if when else date(1970, 1, 1).isoformat()
    return Row(table, day, values)


def _kafka_time(timestamp_ms: int | None) -> datetime | None:
    if timestamp_ms is None or timestamp_ms < 0:
        return None
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def _columns(table: str, body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in COLUMNS[table]:
        v = body.get(col.source or col.name)
        out[col.name] = _json(v, col.name) if col.json else _COERCE[col.type](v, col.name)
    return out


def _required(values: dict[str, Any], *names: str) -> None:
    for name in names:
        if values.get(name) is None:
            raise BadRecord(f"{name}: missing")


_OPTIONAL = ("tenant", "app", "region", "upstream_host", "model")
_PAYLOAD_KEY = b',"payload":'


def _event(body: dict[str, Any], record: KafkaRecord, raw: str | None) -> tuple[str, dict]:
    """An Envelope v1 → an events row. The hot path of the sink: checks are written out."""
    get = body.get
    if get("v") != 1:
        raise BadRecord(f"v: not an Envelope v1 (v={get('v')!r:.20})")
    payload = get("payload")
    if type(payload) is not dict:
        raise BadRecord("payload: expected a JSON object")
    seq = get("seq")
    if type(seq) is not int or not 0 <= seq < 2**63:
        raise BadRecord(f"seq: expected a non-negative integer, got {seq!r:.20}")
    if get("direction") not in _DIRECTIONS:
        raise BadRecord(f"direction: expected client or server, got {get('direction')!r:.20}")
    values = {name: get(name) for name in _EVENT_STRINGS}
    for name in _EVENT_STRINGS:
        value = values[name]
        if type(value) is not str and (value is not None or name not in _OPTIONAL):
            raise BadRecord(f"{name}: {'missing' if value is None else 'expected a string'}")
    values["seq"] = seq
    values["observed_at"] = _ts(get("observed_at"), "observed_at")
    if values["observed_at"] is None:
        raise BadRecord("observed_at: missing")
    values["payload"] = _payload_text(body, payload, record.value or b"")
    extra = {k: v for k, v in body.items() if k not in _ENVELOPE_KEYS} if len(body) > 14 else None
    values["extra"] = _json(extra, "extra") if extra else None
    return EVENTS, values


_EVENT_STRINGS = ("envelope_id", "session_id", "direction", "type", "source", *_OPTIONAL)


def _payload_text(body: dict[str, Any], payload: dict[str, Any], value: bytes) -> str:
    """The payload's JSON text exactly as sent: cut from the bytes when the envelope is laid
    out as Envelope.to_bytes() writes it (payload the last key, no extras, so the first
    `,"payload":` is that key: quotes inside strings are escaped); else written again."""
    if next(reversed(body)) == "payload" and body.keys() == _ENVELOPE_KEYS:
        at = value.find(_PAYLOAD_KEY)
        end = value.rstrip()
        if at > 0 and end.endswith(b"}"):
            try:
                return end[at + len(_PAYLOAD_KEY) : -1].decode()
            except UnicodeDecodeError:
                pass
    if _HUGE_INT.search(value):  # orjson read a big integer as a float: read it exactly
        return json.dumps(json.loads(value)["payload"], ensure_ascii=False)
    return orjson.dumps(payload).decode()


def _finding(body: dict[str, Any], record: KafkaRecord, raw: str | None) -> tuple[str, dict]:
    kind = body.get("kind")
    if kind == "finding":
        values = _columns(FINDINGS, body)
        _required(values, "finding_id", "rule_id")  # a tenant-wide budget finding: no session
        return FINDINGS, values
    if kind == "verdict":
        values = _columns(VERDICTS, body)
        _required(values, "session_id", "verdict")
        return VERDICTS, values
    raise BadRecord(f"kind: unknown findings record kind {kind!r:.40}")


def _cost(body: dict[str, Any], record: KafkaRecord, raw: str | None) -> tuple[str, dict]:
    kind = body.get("kind")
    if kind in ("response", "transcription"):
        ref_key = "response_id" if kind == "response" else "item_id"
        values = _columns(COSTS, {**body, "ref": body.get(ref_key)})
        _required(values, "record_id", "session_id", "ref")
        return COSTS, values
    if kind == "session_summary":
        values = _columns(SESSION_COSTS, {**body, "record": body})
        _required(values, "session_id")
        return SESSION_COSTS, values
    raise BadRecord(f"kind: unknown cost record kind {kind!r:.40}")


def _dead_letter(body: dict[str, Any], record: KafkaRecord, raw: str | None) -> tuple[str, dict]:
    source = {
        **body,
        "reason": body.get("error"),
        "source_topic": body.get("topic"),
        "source_partition": body.get("partition"),
        "source_offset": body.get("offset"),
        "observed_at": body.get("failed_at"),
        "original_text": _original_text(body, raw),
    }
    values = _columns(DEAD_LETTERS, source)
    _required(values, "dead_letter_id", "agent", "reason")
    return DEAD_LETTERS, values


def _original_text(body: dict[str, Any], raw: str | None) -> str | None:
    """The redacted rendering; bytes are rendered only when they were not read from raw."""
    if isinstance(body.get("original_redacted"), str):
        return body["original_redacted"][:MAX_TEXT_CHARS]
    b64 = body.get("original_b64")
    if not isinstance(b64, str) or raw is None or body.get("topic") == raw:
        return None  # raw input may hold PII: never rendered here
    try:
        return base64.b64decode(b64).decode(errors="replace")[:MAX_TEXT_CHARS]
    except ValueError:
        return None


def _sink_dead_letter(record: KafkaRecord, reason: str) -> dict[str, Any]:
    value = record.value or b""
    name = f"sink/{record.topic}/{record.partition}/{record.offset}"
    return {
        "dead_letter_id": str(uuid.uuid5(DEAD_LETTER_NAMESPACE, name)),
        "agent": "sink",
        "reason": reason[:2000],
        "source_topic": record.topic,
        "source_partition": record.partition,
        "source_offset": record.offset,
        "session_id": None,
        "original_bytes": len(value),
        "original_sha256": hashlib.sha256(value).hexdigest(),
        # The sink never reads the raw topic, so what it rejects holds no raw PII.
        "original_text": value.decode(errors="replace")[:MAX_TEXT_CHARS],
        "observed_at": None,
    }


_BUILDERS: dict[str, Callable[[dict[str, Any], KafkaRecord, str | None], tuple[str, dict]]] = {
    "redacted": _event,
    "findings": _finding,
    "costs": _cost,
    "deadletter": _dead_letter,
}


def empty_columns(table: str) -> dict[str, list[Any]]:
    """Column lists to append rows to, in schema order."""
    return {name: [] for name in SCHEMAS[table].names}


def conform(data: pa.Table, table: str) -> pa.Table:
    """`data` with `table`'s current schema: files written before a column was added get it
    as NULLs, so compaction and erasure can rewrite them."""
    schema = SCHEMAS[table]
    columns = [
        data[f.name].cast(f.type) if f.name in data.column_names else pa.nulls(len(data), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def to_arrow(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows of one table as an Arrow table with its schema."""
    schema = SCHEMAS[table]
    columns = {name: [r.get(name) for r in rows] for name in schema.names}
    return pa.table(columns, schema=schema)
