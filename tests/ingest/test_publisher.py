"""The publisher: straight to Kafka when it answers, through the durable spool when it does not."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from helpers import free_port, read_topic

from voxledger.config import ProxySettings, Settings
from voxledger.envelope import Envelope
from voxledger.ingest.publisher import Publisher

DEADLINE_S = 30.0


def envelopes(count: int, sessions: int = 3) -> list[Envelope]:
    seqs = dict.fromkeys(range(sessions), 0)
    out = []
    for n in range(count):
        s = n % sessions
        out.append(
            Envelope(
                session_id=f"sess_{s}",
                seq=seqs[s],
                direction="client",
                type="conversation.item.create",
                source="proxy",
                payload={"type": "conversation.item.create", "n": n},
            )
        )
        seqs[s] += 1
    return out


def read_raw(settings: Settings, count: int) -> list[dict]:
    return read_topic(settings, settings.topics.raw.name, count, deadline_s=DEADLINE_S)


def assert_in_order_once(received: list[dict], sent: list[Envelope]) -> None:
    assert sorted(e["envelope_id"] for e in received) == sorted(e.envelope_id for e in sent)
    for session in {e.session_id for e in sent}:
        seqs = [e["seq"] for e in received if e["session_id"] == session]
        assert seqs == list(range(len(seqs)))


def dead_broker(settings: Settings) -> Settings:
    port = free_port()  # a port nothing listens on
    return settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{port}"})


def test_envelopes_reach_the_raw_topic_in_order(pipeline_settings: Settings) -> None:
    sent = envelopes(60)
    publisher = Publisher(pipeline_settings).start()
    try:
        for envelope in sent:
            assert publisher.publish(envelope) is False  # straight to the producer
        assert publisher.wait_until(lambda p: p.delivered == len(sent), DEADLINE_S)
    finally:
        publisher.close()
    assert publisher.spooled == 0 and publisher.delivery_failures == 0
    assert_in_order_once(read_raw(pipeline_settings, len(sent)), sent)


def test_without_a_broker_envelopes_wait_in_the_spool_for_the_next_run(
    pipeline_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    sent = envelopes(40)
    offline = Publisher(dead_broker(pipeline_settings)).start()
    try:
        for envelope in sent[:10]:
            offline.publish(envelope)
        assert offline.wait_until(lambda p: p.spooling, DEADLINE_S)
        for envelope in sent[10:]:
            assert offline.publish(envelope) is True  # once spooling, everything spools
    finally:
        offline.close()
    assert "spooling envelopes" in caplog.text
    assert offline.spool.depth == len(sent)

    # The next run, with the broker back, sends the spool first, in order.
    online = Publisher(pipeline_settings).start()
    try:
        assert online.spooling
        assert online.wait_until(lambda p: p.settled, DEADLINE_S)
        later = envelopes(1)[0].model_copy(update={"session_id": "sess_later"})
        assert online.publish(later) is False
        assert online.wait_until(lambda p: p.delivered == len(sent) + 1, DEADLINE_S)
    finally:
        online.close()
    assert "spool drained" in caplog.text
    assert not list((pipeline_settings.data_dir / "spool").glob("*.seg"))
    assert_in_order_once(read_raw(pipeline_settings, len(sent) + 1), [*sent, later])


def test_a_full_spool_refuses_sessions_and_says_so(
    pipeline_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = dead_broker(pipeline_settings).model_copy(
        update={"proxy": ProxySettings(spool_max_bytes=2000), "data_dir": tmp_path / "full"}
    )
    publisher = Publisher(settings).start()
    try:
        assert publisher.accepting_sessions
        for envelope in envelopes(40):
            publisher.publish(envelope)  # still accepted: open sessions are never cut off
        assert publisher.wait_until(lambda p: p.spooling, DEADLINE_S)
        assert not publisher.accepting_sessions
    finally:
        publisher.close()
    assert "refusing new sessions" in caplog.text
    assert publisher.spool.depth == 40  # nothing dropped
