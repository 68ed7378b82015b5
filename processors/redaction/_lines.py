"""Redacting line-oriented input with order and count kept: plain text, JSONL events."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from voxledger.envelope import Envelope
from voxledger.processors.redaction._engine import RedactedText, Redactor
from voxledger.processors.redaction._payload import not_text
from voxledger.processors.redaction._pseudonyms import Pseudonyms
from voxledger.processors.redaction._session import SessionRedactor
from voxledger.realtime import CLIENT_EVENT_TYPES

# Plain Realtime events (not envelopes) in one input are treated as one session.
PLAIN_SESSION = "plain-events"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def redact_lines(
    lines: Iterable[str],
    redactor: Redactor,
    pseudonyms: Pseudonyms,
    language: str | None = None,
    batch: int = 256,
) -> Iterator[RedactedText]:
    """Each line redacted, in order; lines are analysed in batches for speed."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= batch:
            yield from redactor.redact_texts(chunk, language, pseudonyms)
            chunk = []
    if chunk:
        yield from redactor.redact_texts(chunk, language, pseudonyms)


@dataclass(frozen=True)
class OutputLine:
    index: int
    text: str
    problem: str | None = None  # why the line was redacted as text, for stderr


class JsonlRedactor:
    """Realtime events or envelopes, one JSON object a line, redacted with their order kept.

    Deltas are held until their stream's final event, so output lines wait for them too:
    `feed` yields every line whose turn has come, `finish` the rest.
    """

    def __init__(self, redactor: Redactor, secret: bytes, language: str | None = None) -> None:
        self.redactor = redactor
        self.secret = secret
        self.language = language
        self.sessions: dict[str, SessionRedactor] = {}
        self._pending: dict[int, OutputLine] = {}
        self._where: dict[tuple[str, str], tuple[int, bool]] = {}
        self._next = 0
        self._count = 0

    def feed(self, line: str) -> list[OutputLine]:
        index, self._count = self._count, self._count + 1
        parsed = _parse(line)
        if isinstance(parsed, Envelope):
            self._track(self._session(parsed.session_id).process(parsed), index, parsed, False)
        elif isinstance(parsed, dict):
            envelope = _wrap(parsed, index)
            self._track(self._session(PLAIN_SESSION).process(envelope), index, envelope, True)
        else:
            self._pending[index] = self._as_text(line, index, parsed)
        return self._ready()

    def finish(self) -> list[OutputLine]:
        """Lines still waiting on deltas that never got a final event, redacted as they are."""
        for session in self.sessions.values():
            for envelope in session.flush():
                self._place(envelope)
        return self._ready()

    def _session(self, session_id: str) -> SessionRedactor:
        if session_id not in self.sessions:
            self.sessions[session_id] = SessionRedactor(
                self.redactor, session_id, self.secret, self.language
            )
        return self.sessions[session_id]

    def _track(self, out: list[Envelope], index: int, envelope: Envelope, plain: bool) -> None:
        self._where[(envelope.session_id, envelope.envelope_id)] = (index, plain)
        for done in out:
            self._place(done)

    def _place(self, envelope: Envelope) -> None:
        index, plain = self._where.pop((envelope.session_id, envelope.envelope_id))
        text = (
            json.dumps(envelope.payload, ensure_ascii=False)
            if plain
            else envelope.model_dump_json()
        )
        self._pending[index] = OutputLine(index, text)

    def _as_text(self, line: str, index: int, reason: str | None) -> OutputLine:
        if not line.strip():
            return OutputLine(index, line)
        kind = "json" if reason and reason.startswith("JSON") else "text"
        session = self._session(PLAIN_SESSION)
        language = session.language_for(line)
        spans = self.redactor.spans(line, language, kind)
        done = self.redactor.render(line, spans, session.pseudonyms, language)
        return OutputLine(index, done.text, f"line {index + 1}: {reason}; redacted as text")

    def _ready(self) -> list[OutputLine]:
        ready = []
        while self._next in self._pending:
            ready.append(self._pending.pop(self._next))
            self._next += 1
        return ready


def _parse(line: str) -> Envelope | dict[str, Any] | str:
    """An envelope, a plain event, or the reason the line is neither."""
    try:
        data = json.loads(line)
    except ValueError:
        return "not JSON"
    except RecursionError:
        return "JSON nested too deeply to read"
    if not isinstance(data, dict):
        return "JSON but not an object"
    problem = not_text(data)
    if problem:
        return problem
    if "payload" in data and "session_id" in data:
        try:
            return Envelope.model_validate(data)
        except ValidationError as exc:
            where = ".".join(str(p) for p in exc.errors()[0]["loc"])
            return f"JSON but not a valid envelope ({where})"
    if isinstance(data.get("type"), str):
        return data
    return "JSON but neither a Realtime event nor an envelope"


def _wrap(event: dict[str, Any], index: int) -> Envelope:
    # Known client types (GA and beta) went to OpenAI; every other type came from it.
    direction = "client" if event["type"] in CLIENT_EVENT_TYPES else "server"
    return Envelope(
        envelope_id=f"line-{index}",
        session_id=PLAIN_SESSION,
        seq=index,
        direction=direction,
        type=event["type"],
        observed_at=_EPOCH,
        source="import",
        payload=event,
    )
