"""Compaction, GDPR erasure and rebuild on real Parquet written by the sink from a real broker."""

from __future__ import annotations

import pyarrow.compute as pc
from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition
from sink_fixtures import (
    landed_world,
    query,
)

from voxledger.cli import cli
from voxledger.config import Settings
from voxledger.kafka import client_config
from voxledger.warehouse.compact import compact
from voxledger.warehouse.schema import BASE_TABLES
from voxledger.warehouse.sink import GROUP_ID, Sink
from voxledger.warehouse.storage import live_files, open_store

ALL_ROWS = {t: f"SELECT * FROM {t} ORDER BY ALL" for t in BASE_TABLES}


def snapshot(settings: Settings) -> dict[str, list[tuple]]:
    return {t: query(settings, sql) for t, sql in ALL_ROWS.items()}


def test_compact_keeps_results_and_reduces_files(pipeline_settings: Settings, monkeypatch) -> None:
    settings, _ = landed_world(
        monkeypatch, sessions=6, per_session=12, flush_max_rows=7, flush_interval_s=0.2
    )
    store = open_store(settings)
    before_files = store.list_files(BASE_TABLES)
    before = snapshot(settings)

    result = compact(settings)

    after_files = store.list_files(BASE_TABLES)
    assert result.files_before == len(before_files)
    assert len(after_files) == result.files_after < len(before_files)
    assert snapshot(settings) == before
    assert compact(settings).merged == 0  # a second run finds nothing to merge

    # A compaction that died before removing an input: put one input back.
    remaining = {f.path for f in after_files}
    leftover = next(f for f in before_files if f.path not in remaining)
    merged = next(f for f in after_files if f.covers(leftover))
    offsets = pc.field("kafka_offset")
    part = store.read_table(merged.path).filter(
        (offsets >= leftover.first) & (offsets <= leftover.last)
    )
    store.write_table(leftover.path, part)
    live = live_files(settings, leftover.table)
    assert store.full_uri(merged.path) in live and store.full_uri(leftover.path) not in live
    assert compact(settings).leftovers_removed == 1
    assert snapshot(settings) == before


def test_compact_upgrades_files_an_older_version_wrote(
    pipeline_settings: Settings, monkeypatch
) -> None:
    """Files that lack a column the views read (written before `tenant` existed) are a clear
    error, not a traceback; `voxledger compact` rewrites them, and the views read them."""
    settings, _ = landed_world(monkeypatch, sessions=2, per_session=5, flush_max_rows=1000)
    store = open_store(settings)
    events = store.list_files(["events"])
    for f in events:  # as the sink wrote them before the column was added
        store.write_table(f.path, store.read_table(f.path).drop_columns(["tenant"]))
    runner = CliRunner()

    refused = runner.invoke(cli, ["sql", "SELECT count(*) FROM events"])
    assert refused.exit_code == 2, refused.output
    assert "lack column tenant" in refused.output and "voxledger compact" in refused.output
    assert "Traceback" not in refused.output

    upgraded = runner.invoke(cli, ["compact"], catch_exceptions=False)
    assert upgraded.exit_code == 0 and f"{len(events)} older files" in upgraded.output
    counted = runner.invoke(cli, ["sql", "SELECT count(*) AS n, count(tenant) AS t FROM events"])
    assert counted.exit_code == 0, counted.output
    assert query(settings, "SELECT count(*), count(tenant) FROM events") == [(10, 0)]


def test_erase_session_then_rebuild(pipeline_settings: Settings, monkeypatch) -> None:
    settings, _ = landed_world(
        monkeypatch, sessions=5, per_session=8, flush_max_rows=30, flush_interval_s=0.2
    )
    original = snapshot(settings)
    runner = CliRunner()

    out = runner.invoke(cli, ["erase", "--session", "sess-0000", "--by", "dpo@example.com"])

    assert out.exit_code == 0, out.output
    # sess-0000: 8 events, 1 finding, 1 verdict, 2 costs, 1 summary, 1 dead letter.
    assert "14 rows removed" in out.output
    for table in BASE_TABLES:
        assert query(settings, f"SELECT count(*) FROM {table} WHERE session_id = 'sess-0000'") == [
            (0,)
        ]
    erasures = query_erasures(settings)
    assert erasures == [("dpo@example.com", "session", "sess-0000", 14)]
    expected = {
        t: [r for r in rows if "sess-0000" not in r] for t, rows in original.items()
    }  # rows naming the session in any column (session_id) are gone, nothing else
    assert snapshot(settings) == expected

    out = runner.invoke(cli, ["rebuild"])

    assert out.exit_code == 0, out.output
    assert snapshot(settings) == expected  # the erased rows did not come back
    assert query_erasures(settings) == erasures  # the audit survives a rebuild


def test_erase_subject_and_bad_requests(pipeline_settings: Settings, monkeypatch) -> None:
    settings, sent = landed_world(monkeypatch, sessions=4, per_session=6, flush_interval_s=0.2)
    runner = CliRunner()

    out = runner.invoke(cli, ["erase", "--subject", "<PERSON_2>", "--by", "dpo"])

    assert out.exit_code == 0, out.output
    assert query(settings, "SELECT count(*) FROM events WHERE payload LIKE '%<PERSON_2>%'") == [
        (0,)
    ]
    assert query(settings, "SELECT count(*) FROM events") == [(sent["counts"]["events"] - 6,)]
    # Other rows of that session (no token in them) stay.
    assert query(settings, "SELECT count(*) FROM costs_raw WHERE session_id = 'sess-0001'") == [
        (2,)
    ]
    for args in (["--subject", "bob"], [], ["--session", "a", "--subject", "<X_1>"]):
        bad = runner.invoke(cli, ["erase", *args, "--by", "dpo"])
        assert bad.exit_code == 2 and "Error:" in bad.output, args


def query_erasures(settings: Settings) -> list[tuple]:
    import duckdb

    root = open_store(settings).base
    return duckdb.sql(
        f"SELECT requested_by, scope, target, rows_removed FROM read_parquet("
        f"'{root}/erasures/**/*.parquet', hive_partitioning=true) ORDER BY erased_at"
    ).fetchall()


def test_restart_inside_a_compacted_range_rewrites_it_once(
    pipeline_settings: Settings, monkeypatch
) -> None:
    settings, sent = landed_world(
        monkeypatch, sessions=4, per_session=15, flush_max_rows=9, flush_interval_s=0.2
    )
    compact(settings)
    before = snapshot(settings)
    # The group's position moves back into the middle of merged files, as when files written
    # but never committed were compacted before the sink restarted.
    topic = settings.topics.redacted.name
    used = [p for (p,) in query(settings, "SELECT DISTINCT kafka_partition FROM events")]
    group = Consumer(client_config(settings, **{"group.id": GROUP_ID, "log_level": 0}))
    try:
        group.commit(offsets=[TopicPartition(topic, p, 3) for p in used], asynchronous=False)
    finally:
        group.close()

    sink = Sink(settings)
    sink.subscribe()
    try:  # until every partition of the four topics was read to its end
        while len(sink.eof) < 16 or any(b.count for b in sink.batches.values()):
            sink.poll_once()
    finally:
        sink.close()

    # It replayed every used partition from offset 0, where the merged files start.
    assert sink.stats.records >= sent["counts"]["events"]
    assert snapshot(settings) == before
    live = [f for t in BASE_TABLES for f in live_files(settings, t)]
    assert len(live) == len(open_store(settings).list_files(BASE_TABLES))  # nothing covered
