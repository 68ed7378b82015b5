"""Checking a JSONL file of envelopes or plain Realtime events, session by session."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxledger.envelope import UNPARSED_TYPE, Envelope, parse_frame
from voxledger.ingest.capture import SESSION_CLOSED, SessionCapture, SessionContext
from voxledger.ingest.importer import event_direction, session_id_from_file
from voxledger.processors.policy._model import Policy
from voxledger.processors.policy._session import Finding, SessionPolicy, Verdict
from voxledger.processors.policy.exceptions import EventLogError

# Enough of a cut-off or console-printed line (`{ type: 'x' }`) to classify it.
_TYPE_IN_TEXT = re.compile(r"""(?<![\w])["']?type["']?\s*:\s*["']([^"'\\]{1,200})["']""")
_EVENT_ID_IN_TEXT = re.compile(r"""(?<![\w])["']?event_id["']?\s*:\s*["'][^"'\\]""")


@dataclass
class SessionResult:
    """One session of a checked file: every finding, in order, and the verdict."""

    findings: list[Finding]
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.verdict.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass
class CheckResult:
    """What `check_log` found in one file."""

    path: Path
    sessions: list[SessionResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lines: int = 0

    @property
    def verdict(self) -> str:
        values = {s.verdict.verdict for s in self.sessions}
        return (
            "fail" if "fail" in values else "needs_review" if "needs_review" in values else "pass"
        )


def check_log(
    path: str | Path,
    policy: Policy,
    *,
    tenant: str | None = None,
    region: str | None = None,
    upstream_host: str | None = None,
) -> CheckResult:
    """Judge every session of a JSONL log of envelopes or plain Realtime events.

    Envelopes go to their session as they are. Plain events are wrapped the way ingest
    imports them (one session per `session.created`, seq over both directions), stamped with
    `tenant`, `region` and `upstream_host` when given. Lines that are not JSON events are kept
    as unparsed envelopes and reported as warnings. EventLogError when the file cannot be read
    or holds no event.
    """
    path = Path(path)
    result = CheckResult(path)
    sessions: dict[str, SessionPolicy] = {}
    order: list[str] = []
    events = 0

    def feed(envelope: Envelope) -> None:
        nonlocal events
        session = sessions.get(envelope.session_id)
        if session is None or session.closed:
            if session is not None:  # the same id again after its end: a new run of it
                result.sessions.append(_finish(session))
            session = SessionPolicy(policy, envelope.session_id)
            sessions[envelope.session_id] = session
            order.append(envelope.session_id)
        if envelope.type == SESSION_CLOSED:
            result.sessions.append(_finish(session))
            return
        events += envelope.type != UNPARSED_TYPE
        session.add(envelope)

    context = {"tenant": tenant, "region": region, "upstream_host": upstream_host}
    plain = _PlainEvents(path, context, feed)
    for number, line in _lines(path):
        result.lines += 1
        envelope = _as_envelope(line)
        if isinstance(envelope, Envelope):
            feed(envelope)
        else:
            if envelope is not None:
                result.warnings.append(f"line {number}: {envelope}")
            plain.line(number, line, result.warnings)
    plain.finish()
    for session_id in order:
        session = sessions[session_id]
        if not session.closed:
            result.sessions.append(_finish(session))
    if events == 0:
        raise EventLogError(f"{path} holds no Realtime event")
    return result


def _finish(session: SessionPolicy) -> SessionResult:
    session.close()
    return SessionResult(list(session.findings), session.verdict())


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    if not path.exists():
        raise EventLogError(f"event log {path} does not exist")
    if not path.is_file():
        raise EventLogError(f"event log {path} is not a regular file")
    try:
        with path.open("rb") as log:
            for number, raw in enumerate(log, start=1):
                line = raw.decode("utf-8", errors="replace").strip().removeprefix("\ufeff")
                if line:
                    yield number, line
    except OSError as exc:
        raise EventLogError(f"cannot read event log {path}: {exc.strerror}") from None


def _as_envelope(line: str) -> Envelope | str | None:
    """The line as an Envelope v1 when it is one; the reason when it only looks like one."""
    if not line.startswith("{") or '"envelope_id"' not in line:
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not (isinstance(data, dict) and "v" in data and "envelope_id" in data):
        return None
    try:
        return Envelope.model_validate(data)
    except ValueError as exc:
        first = str(exc).splitlines()
        return f"not a valid Envelope v1, judged as a plain event: {first[-1] if first else exc}"


class _PlainEvents:
    """Plain Realtime events → envelopes, one SessionCapture per session.created."""

    def __init__(self, path: Path, context: dict[str, Any], feed: Any) -> None:
        self.file_id = session_id_from_file(path)
        self.context = context
        self.feed = feed
        self.opened = 0
        self.capture = self._new_capture()
        self.saw_server_event = False

    def _new_capture(self) -> SessionCapture:
        return SessionCapture(
            SessionContext(source="import", **self.context), self.feed, self.file_id
        )

    def line(self, number: int, line: str, warnings: list[str]) -> None:
        event_type, payload = parse_frame(line)
        if event_type == UNPARSED_TYPE:
            event_type, has_id = _recover(line)
            warnings.append(
                f"line {number}: not a JSON event ({payload.get('parse_error')})"
                + (f"; looks like {event_type}" if event_type else "")
            )
            direction = event_direction(event_type, has_id)
            self.capture.event(direction, UNPARSED_TYPE, payload)
            return
        has_id = isinstance(payload.get("event_id"), str) and bool(payload["event_id"])
        direction = event_direction(event_type, has_id)
        if event_type == "session.created":
            self._open(payload)
        elif direction == "server":
            self.saw_server_event = True
        self.capture.frame(direction, line)

    def _open(self, payload: dict[str, Any]) -> None:
        self.opened += 1
        session = payload.get("session")
        new_id = session.get("id") if isinstance(session, dict) else None
        current = self.capture.session_id
        if current is not None and current == new_id:
            return  # the same greeting logged twice
        if current is not None or self.saw_server_event:
            self._end()
            self.capture = self._new_capture()
            self.saw_server_event = False
        self.capture.fallback_session_id = f"{self.file_id}-{self.opened}"

    def _end(self) -> None:
        if self.capture.next_seq:
            marker = {"type": SESSION_CLOSED, "reason": "end of log"}
            self.capture.event("client", SESSION_CLOSED, marker)
        self.capture.flush()

    def finish(self) -> None:
        self._end()


def _recover(line: str) -> tuple[str | None, bool]:
    found = _TYPE_IN_TEXT.search(line)
    return (found.group(1) if found else None), _EVENT_ID_IN_TEXT.search(line) is not None
