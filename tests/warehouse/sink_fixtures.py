"""Helpers of the warehouse sink tests: records to produce, the sink run in-process or as
a child process, and the tables read back with DuckDB."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from confluent_kafka import Producer

from voxledger.config import Settings
from voxledger.deadletter import DeadLetter
from voxledger.envelope import Envelope
from voxledger.kafka import client_config
from voxledger.warehouse.schema import BASE_TABLES
from voxledger.warehouse.sink import Sink
from voxledger.warehouse.storage import open_store

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 60.0
T0 = datetime(2026, 3, 1, 23, 59, 55, tzinfo=UTC)  # sessions cross midnight: two date dirs


def envelopes(sessions: int, per_session: int, tenant: str = "acme-us") -> list[Envelope]:
    out = []
    for s in range(sessions):
        for seq in range(per_session):
            out.append(
                Envelope(
                    session_id=f"sess-{s:04d}",
                    seq=seq,
                    direction="client" if seq % 2 == 0 else "server",
                    type="conversation.item.create" if seq % 2 == 0 else "response.done",
                    observed_at=T0 + timedelta(seconds=s + seq * 0.5),
                    tenant=tenant,
                    app="support-bot",
                    region="us",
                    upstream_host="api.openai.com",
                    model="gpt-realtime",
                    source="proxy",
                    payload={"type": "x", "text": f"hello <PERSON_{s + 1}>", "n": seq},
                )
            )
    return out


def finding(session: str, n: int) -> dict[str, Any]:
    return {
        "kind": "finding",
        "finding_id": f"f-{session}-{n}",
        "session_id": session,
        "rule_id": "ai_disclosure",
        "policy_version": "2026.1",
        "severity": "high",
        "status": "open",
        "action": "fail",
        "message": "no disclosure",
        "evidence": [{"seq": 1, "envelope_id": "e", "excerpt": "hi"}],
        "observed_at": "2026-03-01T23:59:55.000001Z",
    }


def verdict(session: str) -> dict[str, Any]:
    return {
        "kind": "verdict",
        "session_id": session,
        "verdict": "fail",
        "deciding_rules": ["ai_disclosure"],
        "policy_version": "2026.1",
        "findings": 1,
        "events": 4,
        "tenant": "acme-us",
        "region": "us",
        "upstream_host": "api.openai.com",
        "model": "gpt-realtime",
        "language": "en",
        "warnings": [],
    }


def cost(session: str, n: int) -> dict[str, Any]:
    return {
        "record_id": f"r-{session}-{n}",
        "session_id": session,
        "tenant": "acme-us",
        "kind": "response",
        "response_id": f"resp-{n}",
        "model": "gpt-realtime",
        "status": "completed",
        "usage": {"total_tokens": 10},
        "tokens": {"text_in": 10},
        "cost_by_modality": {"text_in": "0.00004"},
        "cost_usd": "0.00004",
        "complete": True,
        "price_entry": "gpt-realtime@2025-08-28",
        "catalog_version": "2026.1",
        "uplift_factor": None,
        "observed_at": "2026-03-01T23:59:58.5Z",
        "warnings": [],
        "status_reason": None,
        "context_window": 32000,
        "context_used_ratio": "0.25",
        "truncation_inferred": False,
        "estimated_tokens_dropped": None,
    }


def summary(session: str) -> dict[str, Any]:
    return {
        "kind": "session_summary",
        "session_id": session,
        "total_usd": "0.00008",
        "by_model": {"gpt-realtime": "0.00008"},
        "by_modality": {"text_in": "0.00008"},
        "unknown_models": [],
        "truncations": [],
        "unplayed_audio": [],
        "catalog_version": "2026.1",
        "warnings": [],
    }


def dead_letter(session: str) -> bytes:
    return DeadLetter.of(
        agent="policy",
        error="boom",
        topic="x.redacted",
        partition=0,
        offset=7,
        original=b'{"not": "an envelope"}',
        session_id=session,
    ).to_bytes()


def produce(settings: Settings, topic: str, items: list[tuple[str, bytes]]) -> None:
    """Send (key, value) pairs and wait until the broker has them all."""
    producer = Producer(client_config(settings, **{"acks": "all", "linger.ms": 5}))
    for key, value in items:
        producer.produce(topic, key=key.encode(), value=value)
        producer.poll(0)
    assert producer.flush(30) == 0


def produce_world(settings: Settings, sessions: int = 6, per_session: int = 10) -> dict[str, Any]:
    """One of every record kind on each topic (and a bad one); returns what was sent."""
    topics = settings.topics
    envs = envelopes(sessions, per_session)
    produce(settings, topics.redacted.name, [(e.session_id, e.to_bytes()) for e in envs])
    produce(settings, topics.redacted.name, [("sess-bad", b"{not json")])
    ids = sorted({e.session_id for e in envs})
    produce(
        settings,
        topics.findings.name,
        [(s, json.dumps(finding(s, 0)).encode()) for s in ids]
        + [(s, json.dumps(verdict(s)).encode()) for s in ids],
    )
    produce(
        settings,
        topics.costs.name,
        [(s, json.dumps(cost(s, n)).encode()) for s in ids for n in range(2)]
        + [(s, json.dumps(summary(s)).encode()) for s in ids],
    )
    produce(settings, topics.deadletter.name, [(ids[0], dead_letter(ids[0]))])
    return {
        "envelope_ids": sorted(e.envelope_id for e in envs),
        "sessions": ids,
        "counts": {
            "events": len(envs),
            "findings_raw": len(ids),
            "verdicts_raw": len(ids),
            "costs_raw": 2 * len(ids),
            "session_costs_raw": len(ids),
            "dead_letters": 2,  # the processor's one, and the sink's own for "{not json"
        },
    }


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    """Run `sql` where each base table name reads its Parquet files (hive partitioned)."""
    root = open_store(settings).base
    con = duckdb.connect()
    try:
        for table in BASE_TABLES:
            if list(Path(root, table).rglob("*.parquet")):
                source = (
                    f"read_parquet('{root}/{table}/**/*.parquet', "
                    "hive_partitioning=true, union_by_name=true)"
                )
                con.execute(f"CREATE VIEW {table} AS SELECT * FROM {source}")
        return con.execute(sql).fetchall()
    finally:
        con.close()


def counts(settings: Settings) -> dict[str, int]:
    out = {}
    for table in BASE_TABLES:
        try:
            out[table] = query(settings, f"SELECT count(*) FROM {table}")[0][0]
        except duckdb.CatalogException:
            out[table] = 0
    return out


def table_rows(settings: Settings, table: str) -> list[tuple[Any, ...]]:
    """Every row of a base table, sorted, without the kafka_timestamp-independent date column."""
    return query(settings, f"SELECT * FROM {table} ORDER BY ALL")


def run_sink_until(
    settings: Settings, done: Callable[[], bool], deadline_s: float = DEADLINE_S
) -> Sink:
    """The sink in this process, as a group member, until `done()` holds after a flush."""
    sink = Sink(settings)
    sink.subscribe()
    deadline = time.monotonic() + deadline_s
    try:
        while time.monotonic() < deadline:
            sink.poll_once()
            if not any(b.count for b in sink.batches.values()) and done():
                break
    finally:
        sink.close()
    return sink


def landed_world(
    monkeypatch: Any, *, sessions: int, per_session: int, **warehouse: Any
) -> tuple[Settings, dict[str, Any]]:
    """`produce_world` with these warehouse options, landed by the sink; (settings, sent)."""
    settings = reload(monkeypatch, **warehouse)
    sent = produce_world(settings, sessions=sessions, per_session=per_session)
    run_sink_until(settings, lambda: counts(settings) == sent["counts"])
    return settings, sent


def sink_process(log_file: Path) -> subprocess.Popen[bytes]:
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "voxledger", "sink"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )


def reload(monkeypatch: Any, **warehouse: Any) -> Settings:
    """The test's settings with warehouse options set through the environment (children too)."""
    from voxledger.config import load_settings

    for name, value in warehouse.items():
        monkeypatch.setenv(f"VOXLEDGER_WAREHOUSE__{name.upper()}", str(value))
    return load_settings()


def file_rows(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Every data file (path under the root → its rows), to compare runs file by file."""
    store = open_store(settings)
    return {
        f.path.removeprefix(store.base): store.read_table(f.path).to_pylist()
        for f in store.list_files(BASE_TABLES)
    }
