"""The processors under bad records on the raw topic, interleaved with a normal session.

The worker stays up, the normal session's outputs arrive, every record that is not an
Envelope v1 is a dead letter naming the problem, nothing is dropped silently, and usage
with negative or missing counts is flagged by the cost agent, not priced as zero.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from badinput import REPO, corpus_bytes, corpus_lines
from confluent_kafka import KafkaError, Message, Producer
from helpers import Processors, free_port, read_topic

from voxledger.config import Settings
from voxledger.deadletter import MAX_RENDERED_CHARS
from voxledger.envelope import Envelope, parse_frame
from voxledger.errors import EnvelopeError
from voxledger.ingest.capture import SESSION_CLOSED, SessionCapture, SessionContext
from voxledger.ingest.importer import event_direction
from voxledger.kafka import producer_config

STARTUP_DEADLINE_S = 240.0  # the worker loads five languages' NLP models first
# Straight onto the raw topic, one record a line.
RAW_FILES = (
    "malformed_json.jsonl",
    "wrong_types.jsonl",
    "unknown_types.jsonl",
    "invalid_utf8.jsonl",
    "lone_surrogates.jsonl",
    "envelopes_v2.jsonl",
    "bad_envelopes.jsonl",
    "envelope_usage.jsonl",
    "truncated_log.jsonl",
    "deep_nesting.jsonl",
)
USAGE_SESSION = "sess_fuzz_envelope"  # envelope_usage.jsonl: response.done with bad usage


@pytest.fixture
def worker(pipeline_settings: Settings, tmp_path: Path, monkeypatch) -> Iterator[Processors]:
    monkeypatch.setenv("VOXLEDGER_PROCESSORS__PSEUDONYM_SECRET", "fuzz secret")
    monkeypatch.setenv("VOXLEDGER_PROCESSORS__METRICS_PORT", str(free_port()))
    monkeypatch.setenv("VOXLEDGER_PROCESSORS__IDLE_RELEASE_S", "3")  # no close marker: soon
    runner = Processors(tmp_path / "processors.log")
    yield runner
    if runner.alive():
        try:
            runner.stop()
        except subprocess.TimeoutExpired:
            runner.process.kill()
            runner.process.wait()


def normal_session() -> list[Envelope]:
    """A recorded GA support call as the importer captures it, closed at the end."""
    published: list[Envelope] = []
    context = SessionContext(source="import", tenant="acme-us", app="support-bot", region="us")
    capture = SessionCapture(context, published.append, "import-fuzz-normal")
    log = REPO / "tests" / "data" / "realtime_logs" / "ga_support_call.jsonl"
    for line in log.read_bytes().splitlines():
        event_type, payload = parse_frame(line)
        has_id = isinstance(payload.get("event_id"), str)
        capture.frame(event_direction(event_type, has_id), line)
    capture.event("client", SESSION_CLOSED, {"type": SESSION_CLOSED, "reason": "end of log"})
    capture.flush()
    return published


def bad_records() -> list[bytes]:
    """Every corpus line as a raw record, binary frames, an empty value and a huge payload."""
    records = [line for name in RAW_FILES for line in corpus_lines(name)]
    binary = corpus_bytes("binary_frames.bin")
    records += [binary, b"", b"\x00"]
    # A valid envelope of ~600 KB: an unparsed binary frame (kept as length and sha256).
    huge = {
        "v": 1,
        "session_id": "sess_fuzz_huge",
        "seq": 0,
        "direction": "client",
        "type": "voxledger.unparsed",
        "source": "proxy",
        "payload": {"raw_b64": base64.b64encode(os.urandom(450_000)).decode(), "parse_error": "x"},
    }
    records.append(json.dumps(huge).encode())
    return records


def is_envelope(record: bytes) -> bool:
    try:
        Envelope.from_bytes(record)
    except EnvelopeError:
        return False
    return True


def produce_interleaved(settings: Settings, normal: list[Envelope], bad: list[bytes]) -> dict:
    """The normal session with the bad records spread through it, every other one keyed by
    the session (so it lands mid-session in its partition). The bad ones' offsets."""
    producer = Producer(producer_config(settings))
    offsets: dict[tuple[int, int], bytes] = {}

    def delivered(record: bytes) -> Any:
        def callback(error: KafkaError | None, message: Message) -> None:
            assert error is None, error
            offsets[(message.partition(), message.offset())] = record

        return callback

    topic = settings.topics.raw.name
    per_envelope = -(-len(bad) // len(normal))
    pending = iter(bad)
    for envelope in normal:
        producer.produce(topic, envelope.to_bytes(), envelope.key())
        # range first: when it runs out, zip stops before taking a record from `pending`.
        for n, record in zip(range(per_envelope), pending, strict=False):
            key = envelope.key() if n % 2 == 0 else None
            producer.produce(topic, record, key, on_delivery=delivered(record))
    assert producer.flush(30) == 0
    return offsets


def test_bad_records_are_dead_letters_and_the_normal_session_goes_through(
    pipeline_settings: Settings, worker: Processors
) -> None:
    settings = pipeline_settings
    normal, bad = normal_session(), bad_records()
    session_id = normal[0].session_id
    worker.start()
    offsets = produce_interleaved(settings, normal, bad)
    assert len(offsets) == len(bad)
    rejects = {where: record for where, record in offsets.items() if not is_envelope(record)}
    kept = len(bad) - len(rejects)
    assert len(rejects) > 60 and kept >= 5  # the corpus has both kinds

    # The normal session: every envelope redacted, a verdict, a cost summary.
    expected = {e.envelope_id for e in normal}
    redacted = read_topic(
        settings,
        settings.topics.redacted.name,
        lambda found: (
            expected <= {r["envelope_id"] for r in found} and len(found) >= len(normal) + kept
        ),
        deadline_s=STARTUP_DEADLINE_S,
    )
    assert expected <= {r["envelope_id"] for r in redacted}
    findings = read_topic(
        settings,
        settings.topics.findings.name,
        lambda found: any(r["kind"] == "verdict" and r["session_id"] == session_id for r in found),
    )
    assert any(r["kind"] == "verdict" and r["session_id"] == session_id for r in findings)
    costs = read_topic(
        settings,
        settings.topics.costs.name,
        lambda found: (
            {session_id, USAGE_SESSION}
            <= {r["session_id"] for r in found if r["kind"] == "session_summary"}
        ),
    )

    # Read last: by now policy and cost have judged both sessions, so their letters are in.
    dead = read_topic(
        settings,
        settings.topics.deadletter.name,
        lambda found: sum(d["agent"] == "redact" for d in found) >= len(rejects),
    )

    # Nothing silently dropped: each raw record is redacted or a dead letter.
    raw_count = len(normal) + len(bad)
    assert len(redacted) + len([d for d in dead if d["agent"] == "redact"]) >= raw_count
    assert_each_reject_is_a_dead_letter(rejects, dead)
    # Valid envelopes, however odd their payload, are judged: no policy or cost failures.
    assert [(d["agent"], d["error"]) for d in dead if d["agent"] != "redact"] == []
    assert_bad_usage_is_flagged(costs)
    assert worker.alive()  # stayed up through all of it
    port = os.environ["VOXLEDGER_PROCESSORS__METRICS_PORT"]
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    assert f'voxledger_processor_dead_letters_total{{agent="redact"}} {len(rejects)}.0' in (
        metrics.decode()
    )


def assert_each_reject_is_a_dead_letter(rejects: dict, dead: list[dict]) -> None:
    letters = {(d["partition"], d["offset"]): d for d in dead if d["agent"] == "redact"}
    assert set(letters) == set(rejects), "a reject without its dead letter, or one too many"
    for where, record in rejects.items():
        letter = letters[where]
        with pytest.raises(EnvelopeError) as problem:
            Envelope.from_bytes(record)
        assert letter["error"] == str(problem.value)  # the reason names the field
        assert letter["original_bytes"] == len(record)
        assert letter["original_b64"] is None  # raw input may hold PII: not kept
        assert len(letter["original_redacted"]) <= MAX_RENDERED_CHARS + 50  # 20 KB lines too
    errors = [d["error"] for d in letters.values()]
    assert any(e.startswith("not a valid Envelope v1: v: ") for e in errors)  # v=2
    assert any(e.startswith("not a valid Envelope v1: seq: ") for e in errors)
    assert any(e.startswith("not a valid Envelope v1: payload: ") for e in errors)
    assert any(e.startswith("not a valid Envelope v1: observed_at: ") for e in errors)
    assert any("Invalid JSON" in e for e in errors)


def assert_bad_usage_is_flagged(costs: list[dict]) -> None:
    summary = next(
        r for r in costs if r["kind"] == "session_summary" and r["session_id"] == USAGE_SESSION
    )
    warnings = " | ".join(summary["warnings"])
    assert "input_tokens is 'abc', not a token count" in warnings
    assert "input_tokens is -20, not a token count" in warnings
    assert "output_tokens is -10, not a token count" in warnings
    assert "response resp_e2 (completed): no usage" in warnings
    assert "without a response object" in warnings
    priced = {r["response_id"]: r for r in costs if r["kind"] == "response"}
    for ref in ("resp_e0", "resp_e1"):  # priced from what is valid, and flagged
        assert priced[ref]["warnings"], priced[ref]
    assert "resp_e2" not in priced  # no usage: not a zero-cost record
