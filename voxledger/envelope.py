"""Envelope v1: the versioned wrapper every captured Realtime event travels in."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from importlib import resources
from typing import Any, Literal

import orjson
import uuid_utils
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
)

from voxledger.errors import EnvelopeError

ENVELOPE_VERSION = 1
# A frame that is not a JSON object with a string `type` is carried under this type.
UNPARSED_TYPE = "voxledger.unparsed"
# Events nested deeper are kept as raw text: Envelope.from_bytes reads 200 levels at most,
# and orjson writes 255; Realtime events (tool schemas included) stay far below.
MAX_EVENT_DEPTH = 128
# VoxLedger's own event types (session.opened/closed, unparsed): never taken from a frame,
# or a client could end its session downstream by sending `voxledger.session.closed`.
RESERVED_TYPE_PREFIX = "voxledger."
# An envelope travels as one Kafka message, and librdkafka and Kafka brokers refuse those
# beyond about 1 MB by default: a bigger event keeps a flagged excerpt (see message_bytes).
MAX_MESSAGE_BYTES = 900_000
EXCERPT_CHARS = 16 * 1024

Direction = Literal["client", "server"]
Source = Literal["proxy", "sideband", "import"]

# PCM16 mono at 24 kHz is the Realtime default: 48 bytes per millisecond; G.711 is 8 kHz, 8-bit.
PCM16_24K_BYTES_PER_MS = 48.0
_BYTES_PER_MS = {"audio/pcmu": 8.0, "audio/pcma": 8.0, "g711_ulaw": 8.0, "g711_alaw": 8.0}


def audio_bytes_per_ms(audio_format: str | None) -> float:
    """Bytes per millisecond of a session's audio format (GA `audio/pcm` or beta `pcm16`...)."""
    return _BYTES_PER_MS.get(audio_format or "", PCM16_24K_BYTES_PER_MS)


def new_envelope_id() -> str:
    """A unique, time-ordered id (UUIDv7; monotonic within the process)."""
    return str(uuid_utils.uuid7())


def utc_now() -> datetime:
    return datetime.now(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_from_ns(ns: int) -> datetime:
    """A `time.time_ns()` reading as a UTC datetime, exact to the microsecond."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


_ONE_SECOND = timedelta(seconds=1)


@lru_cache(maxsize=4)
def _utc_second(epoch_s: int) -> str:
    return (_EPOCH + timedelta(seconds=epoch_s)).strftime("%Y-%m-%dT%H:%M:%S")


def format_observed_at(value: datetime) -> str:
    """`%Y-%m-%dT%H:%M:%S.%fZ` in UTC; the second's text is cached (frames come many a second)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if value.year < 1000:  # strftime does not pad such years; keep its exact output
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    epoch_s = (value - _EPOCH) // _ONE_SECOND
    return f"{_utc_second(epoch_s)}.{value.microsecond:06d}Z"


class Envelope(BaseModel):
    """One Realtime frame as VoxLedger saw it; `payload` keeps every field of the event."""

    model_config = ConfigDict(extra="allow", frozen=True)

    v: Literal[1] = ENVELOPE_VERSION
    envelope_id: str = Field(default_factory=new_envelope_id)
    session_id: str
    seq: int = Field(ge=0)
    direction: Direction
    type: str
    observed_at: datetime = Field(default_factory=utc_now)
    tenant: str | None = None
    app: str | None = None
    region: str | None = None
    upstream_host: str | None = None
    model: str | None = None
    source: Source
    payload: dict[str, Any]

    @field_validator("observed_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        # Written as UTC: an instant UTC cannot hold (year 1 at +01:00) would fail every write.
        try:
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        except OverflowError:
            raise ValueError("not representable as a UTC time") from None

    @field_serializer("observed_at")
    def _utc_micros(self, value: datetime) -> str:
        return format_observed_at(value)

    @classmethod
    def trusted(cls, **fields: Any) -> Envelope:
        """An envelope VoxLedger built itself, from fields known to be valid: no validation.

        Every declared field must be given, with its type (observed_at a datetime), and no
        others; the result equals `Envelope(**fields)` and serializes to the same bytes.
        """
        envelope = cls.__new__(cls)
        _set = object.__setattr__
        _set(envelope, "__dict__", fields)
        _set(envelope, "__pydantic_fields_set__", set(fields))
        _set(envelope, "__pydantic_extra__", {})
        _set(envelope, "__pydantic_private__", None)
        return envelope

    def to_bytes(self) -> bytes:
        """Compact JSON, fields in declared order then extras: model_dump_json(), only faster."""
        fields = self.__dict__
        body = {name: fields[name] for name in _FIELD_NAMES}
        body["observed_at"] = format_observed_at(body["observed_at"])
        if self.__pydantic_extra__:
            body.update(self.__pydantic_extra__)
        try:
            return orjson.dumps(body, option=_ORJSON_PLAIN, default=_not_plain)
        except (TypeError, orjson.JSONEncodeError):
            # Not plain JSON data (an int beyond 64 bits, a datetime in the payload...):
            # pydantic knows how to write those.
            return self.model_dump_json().encode()

    def key(self) -> bytes:
        """The Kafka message key: all of a session's events land in one partition, in order."""
        return self.session_id.encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Envelope:
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise EnvelopeError(_first_problem(exc)) from None


def message_bytes(envelope: Envelope) -> bytes:
    """The envelope as one Kafka message: to_bytes(), or for an event too big to publish,
    an unparsed envelope with the event's first EXCERPT_CHARS characters, size and sha256."""
    data = envelope.to_bytes()
    if len(data) <= MAX_MESSAGE_BYTES:
        return data
    payload = envelope.payload
    text = payload.get("raw_text")
    if not isinstance(text, str):
        text = json.dumps(payload, ensure_ascii=False, default=str)
    problem = (
        f"{envelope.type} event of {len(data)} bytes exceeds the {MAX_MESSAGE_BYTES} bytes "
        f"a message may hold: its first {EXCERPT_CHARS} characters are kept"
    )
    excerpt = {
        "raw_text": text[:EXCERPT_CHARS],
        "parse_error": problem,
        "event_type": envelope.type,
        "event_bytes": len(text.encode()),
        "event_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    cut = envelope.model_copy(update={"type": UNPARSED_TYPE, "payload": excerpt})
    return cut.to_bytes()


_FIELD_NAMES = tuple(Envelope.model_fields)
# Types orjson would write its own way are handed to `default`, which refuses them.
_ORJSON_PLAIN = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _not_plain(value: Any) -> Any:
    raise TypeError(f"not plain JSON data: {type(value).__name__}")


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors(include_input=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "envelope"
    return f"not a valid Envelope v1: {where}: {err['msg']}"


def parse_frame(frame: str | bytes) -> tuple[str, dict[str, Any]]:
    """A WebSocket frame → (event type, payload); frames that are not JSON events are kept raw."""
    try:
        event = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return _parse_frame_exactly(frame)
    # orjson reads integers beyond 64 bits as floats; the standard parser keeps them exact.
    if (
        isinstance(event, dict)
        and isinstance(event.get("type"), str)
        and not event["type"].startswith(RESERVED_TYPE_PREFIX)
        and not _has_huge(event)
    ):
        return event["type"], event
    return _parse_frame_exactly(frame)


_HUGE = float(2**63)


def _has_huge(value: Any, depth: int = 1) -> bool:
    """Any float of magnitude 2**63 or more (orjson may have read it from an integer),
    or nesting beyond MAX_EVENT_DEPTH: either way the exact reading decides."""
    if depth > MAX_EVENT_DEPTH:
        return True
    if isinstance(value, dict):
        return any(_has_huge(v, depth + 1) for v in value.values() if type(v) is not str)
    if isinstance(value, list):
        return any(_has_huge(v, depth + 1) for v in value if type(v) is not str)
    return type(value) is float and not -_HUGE < value < _HUGE


def _too_deep(value: Any) -> bool:
    """Containers nested beyond MAX_EVENT_DEPTH (iterative: no recursion limit to hit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > MAX_EVENT_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in item)
    return False


def _is_unicode(event: Any) -> bool:
    """False when a string holds a lone surrogate (`"\\ud800"` is valid JSON, not text)."""
    try:
        json.dumps(event, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _parse_frame_exactly(frame: str | bytes) -> tuple[str, dict[str, Any]]:
    # The standard library's reading of a frame: NaN, huge integers and lone surrogates
    # as Python reads them, and its error messages for what is not JSON.
    if isinstance(frame, bytes):
        try:
            text = frame.decode()
        except UnicodeDecodeError:
            return UNPARSED_TYPE, {
                "raw_b64": base64.b64encode(frame).decode(),
                "parse_error": "binary frame is not UTF-8 text",
            }
    else:
        text = frame
        if not _is_unicode(text):  # only a Python caller can pass such a str
            return UNPARSED_TYPE, {
                "raw_b64": base64.b64encode(text.encode(errors="surrogatepass")).decode(),
                "parse_error": "text frame is not valid Unicode (lone surrogates)",
            }
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        return UNPARSED_TYPE, {"raw_text": text, "parse_error": f"invalid JSON: {exc}"}
    except RecursionError:
        return UNPARSED_TYPE, {"raw_text": text, "parse_error": "invalid JSON: nested too deeply"}
    if _too_deep(event):
        problem = f"JSON nested more than {MAX_EVENT_DEPTH} levels deep"
        return UNPARSED_TYPE, {"raw_text": text, "parse_error": problem}
    if not _is_unicode(event):
        problem = "JSON string holds a lone surrogate escape (not Unicode text)"
        return UNPARSED_TYPE, {"raw_text": text, "parse_error": problem}
    if not isinstance(event, dict):
        return UNPARSED_TYPE, {"raw_text": text, "parse_error": "JSON frame is not an object"}
    if not isinstance(event.get("type"), str):
        return UNPARSED_TYPE, {"raw_text": text, "parse_error": "event has no string `type`"}
    if event["type"].startswith(RESERVED_TYPE_PREFIX):
        problem = f"event type {event['type'][:100]!r} is reserved for VoxLedger's own events"
        return UNPARSED_TYPE, {"raw_text": text, "parse_error": problem}
    return event["type"], event


def audio_summary(b64: str, bytes_per_ms: float = PCM16_24K_BYTES_PER_MS) -> dict[str, Any]:
    """What replaces base64 audio in an envelope: its size, length and fingerprint."""
    try:
        # Strict mode rejects what b64decode(validate=True) rejects, without its regex pass.
        audio = binascii.a2b_base64(b64, strict_mode=True)
    except (binascii.Error, ValueError):
        audio = b64.encode()  # not base64: fingerprint the text as sent
    return {
        "bytes": len(audio),
        "duration_ms": round(len(audio) / bytes_per_ms, 3),
        "sha256": hashlib.sha256(audio).hexdigest(),
    }


# (event type, field) pairs whose string value is base64 audio, GA and beta names.
_AUDIO_FIELDS = {
    ("input_audio_buffer.append", "audio"),
    ("response.output_audio.delta", "delta"),
    ("response.audio.delta", "delta"),
}


def elide_audio(
    payload: dict[str, Any], bytes_per_ms: float = PCM16_24K_BYTES_PER_MS
) -> dict[str, Any]:
    """A copy of the payload with every base64 audio string replaced by audio_summary()."""
    event_type = payload.get("type")
    out = dict(payload)
    for etype, field in _AUDIO_FIELDS:
        if event_type == etype and isinstance(out.get(field), str):
            out[field] = audio_summary(out[field], bytes_per_ms)
    item = out.get("item")
    if isinstance(item, dict) and isinstance(item.get("content"), list):
        out["item"] = {**item, "content": [_elide_part(p, bytes_per_ms) for p in item["content"]]}
    return out


def _elide_part(part: Any, bytes_per_ms: float) -> Any:
    # Conversation items carry audio as content parts {type: input_audio|audio, audio: <base64>}.
    if isinstance(part, dict) and isinstance(part.get("audio"), str):
        return {**part, "audio": audio_summary(part["audio"], bytes_per_ms)}
    return part


@cache
def envelope_schema() -> dict[str, Any]:
    """The JSON Schema of Envelope v1, as shipped in voxledger/schemas/."""
    text = resources.files("voxledger").joinpath("schemas/envelope-v1.schema.json").read_text()
    return json.loads(text)
