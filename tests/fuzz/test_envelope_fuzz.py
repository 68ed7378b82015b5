"""Envelope v1 under arbitrary input: parse_frame never fails, from_bytes fails only with
EnvelopeError, and what the capture writes the pipeline can read back, byte-stable."""

from __future__ import annotations

import json
from typing import Any

import pytest
from badinput import FUZZ, LINE_FILES, corpus_bytes, corpus_lines, huge_frames
from hypothesis import given
from hypothesis import strategies as st

from voxledger.envelope import MAX_EVENT_DEPTH, UNPARSED_TYPE, Envelope, parse_frame
from voxledger.errors import EnvelopeError
from voxledger.ingest.capture import SessionCapture, SessionContext

LONE_SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d", "\ude00"]
# Text as Python may hold it: any code point, lone surrogates included.
any_text = st.text(st.characters() | st.sampled_from(LONE_SURROGATES), max_size=40)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)
event_types = st.sampled_from(
    ["response.done", "session.created", "input_audio_buffer.append", "future.thing", "", "é"]
)
events = st.builds(
    lambda kind, fields: {**fields, "type": kind},
    event_types,
    st.dictionaries(st.text(max_size=10), json_values, max_size=5),
)


def captured(frame: str | bytes) -> bytes:
    """The raw-topic bytes the proxy's capture writes for one relayed frame."""
    published: list[Envelope] = []
    capture = SessionCapture(SessionContext(source="proxy"), published.append, "fb", "sess_fuzz")
    capture.frame("client", frame)
    (envelope,) = published
    return envelope.to_bytes()


def assert_round_trip(data: bytes) -> Envelope:
    """Read back what was written: the same envelope, and the same bytes once normalized."""
    envelope = Envelope.from_bytes(data)
    assert json.loads(envelope.to_bytes()) == json.loads(data)
    again = Envelope.from_bytes(envelope.to_bytes())
    assert again == envelope
    assert again.to_bytes() == envelope.to_bytes()
    return envelope


def assert_frame_is_captured(frame: str | bytes) -> Envelope:
    """parse_frame keeps any frame: as its event, or unparsed with the reason."""
    event_type, payload = parse_frame(frame)
    assert isinstance(event_type, str) and isinstance(payload, dict)
    if event_type == UNPARSED_TYPE:
        assert payload["parse_error"] and ("raw_text" in payload or "raw_b64" in payload)
    envelope = assert_round_trip(captured(frame))
    assert envelope.type == event_type
    return envelope


def nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"k":' * depth + "0" + "}" * depth


# -- parse_frame and the capture -------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300))
def test_any_binary_frame_is_captured(frame: bytes) -> None:
    assert_frame_is_captured(frame)


@FUZZ
@given(any_text)
def test_any_text_frame_is_captured_even_with_lone_surrogates(frame: str) -> None:
    assert_frame_is_captured(frame)


@FUZZ
@given(json_values)
def test_any_json_value_is_captured(value: Any) -> None:
    envelope = assert_frame_is_captured(json.dumps(value))
    if not (isinstance(value, dict) and isinstance(value.get("type"), str)):
        assert envelope.type == UNPARSED_TYPE


@FUZZ
@given(events)
def test_any_json_event_keeps_its_type_and_fields(event: dict[str, Any]) -> None:
    envelope = assert_frame_is_captured(json.dumps(event).encode())
    assert envelope.type == event["type"]
    assert set(envelope.payload) == set(event)


@FUZZ
@given(events, st.sampled_from(LONE_SURROGATES))
def test_a_lone_surrogate_escape_is_kept_as_raw_text(event: dict[str, Any], lone: str) -> None:
    # "\ud800" is valid JSON but not text: written as is, no envelope could carry it.
    frame = json.dumps({**event, "text": lone})
    envelope = assert_frame_is_captured(frame)
    assert envelope.type == UNPARSED_TYPE
    assert envelope.payload["raw_text"] == frame
    assert "lone surrogate" in envelope.payload["parse_error"]


@FUZZ
@given(st.integers(1, 3000), st.sampled_from(["list", "dict"]), st.booleans())
def test_deep_nesting_never_breaks_the_capture(depth: int, kind: str, as_bytes: bool) -> None:
    text = f'{{"type": "deep", "v": {nested(depth, kind)}}}'
    envelope = assert_frame_is_captured(text.encode() if as_bytes else text)
    if depth + 1 > MAX_EVENT_DEPTH:
        assert envelope.type == UNPARSED_TYPE
        assert "nested" in envelope.payload["parse_error"]
    else:
        assert envelope.type == "deep"


@pytest.mark.parametrize("depth", [MAX_EVENT_DEPTH - 2, MAX_EVENT_DEPTH - 1, MAX_EVENT_DEPTH])
def test_events_at_the_depth_limit_keep_their_fields(depth: int) -> None:
    # The event object is level 1: `v` holds depth - 1 more.
    frame = f'{{"type": "deep", "v": {nested(depth - 1, "list")}}}'
    expected = "deep" if depth <= MAX_EVENT_DEPTH else UNPARSED_TYPE
    assert assert_frame_is_captured(frame).type == expected


@pytest.mark.parametrize("name", [*LINE_FILES, "binary_frames.bin"])
def test_every_corpus_line_is_captured(name: str) -> None:
    frames = corpus_lines(name) if name.endswith(".jsonl") else [corpus_bytes(name)]
    for frame in frames:
        assert_frame_is_captured(frame)


def test_huge_frames_are_captured_whole() -> None:
    text_item, audio, junk = huge_frames()
    assert assert_frame_is_captured(text_item).type == "conversation.item.create"
    elided = assert_frame_is_captured(audio).payload["audio"]
    assert elided["bytes"] == 2 * 1024 * 1024 and set(elided) == {"bytes", "duration_ms", "sha256"}
    unparsed = assert_frame_is_captured(junk)  # cut off: not JSON, kept whole as raw text
    assert unparsed.type == UNPARSED_TYPE and unparsed.payload["raw_text"] == junk.decode()


# -- Envelope.from_bytes --------------------------------------------------------------------

VALID = {
    "v": 1,
    "envelope_id": "0193f5a2-7c1e-7a00-8000-000000000001",
    "session_id": "sess_fuzz",
    "seq": 3,
    "direction": "server",
    "type": "response.done",
    "observed_at": "2026-11-27T10:00:00.000001Z",
    "source": "proxy",
    "payload": {"type": "response.done"},
}


def assert_reads_or_rejects(data: bytes | str) -> None:
    """Only EnvelopeError, with a one-line reason; what is read round-trips."""
    try:
        envelope = Envelope.from_bytes(data)
    except EnvelopeError as exc:
        assert str(exc).startswith("not a valid Envelope v1: ") and "\n" not in str(exc)
        return
    assert_round_trip(envelope.to_bytes())


@FUZZ
@given(st.binary(max_size=300))
def test_from_bytes_of_any_bytes(data: bytes) -> None:
    assert_reads_or_rejects(data)


@FUZZ
@given(any_text)
def test_from_bytes_of_any_text(data: str) -> None:
    assert_reads_or_rejects(data)


@FUZZ
@given(json_values)
def test_from_bytes_of_any_json_value(value: Any) -> None:
    assert_reads_or_rejects(json.dumps(value))


@FUZZ
@given(
    st.dictionaries(st.sampled_from(sorted(VALID)) | st.text(max_size=8), json_values, max_size=4)
)
def test_from_bytes_of_envelopes_with_fields_replaced(changes: dict[str, Any]) -> None:
    data = json.dumps({**VALID, **changes}).encode()
    assert_reads_or_rejects(data)


@FUZZ
@given(st.lists(st.sampled_from(sorted(VALID)), max_size=3, unique=True))
def test_from_bytes_of_envelopes_with_fields_missing(missing: list[str]) -> None:
    data = json.dumps({k: v for k, v in VALID.items() if k not in missing}).encode()
    if {"v", "envelope_id", "observed_at"}.issuperset(missing):  # these have defaults
        assert_round_trip(Envelope.from_bytes(data).to_bytes())
    else:
        with pytest.raises(EnvelopeError):
            Envelope.from_bytes(data)


@FUZZ
@given(events)
def test_valid_envelopes_round_trip_byte_stable(payload: dict[str, Any]) -> None:
    envelope = Envelope.from_bytes(json.dumps({**VALID, "payload": payload}))
    data = envelope.to_bytes()
    assert Envelope.from_bytes(data).to_bytes() == data
    assert Envelope.from_bytes(data).payload == payload


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"v": 2}, "v"),
        ({"v": "1"}, "v"),
        ({"seq": "abc"}, "seq"),
        ({"seq": -1}, "seq"),
        ({"payload": ["a", "list"]}, "payload"),
        ({"direction": "sideways"}, "direction"),
        ({"observed_at": "0001-01-01T00:30:00+01:00"}, "observed_at"),
        ({"observed_at": "9999-12-31T23:59:59-01:00"}, "observed_at"),
    ],
)
def test_rejects_name_the_field(changes: dict[str, Any], where: str) -> None:
    with pytest.raises(EnvelopeError, match=rf"^not a valid Envelope v1: {where}: "):
        Envelope.from_bytes(json.dumps({**VALID, **changes}))


def test_every_corpus_envelope_is_read_or_rejected() -> None:
    for name in (*LINE_FILES, "huge_frame.jsonl.gz"):
        for line in corpus_lines(name):
            assert_reads_or_rejects(line)


@pytest.mark.parametrize(
    "kind", ["voxledger.session.closed", "voxledger.session.opened", "voxledger.unparsed"]
)
def test_a_frame_cannot_pass_for_voxledgers_own_events(kind: str) -> None:
    # A client sending `voxledger.session.closed` would end its session for policy and cost.
    frame = json.dumps({"type": kind, "raw_text": "spoofed", "frames": {"client": 0}})
    envelope = assert_frame_is_captured(frame)
    assert envelope.type == UNPARSED_TYPE
    assert envelope.payload["raw_text"] == frame and "reserved" in envelope.payload["parse_error"]
