"""Envelope v1: the typed model, its JSON Schema, frame parsing and audio elision."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime

import jsonschema
import pytest

from voxledger.envelope import (
    UNPARSED_TYPE,
    Envelope,
    audio_summary,
    elide_audio,
    envelope_schema,
    parse_frame,
)
from voxledger.errors import EnvelopeError

VALIDATOR = jsonschema.Draft202012Validator(envelope_schema())


def make(event: dict | str | bytes, **fields) -> Envelope:
    event_type, payload = parse_frame(
        event if isinstance(event, str | bytes) else json.dumps(event)
    )
    defaults = dict(session_id="sess_1", seq=0, direction="server", source="proxy")
    return Envelope(type=event_type, payload=elide_audio(payload), **{**defaults, **fields})


def round_trip(envelope: Envelope) -> Envelope:
    data = envelope.to_bytes()
    VALIDATOR.validate(json.loads(data))
    again = Envelope.from_bytes(data)
    assert again == envelope
    return again


def test_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(envelope_schema())


def test_known_event_round_trip_keeps_every_field() -> None:
    event = {
        "type": "response.done",
        "event_id": "event_1",
        "response": {"id": "resp_1", "usage": {"input_tokens": 10, "output_tokens": 4}},
    }
    env = round_trip(
        make(
            event,
            tenant="acme-us",
            app="bot",
            region="us",
            model="gpt-realtime",
            upstream_host="api.openai.com",
        )
    )
    assert env.payload == event
    assert env.key() == b"sess_1"


def test_unknown_event_types_and_fields_are_kept() -> None:
    event = {
        "type": "response.hologram.delta",
        "event_id": "e",
        "novel": {"deep": [1, {"x": None}]},
    }
    env = round_trip(make(event))
    assert env.type == "response.hologram.delta"
    assert env.payload == event


def test_unknown_top_level_fields_are_kept() -> None:
    data = json.loads(make({"type": "x"}).to_bytes())
    data["redaction"] = {"version": "2"}
    env = Envelope.from_bytes(json.dumps(data))
    assert json.loads(env.to_bytes())["redaction"] == {"version": "2"}


def test_envelope_ids_are_uuid7_and_time_ordered() -> None:
    ids = [make({"type": "x"}).envelope_id for _ in range(50)]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == 50


def test_observed_at_is_utc_with_microseconds() -> None:
    env = make({"type": "x"}, observed_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    assert json.loads(env.to_bytes())["observed_at"] == "2026-01-02T03:04:05.000006Z"


@pytest.mark.parametrize(
    ("frame", "raw_field", "error"),
    [
        ("{not json", "raw_text", "invalid JSON"),
        ("[1, 2]", "raw_text", "not an object"),
        ('{"no_type": true}', "raw_text", "no string `type`"),
        (b"\xff\xfe\x00binary", "raw_b64", "not UTF-8"),
        ("[" * 100_000 + "]" * 100_000, "raw_text", "invalid JSON"),
    ],
)
def test_non_json_frames_are_carried_with_parse_error(frame, raw_field, error) -> None:
    env = round_trip(make(frame))
    assert env.type == UNPARSED_TYPE
    assert error in env.payload["parse_error"]
    raw = env.payload[raw_field]
    original = base64.b64decode(raw) if raw_field == "raw_b64" else raw.encode()
    assert original == (frame if isinstance(frame, bytes) else frame.encode())


def test_audio_is_elided_to_size_duration_and_hash() -> None:
    pcm = bytes(4800)  # 100 ms of PCM16 at 24 kHz
    b64 = base64.b64encode(pcm).decode()
    events = [
        {"type": "input_audio_buffer.append", "audio": b64},
        {"type": "response.output_audio.delta", "delta": b64, "item_id": "i"},
        {"type": "response.audio.delta", "delta": b64},  # beta name
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_audio", "audio": b64, "transcript": "hi"}],
            },
        },
    ]
    expected = {"bytes": 4800, "duration_ms": 100.0, "sha256": hashlib.sha256(pcm).hexdigest()}
    for event in events:
        env = round_trip(make(event))
        assert b64 not in env.to_bytes().decode()
        VALIDATOR.evolve(schema=envelope_schema()["$defs"]["audio_summary"]).validate(expected)
    assert make(events[0]).payload["audio"] == expected
    assert make(events[3]).payload["item"]["content"][0] == {
        "type": "input_audio",
        "audio": expected,
        "transcript": "hi",
    }


def test_g711_audio_duration() -> None:
    assert audio_summary(base64.b64encode(bytes(800)).decode(), 8.0)["duration_ms"] == 100.0


def test_from_bytes_rejects_other_versions_with_a_clear_error() -> None:
    data = json.loads(make({"type": "x"}).to_bytes())
    with pytest.raises(EnvelopeError, match="v: Input should be 1"):
        Envelope.from_bytes(json.dumps({**data, "v": 2}))
    with pytest.raises(EnvelopeError, match="not a valid Envelope v1"):
        Envelope.from_bytes(b"garbage")


def test_schema_rejects_what_the_model_rejects() -> None:
    data = json.loads(make({"type": "x"}).to_bytes())
    for broken in (
        {**data, "seq": -1},
        {**data, "direction": "sideways"},
        {k: v for k, v in data.items() if k != "session_id"},
        {**data, "observed_at": "yesterday"},
    ):
        assert not VALIDATOR.is_valid(broken)
        with pytest.raises(EnvelopeError):
            Envelope.from_bytes(json.dumps(broken))
