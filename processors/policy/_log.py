"""Checking a JSONL file of envelopes or plain Realtime events, session by session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxledger.envelope import UNPARSED_TYPE, Envelope
from voxledger.ingest.capture import SESSION_CLOSED, SessionContext
from voxledger.ingest.importer import LogFileError, SessionSplitter, as_envelope, read_log
from voxledger.processors.policy._model import Policy
from voxledger.processors.policy._session import Finding, SessionPolicy, Verdict
from voxledger.processors.policy.exceptions import EventLogError


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

    context = SessionContext(
        source="import", tenant=tenant, region=region, upstream_host=upstream_host
    )
    plain = SessionSplitter(path, feed, context)
    for number, line in _lines(path):
        result.lines += 1
        envelope = as_envelope(line)
        if isinstance(envelope, Envelope):
            feed(envelope)
            continue
        if envelope is not None:
            result.warnings.append(f"line {number}: {envelope}, judged as a plain event")
        problem = plain.line(line)
        if problem:
            result.warnings.append(f"line {number}: {problem}")
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
    """The log's lines as `cost` and `import` read them (ingest.importer.read_log)."""
    try:
        yield from read_log(path)
    except LogFileError as exc:
        raise EventLogError(str(exc)) from None
