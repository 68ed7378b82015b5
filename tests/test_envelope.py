"""Envelope v1: the typed model, its JSON Schema, frame parsing and audio elision."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import jsonschema
import pytest

from voxledger.envelope import (
    UNPARSED_TYPE,
    Envelope,
    audio_summary,
    elide_audio,
    envelope_schema,
    format_observed_at,
    parse_frame,
    utc_from_ns,
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


# -- the fast paths: same envelopes, same bytes, as the validated pydantic ones -----------------

PAYLOADS = [
    {"type": "response.done", "event_id": "e", "response": {"usage": {"input_tokens": 3}}},
    {"type": "x", "text": "héllo ☃ \U0001f600", "ctl": '\x00\x1f\x7f\u2028 / \\ " \t\n'},
    {"type": "x", "floats": [0.1, 1e16, 1e-7, 100.0, -0.0, 1.5e300, 123456789.123456789]},
    {"type": "x", "ints": [0, -1, 2**63 - 1, -(2**63), 2**64 - 1], "deep": [[{"a": None}]]},
    {"type": "x", "nan": float("nan"), "inf": float("-inf"), "yes": True, "none": None},
    {"type": "x", "huge": 2**70},  # beyond 64 bits: orjson refuses, pydantic writes it
    {"type": "x", "when": datetime(2026, 1, 2, tzinfo=UTC)},  # not JSON data: pydantic's way
]


def fields(payload: dict, **overrides) -> dict:
    base = dict(
        v=1,
        envelope_id="01970000-0000-7000-8000-000000000000",
        session_id="sess_1",
        seq=3,
        direction="server",
        type=payload["type"],
        observed_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        tenant="acme-us",
        app="bot",
        region="us",
        upstream_host="api.openai.com",
        model="gpt-realtime",
        source="proxy",
        payload=payload,
    )
    return {**base, **overrides}


@pytest.mark.parametrize("payload", PAYLOADS)
def test_trusted_envelope_equals_the_validated_one_and_writes_the_same_bytes(payload) -> None:
    validated = Envelope(**fields(payload))
    trusted = Envelope.trusted(**fields(payload))
    assert trusted == validated
    assert trusted.to_bytes() == validated.model_dump_json().encode()
    assert validated.to_bytes() == validated.model_dump_json().encode()
    if "when" not in payload:
        VALIDATOR.validate(json.loads(trusted.to_bytes()))


def test_extras_are_written_after_the_fields_as_pydantic_does() -> None:
    data = json.loads(make({"type": "x"}).to_bytes())
    data["redaction"] = {"version": "2"}
    env = Envelope.from_bytes(json.dumps(data))
    assert env.to_bytes() == env.model_dump_json().encode()
    assert list(json.loads(env.to_bytes()))[-1] == "redaction"


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 1, 2, 3, 4, 5, 0, tzinfo=UTC),  # no microseconds still writes .000000
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 6, 1, 2, 0, 0, 5, tzinfo=timezone(timedelta(hours=2))),
        datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),  # before the epoch
        datetime(999, 1, 1, tzinfo=UTC),  # strftime does not pad such a year
        datetime(2026, 1, 2, 3, 4, 5, 6),  # naive: local time, as astimezone() reads it
    ],
)
def test_observed_at_formatting_matches_strftime(when: datetime) -> None:
    expected = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert format_observed_at(when) == expected
    assert format_observed_at(when) == expected  # again, from the per-second cache


def test_utc_from_ns_is_exact_to_the_microsecond() -> None:
    ns = 1_798_000_000_123_456_789
    when = utc_from_ns(ns)
    assert when.tzinfo is UTC
    assert format_observed_at(when) == "2026-12-23T04:26:40.123456Z"
    assert abs(utc_from_ns(time.time_ns()) - datetime.now(UTC)) < timedelta(seconds=1)


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "x", "n": 123456789012345678901234567890}',  # orjson would make it a float
        '{"type": "x", "n": -9223372036854775809}',
        '{"type": "x", "f": 1e400}',
        '{"type": "x", "f": NaN}',
        # A lone surrogate ("\\ud800") is kept raw: tests/fuzz/test_envelope_fuzz.py.
        '{"type": "x", "ok": [1, 2.5, "three", {"four": null}]}',
        '{"type": "x", "a": 1, "a": 2}',
        "\ufeff" + '{"type": "x"}',
        '{"type": 1}',
        b'{"type": "x", "bin": true}',
        b"\xff\xfe",
    ],
)
def test_parse_frame_reads_every_frame_as_the_standard_library_does(frame) -> None:
    text = frame.decode(errors="replace") if isinstance(frame, bytes) else frame
    try:
        expected = json.loads(text)
    except ValueError:
        expected = None
    event_type, payload = parse_frame(frame)
    if isinstance(expected, dict) and isinstance(expected.get("type"), str):
        assert repr(payload) == repr(expected)  # repr: NaN is not equal to itself
        assert event_type == expected["type"]
    else:
        assert event_type == UNPARSED_TYPE and "parse_error" in payload


B64_CASES = ["AAAA", "AA==", "AAA=", "", "A", "AA=", "A===", "AA==AA", "AA AA", "AA\nAA", "-_", "é"]


@pytest.mark.parametrize("text", B64_CASES)
def test_audio_summary_decodes_exactly_what_strict_b64decode_does(text: str) -> None:
    try:
        audio = base64.b64decode(text, validate=True)
    except ValueError:
        audio = text.encode()
    assert audio_summary(text)["sha256"] == hashlib.sha256(audio).hexdigest()
    assert audio_summary(text)["bytes"] == len(audio)
