"""One session's envelopes redacted, streamed deltas held until their text is whole."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from voxledger.envelope import Envelope, elide_audio
from voxledger.ingest.capture import SESSION_CLOSED
from voxledger.processors.redaction._agent import NO_ALLOW, AllowList
from voxledger.processors.redaction._engine import (
    DEFAULT_LANGUAGE,
    NAME_TYPES,
    Context,
    Finding,
    RedactedText,
    Redactor,
)
from voxledger.processors.redaction._payload import (
    FINALS,
    STREAMS,
    Path,
    instructions,
    not_text,
    path_name,
    session_language,
    set_path,
    speaker,
    stream_key,
    strip_logprobs,
    summarise_binary,
    text_fields,
)
from voxledger.processors.redaction._pseudonyms import Pseudonyms
from voxledger.processors.redaction.exceptions import RedactionError

REDACTOR_VERSION = "1.0"
STATE_VERSION = 1
# Events after which a stream's deltas can no longer be completed by a final event.
_ITEM_ENDS = {
    "conversation.item.input_audio_transcription.failed",
    "conversation.item.deleted",
    "conversation.item.truncated",
}


@dataclass
class _Stream:
    """Held deltas of one streamed text (one item's content part or call arguments)."""

    delta_type: str
    response_id: str | None
    item_id: str | None
    envelopes: list[Envelope] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "delta_type": self.delta_type,
            "response_id": self.response_id,
            "item_id": self.item_id,
            "envelopes": [e.model_dump(mode="json") for e in self.envelopes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Stream:
        envelopes = [Envelope.model_validate(e) for e in data["envelopes"]]
        return cls(data["delta_type"], data.get("response_id"), data.get("item_id"), envelopes)


class SessionRedactor:
    """Redacts one session's envelopes; a pure function of its state and the input, in order.

    Deltas of transcripts, text and call arguments are held and released, redacted, when the
    final event of their stream arrives, so PII split across deltas never leaks. The state
    (pseudonym digests and held envelopes, which still hold raw text) is serialisable.
    """

    def __init__(
        self,
        redactor: Redactor,
        session_id: str,
        secret: bytes,
        language: str | None = None,
        allow: AllowList = NO_ALLOW,
    ) -> None:
        if language is not None and language not in redactor.lexicons:
            raise RedactionError(f"language {language!r} is not loaded")
        self.redactor = redactor
        self.session_id = session_id
        self.language = language
        # The tenant's terms, and the names in the session's instructions (the operator's).
        self.allow = allow
        self.pseudonyms = Pseudonyms(session_id, secret)
        self._hint: str | None = None  # from the session's transcription config
        self._detected: str | None = None  # the last language a text gave away
        self._streams: dict[str, _Stream] = {}

    # -- the stream processor's entry points --------------------------------------------------

    def process(self, envelope: Envelope) -> list[Envelope]:
        """Redacted envelopes ready to publish: none while a delta is held, several on release."""
        if envelope.session_id != self.session_id:
            raise RedactionError(
                f"envelope of session {envelope.session_id!r} given to the redactor of "
                f"session {self.session_id!r}"
            )
        event_type, payload = envelope.type, envelope.payload
        problem = not_text(payload)
        if problem:  # a clear reason, not a RecursionError from deepcopy or spaCy's encoding
            raise RedactionError(f"payload cannot be redacted: {problem}")
        self._learn_language(payload)
        self._learn_allowed(payload)
        if event_type in STREAMS and isinstance(payload.get("delta"), str):
            self._hold(envelope)
            return []
        released: list[Envelope] = []
        if event_type in FINALS:
            stream = self._streams.pop(stream_key(FINALS[event_type], payload), None)
            if stream:
                _, field_name, _ = STREAMS[stream.delta_type]
                final = payload.get(field_name)
                released = self._release(stream, final if isinstance(final, str) else None)
        elif event_type == "response.done":
            response = payload.get("response") if isinstance(payload.get("response"), dict) else {}
            released = self._flush(lambda s: s.response_id == response.get("id"))
        elif event_type in _ITEM_ENDS:
            released = self._flush(lambda s: s.item_id == payload.get("item_id"))
        elif event_type == SESSION_CLOSED:
            released = self._flush(lambda s: True)
        return sorted([*released, self._redact(envelope)], key=lambda e: e.seq)

    def flush(self) -> list[Envelope]:
        """Every held delta, redacted as assembled so far (the session ended without finals)."""
        return self._flush(lambda s: True)

    @property
    def held(self) -> int:
        return sum(len(s.envelopes) for s in self._streams.values())

    def state(self) -> dict[str, Any]:
        """Everything needed to resume this session elsewhere; JSON-serialisable."""
        return {
            "version": STATE_VERSION,
            "session_id": self.session_id,
            "language": self.language,
            "hint": self._hint,
            "allow": {"terms": sorted(self.allow.terms), "patterns": list(self.allow.patterns)},
            "detected": self._detected,
            "pseudonyms": self.pseudonyms.to_dict(),
            "streams": {key: s.to_dict() for key, s in self._streams.items()},
        }

    @classmethod
    def from_state(
        cls, redactor: Redactor, secret: bytes, state: dict[str, Any]
    ) -> SessionRedactor:
        if state.get("version") != STATE_VERSION:
            raise RedactionError(f"unknown session state version {state.get('version')!r}")
        session = cls(redactor, state["session_id"], secret, state.get("language"))
        session._hint = state.get("hint")
        allow = state.get("allow") or {}
        session.allow = AllowList(allow.get("terms", ()), allow.get("patterns", ()))
        session._detected = state.get("detected")
        session.pseudonyms = Pseudonyms.from_dict(state["pseudonyms"], secret)
        session._streams = {k: _Stream.from_dict(v) for k, v in state["streams"].items()}
        return session

    # -- language -----------------------------------------------------------------------------

    def _learn_language(self, payload: dict[str, Any]) -> None:
        hint = session_language(payload)
        if hint in self.redactor.lexicons:
            self._hint = hint

    def language_for(self, text: str) -> str:
        """Configured language, else the text's own, else the session's transcription setting."""
        if self.language:
            return self.language
        guess = self.redactor.guess_language(text)
        if guess:
            self._detected = guess
            return guess
        return self._hint or self._detected or DEFAULT_LANGUAGE

    def _learn_allowed(self, payload: dict[str, Any]) -> None:
        """Names the operator's instructions use (brand, persona, products) are not PII."""
        text = instructions(payload)
        if text is None:
            return
        found = self.redactor.spans(text, self.language_for(text), "text")
        names = [text[sp.start : sp.end] for sp in found if sp.type in NAME_TYPES]
        self.allow = self.allow.with_terms(names)

    # -- streamed deltas ----------------------------------------------------------------------

    def _hold(self, envelope: Envelope) -> None:
        payload = envelope.payload
        key = stream_key(envelope.type, payload)
        stream = self._streams.get(key)
        if stream is None:
            stream = _Stream(envelope.type, payload.get("response_id"), payload.get("item_id"))
            self._streams[key] = stream
        stream.envelopes.append(envelope)

    def _flush(self, which: Any) -> list[Envelope]:
        out: list[Envelope] = []
        for key in [k for k, s in self._streams.items() if which(s)]:
            out += self._release(self._streams.pop(key), None)
        return sorted(out, key=lambda e: e.seq)

    def _release(self, stream: _Stream, final: str | None) -> list[Envelope]:
        """The held deltas, each redacted over its own span of the stream's whole text."""
        pieces = [e.payload["delta"] for e in stream.envelopes]
        assembled = "".join(pieces)
        text = assembled if final is None else final
        kind = STREAMS[stream.delta_type][2]
        language = self.language_for(text)
        who = speaker(stream.delta_type, stream.envelopes[0].payload, ("delta",))
        spans = self.redactor.spans(text, language, kind, Context(who, self.allow))
        if text == assembled:
            rendered = self.redactor.render_pieces(pieces, spans, self.pseudonyms)
        else:
            # The final text differs from the deltas: the whole redacted text goes in the first
            # delta and the others are emptied, so nothing of the raw deltas survives.
            whole = self.redactor.render(text, spans, self.pseudonyms, language)
            blank = RedactedText("", ())
            rendered = [whole, *([blank] * (len(pieces) - 1))]
        return [
            self._with_delta(envelope, piece)
            for envelope, piece in zip(stream.envelopes, rendered, strict=True)
        ]

    def _with_delta(self, envelope: Envelope, piece: RedactedText) -> Envelope:
        payload = copy.deepcopy(envelope.payload)
        payload["delta"] = piece.text
        elided = ["payload.logprobs"] if strip_logprobs(payload) else []
        findings = [_at(f, ("delta",)) for f in piece.findings]
        return _stamped(envelope, payload, findings, elided)

    # -- whole envelopes ----------------------------------------------------------------------

    def _redact(self, envelope: Envelope) -> Envelope:
        payload = copy.deepcopy(elide_audio(envelope.payload))
        elided = []
        if strip_logprobs(payload):
            elided.append("payload.logprobs")
        if summarise_binary(payload):
            elided.append("payload.raw_b64")
        fields = text_fields(envelope.type, payload)
        values = [_value(payload, path) for path, _ in fields]
        languages = [self.language_for(v) for v in values]
        found = self.redactor.spans_many(
            [(v, lang, kind) for v, lang, (_, kind) in zip(values, languages, fields, strict=True)],
            [Context(speaker(envelope.type, payload, path), self.allow) for path, _ in fields],
        )
        findings: list[dict[str, Any]] = []
        for (path, _), value, spans, lang in zip(fields, values, found, languages, strict=True):
            done = self.redactor.render(value, spans, self.pseudonyms, lang)
            set_path(payload, path, done.text)
            findings += [_at(f, path) for f in done.findings]
        return _stamped(envelope, payload, findings, elided)


def _value(payload: dict[str, Any], path: Path) -> str:
    data: Any = payload
    for key in path:
        data = data[key]
    return data


def _at(finding: Finding, path: Path) -> dict[str, Any]:
    return {**finding.to_dict(), "field": path_name(path)}


def _stamped(
    envelope: Envelope, payload: dict[str, Any], findings: list[dict[str, Any]], elided: list[str]
) -> Envelope:
    record: dict[str, Any] = {"version": REDACTOR_VERSION, "findings": findings}
    if elided:
        record["elided"] = elided
    return envelope.model_copy(update={"payload": payload, "redaction": record})
