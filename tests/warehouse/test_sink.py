"""`voxledger sink` on a real broker: every table, exactly once across a kill -9, replays."""

from __future__ import annotations

import json
import os
import signal
from decimal import Decimal

from confluent_kafka import TopicPartition
from helpers import recreate_topic, wait_for
from sink_fixtures import (
    counts,
    envelopes,
    file_rows,
    landed_world,
    produce,
    produce_world,
    query,
    reload,
    run_sink_until,
    sink_process,
)

from voxledger.config import Settings
from voxledger.warehouse.sink import Sink
from voxledger.warehouse.storage import open_store


def test_sink_writes_every_table_with_exact_rows(pipeline_settings: Settings, monkeypatch) -> None:
    settings = reload(monkeypatch, flush_interval_s=0.2)
    sent = produce_world(settings)

    run_sink_until(settings, lambda: counts(settings) == sent["counts"])

    assert counts(settings) == sent["counts"]
    ids = [r[0] for r in query(settings, "SELECT envelope_id FROM events ORDER BY 1")]
    assert ids == sent["envelope_ids"]
    # The hive `date` is the UTC day of observed_at: these sessions cross midnight.
    days = query(settings, "SELECT DISTINCT CAST(date AS VARCHAR) FROM events ORDER BY 1")
    assert days == [("2026-03-01",), ("2026-03-02",)]
    row = query(
        settings,
        "SELECT seq, direction, tenant, payload, observed_at, date FROM events "
        "WHERE session_id = 'sess-0002' AND seq = 3",
    )[0]
    assert row[:3] == (3, "server", "acme-us")
    assert json.loads(row[3]) == {"type": "x", "text": "hello <PERSON_3>", "n": 3}
    assert row[4].isoformat() == "2026-03-01T23:59:58.500000+00:00"
    assert str(row[5]) == "2026-03-01"
    assert query(settings, "SELECT sum(cost_usd), min(context_used_ratio) FROM costs_raw") == [
        (Decimal("0.000480000"), 0.25)
    ]
    assert query(settings, "SELECT DISTINCT tenant FROM costs_raw") == [("acme-us",)]
    assert query(settings, "SELECT DISTINCT ref FROM costs_raw ORDER BY 1") == [
        ("resp-0",),
        ("resp-1",),
    ]
    assert query(
        settings, "SELECT verdict, deciding_rules, findings FROM verdicts_raw LIMIT 1"
    ) == [("fail", '["ai_disclosure"]', 1)]
    assert (
        query(settings, "SELECT json_extract(evidence, '$[0].seq') FROM findings_raw LIMIT 1")[0][0]
        == "1"
    )
    letters = query(settings, "SELECT agent, reason, session_id FROM dead_letters ORDER BY agent")
    assert letters[0] == ("policy", "boom", "sess-0000")
    assert letters[1][0] == "sink" and letters[1][1].startswith("not JSON")


def test_kill_9_mid_run_then_restart_gives_each_row_once(
    pipeline_settings: Settings, monkeypatch, tmp_path
) -> None:
    settings = reload(monkeypatch, flush_max_rows=40, flush_interval_s=0.2)
    envs = envelopes(40, 100)  # 4,000 envelopes: 100 flushes or more
    produce(settings, settings.topics.redacted.name, [(e.session_id, e.to_bytes()) for e in envs])
    store = open_store(settings)
    log = tmp_path / "sink.log"

    first = sink_process(log)
    assert wait_for(lambda: bool(store.list_files(["events"])), 60), log.read_text()
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    before = counts(settings)["events"]
    assert 0 < before < len(envs), "the kill came after the end: nothing to prove"

    second = sink_process(log)
    try:
        assert wait_for(lambda: counts(settings)["events"] >= len(envs), 90), log.read_text()
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, log.read_text()

    ids = [r[0] for r in query(settings, "SELECT envelope_id FROM events ORDER BY 1")]
    assert ids == sorted(e.envelope_id for e in envs)  # none missing, none twice
    assert b"sink stopped" in log.read_bytes()


def test_replaying_a_range_rewrites_identical_files(
    pipeline_settings: Settings, monkeypatch
) -> None:
    settings, sent = landed_world(
        monkeypatch, sessions=8, per_session=20, flush_max_rows=25, flush_interval_s=0.2
    )
    original = file_rows(settings)
    assert len(original) > 8  # many batches, so the replay must follow their boundaries

    # A new group starts from the beginning: a replay of every range the files cover.
    replay = Sink(settings, group_id="replay-" + os.urandom(4).hex())
    replay.subscribe()
    try:
        assert wait_for_poll(replay, lambda: replay.stats.records >= sum(sent["counts"].values()))
    finally:
        replay.close()

    assert file_rows(settings) == original
    assert replay.stats.files_written == len(original)
    assert replay.stats.files_replaced == 0


def wait_for_poll(sink: Sink, condition, deadline_s: float = 60.0) -> bool:
    import time

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        sink.poll_once()
        if condition() and not any(b.count for b in sink.batches.values()):
            return True
    return False


def test_a_reset_log_lands_beside_what_landed_never_over_it(
    pipeline_settings: Settings, monkeypatch
) -> None:
    settings, sent = landed_world(
        monkeypatch, sessions=4, per_session=20, flush_max_rows=25, flush_interval_s=0.2
    )
    redacted = settings.topics.redacted
    recreate_topic(settings, redacted.name, redacted.partitions)
    later = envelopes(4, 5)  # the same sessions (so partitions), new envelopes
    assert not set(sent["envelope_ids"]) & {e.envelope_id for e in later}
    produce(settings, redacted.name, [(e.session_id, e.to_bytes()) for e in later])
    landed = sent["envelope_ids"] + [e.envelope_id for e in later]

    def events() -> list[str]:
        return sorted(r[0] for r in query(settings, "SELECT envelope_id FROM events"))

    sink = run_sink_until(settings, lambda: len(events()) >= len(landed))

    assert events() == sorted(landed)  # the old log's rows kept, the new log's added
    assert sink.stats.resets >= 1
    archived = [f for f in open_store(settings).list_files(["events"]) if "~" in f.topic]
    assert archived and all(f.topic.startswith(f"{redacted.name}~") for f in archived)
    # A replay of the new log (a new group) rewrites its own files: no reset, no duplicate.
    replay = Sink(settings, group_id="replay-" + os.urandom(4).hex())
    replay.subscribe()
    try:
        assert wait_for_poll(replay, lambda: replay.stats.records >= len(later) + 1)
    finally:
        replay.close()
    assert replay.stats.resets == 0
    assert events() == sorted(landed)


def test_a_topic_with_a_new_id_is_read_from_its_start_not_from_old_commits(
    pipeline_settings: Settings, monkeypatch
) -> None:
    """After a memory-only broker's restart the new log can grow past the sink's old position
    before the group rejoins, and offsets from there get committed; the rejoin must not
    resume there (the records before it would never land)."""
    settings, sent = landed_world(
        monkeypatch, sessions=4, per_session=10, flush_max_rows=25, flush_interval_s=0.2
    )
    redacted = settings.topics.redacted
    old_ends = {}
    for f in open_store(settings).list_files(["events"]):
        old_ends[f.partition] = max(old_ends.get(f.partition, -1), f.last)
    sink = Sink(settings)
    sink.subscribe()
    try:
        assert wait_for_poll(sink, lambda: bool(sink.log_identity.known))  # ids noted
        # What the member commits from the middle of the new log (offsets past the old one's
        # end), committed here before the topic is created again.
        commits = [TopicPartition(redacted.name, p, end + 5) for p, end in old_ends.items()]
        sink.consumer.commit(offsets=commits, asynchronous=False)
    finally:
        sink.close()
    # librdkafka crashes when a topic it reads is created again, on tansu: the same sink
    # rejoins with a new consumer (its memory of the topic ids kept).
    recreate_topic(settings, redacted.name, redacted.partitions)
    later = envelopes(4, 40)  # the same partitions, each new log longer than the old one
    produce(settings, redacted.name, [(e.session_id, e.to_bytes()) for e in later])
    landed = set(sent["envelope_ids"]) | {e.envelope_id for e in later}
    rejoined = Sink(settings)
    rejoined.log_identity = sink.log_identity
    rejoined.subscribe()
    try:
        assert wait_for_poll(rejoined, lambda: set(envelope_ids(settings)) >= landed)
    finally:
        rejoined.close()

    assert set(envelope_ids(settings)) == landed
    assert rejoined.stats.resets >= 1


def envelope_ids(settings: Settings) -> list[str]:
    return [r[0] for r in query(settings, "SELECT envelope_id FROM events")]
