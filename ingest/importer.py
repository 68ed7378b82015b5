"""Recorded Realtime event logs (JSONL, GA or beta) become source=import envelopes on raw."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from voxledger.config import Settings, Tenant
from voxledger.envelope import (
    MAX_MESSAGE_BYTES,
    UNPARSED_TYPE,
    Direction,
    Envelope,
    envelope_schema,
    message_bytes,
    parse_frame,
)
from voxledger.errors import BrokerError, TopicError, VoxLedgerError
from voxledger.ingest.capture import SESSION_CLOSED, SessionCapture, SessionContext
from voxledger.kafka import bootstrap_servers, producer_config
from voxledger.realtime import CLIENT_EVENT_TYPES, SERVER_EVENT_TYPES
from voxledger.topics import list_topic_partitions

__all__ = [
    "CLIENT_EVENT_TYPES",
    "SERVER_EVENT_TYPES",
    "FileSummary",
    "ImportSummary",
    "LogFileError",
    "SessionSplitter",
    "as_envelope",
    "event_direction",
    "import_logs",
    "read_log",
    "session_id_from_file",
]

# The last word of a server event's type reports something that happened or is streaming.
_SERVER_WORDS = frozenset({"delta", "done", "in_progress", "segment", "error"})
# Enough of a cut-off or console-printed line (`{ type: 'x' }`) to classify it.
_TYPE_IN_TEXT = re.compile(rb"""(?<![\w])["']?type["']?\s*:\s*["']([^"'\\]{1,200})["']""")
_EVENT_ID_IN_TEXT = re.compile(rb"""(?<![\w])["']?event_id["']?\s*:\s*["'][^"'\\]""")
_UNSAFE_IN_ID = re.compile(r"[^A-Za-z0-9._-]+")
FLUSH_TIMEOUT_S = 30.0


class LogFileError(VoxLedgerError):
    """A log file to import is missing or cannot be read."""


def event_direction(event_type: str | None, has_event_id: bool) -> Direction:
    """Which way an event went, from its type.

    Known client and server types (GA and beta) decide by name. An unknown type is a server
    event when it carries an `event_id` (every server event does; clients rarely set one) and
    its last word reads like a server report: past tense (`...ed`), `delta`, `done`,
    `in_progress`, `segment` or `error`. Anything else, and a line whose type cannot be read,
    counts as a client event.
    """
    if event_type in CLIENT_EVENT_TYPES:
        return "client"
    if event_type in SERVER_EVENT_TYPES:
        return "server"
    last_word = (event_type or "").rsplit(".", 1)[-1]
    server_ish = last_word.endswith("ed") or last_word in _SERVER_WORDS
    return "server" if has_event_id and server_ish else "client"


@dataclass
class FileSummary:
    """What one log file became."""

    path: Path
    sessions: dict[str, int] = field(default_factory=dict)  # events per session, in order
    events: int = 0
    parse_errors: int = 0
    republished: int = 0  # lines that already were envelopes

    def count(self, envelope: Envelope) -> None:
        if envelope.type == SESSION_CLOSED:  # our end-of-session marker, not a logged event
            return
        self.sessions[envelope.session_id] = self.sessions.get(envelope.session_id, 0) + 1
        self.events += 1
        self.parse_errors += "parse_error" in envelope.payload

    def text(self) -> str:
        extra = f", {self.republished} already envelopes" if self.republished else ""
        return (
            f"{self.path}: {_plural(len(self.sessions), 'session')}, "
            f"{_plural(self.events, 'event')}, {_plural(self.parse_errors, 'parse error')}{extra}"
        )


@dataclass
class ImportSummary:
    """What `import_logs` published, per file and in total."""

    topic: str
    files: list[FileSummary] = field(default_factory=list)

    @property
    def session_ids(self) -> list[str]:
        return list(dict.fromkeys(sid for f in self.files for sid in f.sessions))

    @property
    def events(self) -> int:
        return sum(f.events for f in self.files)

    @property
    def parse_errors(self) -> int:
        return sum(f.parse_errors for f in self.files)

    def text(self) -> str:
        lines = [f.text() for f in self.files]
        lines.append(
            f"imported {_plural(len(self.files), 'file')}: "
            f"{_plural(len(self.session_ids), 'session')}, {_plural(self.events, 'event')}, "
            f"{_plural(self.parse_errors, 'parse error')} → {self.topic}"
        )
        return "\n".join(lines)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class RawTopicWriter:
    """A confluent-kafka producer for the raw topic that reports every undelivered message."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topics.raw.name
        self.where = bootstrap_servers(settings)
        _check_topic(settings, self.topic)
        self._producer = Producer(producer_config(settings, log_level=0))
        self._failures: list[str] = []
        self.sent = 0

    def publish(self, envelope: Envelope) -> None:
        self.publish_bytes(envelope.key(), message_bytes(envelope))

    def publish_bytes(self, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(self.topic, value, key, on_delivery=self._delivered)
                break
            except BufferError:  # local queue full: let librdkafka send some first
                self._producer.poll(0.1)
            except KafkaException as exc:
                raise BrokerError(f"cannot publish to {self.topic}: {exc.args[0].str()}") from None
        self.sent += 1
        self._producer.poll(0)

    def close(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until the broker has every message; BrokerError when some did not make it."""
        left = self._producer.flush(timeout)
        if left or self._failures:
            reason = self._failures[0] if self._failures else f"no answer within {timeout:.0f} s"
            lost = left + len(self._failures)
            raise BrokerError(
                f"{lost} of {self.sent} messages were not delivered to {self.topic} "
                f"at {self.where}: {reason}"
            )

    def _delivered(self, error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            self._failures.append(error.str())


def _check_topic(settings: Settings, topic: str) -> None:
    # Topics are created explicitly; producing to a missing one would hang or auto-create it.
    if topic not in list_topic_partitions(settings):
        raise TopicError(f"topic {topic} does not exist; create it with `voxledger topics create`")


def import_logs(
    settings: Settings, paths: Iterable[str | Path], tenant: str | None = None
) -> ImportSummary:
    """Publish every event of the given JSONL logs to the raw topic as source=import envelopes."""
    files = [_readable(Path(p)) for p in paths]
    owner = settings.tenant_named(tenant) if tenant else None
    writer = RawTopicWriter(settings)
    summary = ImportSummary(topic=writer.topic)
    try:
        for path in files:
            summary.files.append(_import_file(path, owner, writer))
    finally:
        writer.close()  # what was read is delivered (or reported) even if a later file fails
    return summary


def _readable(path: Path) -> Path:
    if not path.exists():
        raise LogFileError(f"log file {path} does not exist")
    if not path.is_file():
        raise LogFileError(f"log file {path} is not a regular file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise LogFileError(f"cannot read log file {path}: {exc.strerror}") from None
    return path


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as log:
            for number, line in enumerate(log):
                line = line.strip()
                if number == 0:
                    line = line.removeprefix(b"\xef\xbb\xbf")  # editors on Windows add a BOM
                if line:
                    yield line
    except OSError as exc:
        raise LogFileError(f"cannot read log file {path}: {exc.strerror}") from None


def read_log(path: Path) -> Iterator[tuple[int, str]]:
    """A recorded log's non-blank lines with their 1-based numbers, as text: bytes that are
    not UTF-8 read as U+FFFD, so a line with a stray Latin-1 byte is still an event. The one
    reading of recorded logs for `cost` and `policy check` (import keeps the bytes instead,
    as the raw topic holds what was recorded). LogFileError when the file cannot be read."""
    _readable(path)
    try:
        with path.open("rb") as log:
            for number, raw in enumerate(log, start=1):
                # A BOM on any line: logs saved by Windows editors, concatenated.
                line = raw.decode("utf-8", errors="replace").strip().removeprefix("\ufeff")
                if line:
                    yield number, line
    except OSError as exc:
        raise LogFileError(f"cannot read log file {path}: {exc.strerror}") from None


def _import_file(path: Path, owner: Tenant | None, writer: RawTopicWriter) -> FileSummary:
    summary = FileSummary(path)

    def publish(envelope: Envelope) -> None:
        summary.count(envelope)
        writer.publish(envelope)

    context = SessionContext(
        source="import",
        tenant=owner.name if owner else None,
        app=owner.app if owner else None,
        region=owner.region if owner else None,
    )
    splitter = SessionSplitter(path, publish, context)
    for line in _lines(path):
        envelope = as_envelope(line)
        if isinstance(envelope, Envelope):
            summary.count(envelope)
            summary.republished += 1
            if len(line) > MAX_MESSAGE_BYTES:  # too big for Kafka: a flagged excerpt
                writer.publish(envelope)
            else:
                writer.publish_bytes(envelope.key(), line)  # as it was: same envelope_id
        elif isinstance(envelope, str):
            splitter.unparsed(line, envelope)
        else:
            splitter.line(line)
    splitter.finish()
    return summary


def as_envelope(line: str | bytes) -> Envelope | str | None:
    """The line as an Envelope v1 when it already is one (has `v` and `envelope_id`).

    A line that looks like an envelope but is not a valid one gives the reason instead.
    """
    text = line if isinstance(line, bytes) else line.encode(errors="surrogatepass")
    if not text.startswith(b"{") or b'"envelope_id"' not in text:
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not (isinstance(data, dict) and "v" in data and "envelope_id" in data):
        return None
    # The JSON Schema is the contract downstream relies on; it is stricter than the model.
    problem = best_match(_envelope_validator().iter_errors(data))
    if problem is not None:
        where = ".".join(str(p) for p in problem.absolute_path) or "envelope"
        return f"not a valid Envelope v1: {where}: {problem.message}"
    try:
        return Envelope.model_validate(data)
    except ValueError as exc:
        return f"not a valid Envelope v1: {exc}"


@cache
def _envelope_validator() -> Draft202012Validator:
    return Draft202012Validator(envelope_schema())


def session_id_from_file(path: Path) -> str:
    """The session id for a file's events that no session.created names."""
    return "import-" + _UNSAFE_IN_ID.sub("_", path.name)


class SessionSplitter:
    """Cuts one log into sessions at each session.created, one SessionCapture per session.

    Events before the first session.created belong to the session it opens when all of them
    are client events (sent before the server's greeting arrived, as the proxy sees it too);
    once a server event is among them the log began mid-session, so they form a session of
    their own named after the file. A session.created without an id opens session n of the
    file, `import-<file name>-<n>`.
    """

    def __init__(self, path: Path, publish: Any, context: SessionContext | None = None) -> None:
        self.file_session_id = session_id_from_file(path)
        self.context = context or SessionContext(source="import")
        self.publish = publish
        self.opened = 0  # session.created events seen
        self.capture = self._new_capture()
        self.held_server_event = False

    def _new_capture(self) -> SessionCapture:
        return SessionCapture(self.context, self.publish, self.file_session_id)

    def line(self, line: str | bytes) -> str | None:
        """Capture one plain event line; for a line that is not a JSON event, why not."""
        event_type, payload = parse_frame(line)
        problem = None
        if event_type == UNPARSED_TYPE:
            event_type, has_event_id = _recover(line)
            problem = f"not a JSON event ({payload.get('parse_error')})"
            problem += f"; looks like {event_type}" if event_type else ""
        else:
            has_event_id = isinstance(payload.get("event_id"), str) and bool(payload["event_id"])
        direction = event_direction(event_type, has_event_id)
        if event_type == "session.created":
            self._open(payload)
        elif self.capture.session_id is None and direction == "server":
            self.held_server_event = True
        self.capture.frame(direction, line)
        return problem

    def _open(self, payload: dict[str, Any]) -> None:
        self.opened += 1
        session = payload.get("session")
        new_id = session.get("id") if isinstance(session, dict) else None
        current = self.capture.session_id
        if current is not None and current == new_id:
            return  # the same greeting logged twice: one session, seq keeps counting
        if current is not None or self.held_server_event:
            self._end_session()
            self.capture = self._new_capture()
            self.held_server_event = False
        self.capture.fallback_session_id = f"{self.file_session_id}-{self.opened}"

    def unparsed(self, line: str | bytes, reason: str) -> None:
        """Keep a line that cannot be imported as it is, flagged with why."""
        direction = event_direction(*_recover(line))
        text = line.decode(errors="replace") if isinstance(line, bytes) else line
        payload = {"raw_text": text, "parse_error": reason}
        self.capture.event(direction, UNPARSED_TYPE, payload)

    def finish(self) -> None:
        self._end_session()

    def _end_session(self) -> None:
        # Downstream finalises a session (held deltas, verdicts, cost summaries) on this marker.
        if self.capture.next_seq:
            events = self.capture.next_seq
            marker = {"type": SESSION_CLOSED, "reason": "end of log", "events": events}
            self.capture.event("client", SESSION_CLOSED, marker)
        self.capture.flush()


def _recover(line: str | bytes) -> tuple[str | None, bool]:
    """Type and event_id presence of a line that is not valid JSON, e.g. cut off mid-event."""
    data = line if isinstance(line, bytes) else line.encode(errors="surrogatepass")
    found = _TYPE_IN_TEXT.search(data)
    event_type = found.group(1).decode(errors="replace") if found else None
    return event_type, _EVENT_ID_IN_TEXT.search(data) is not None
