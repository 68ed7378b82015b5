"""Agent `redact`: raw → redacted, one redacted envelope per raw envelope (same id and seq).

Streamed deltas are held until their item's text is complete (the redactor releases them),
and a held input is acknowledged only once its redacted envelope was sent: the committed
offset never passes a held delta, so after a crash the replay rebuilds what was held. A
rebalance drops the sessions of revoked partitions, held deltas unacknowledged, for the same
reason: their new owner replays them from the committed offset.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections import defaultdict
from pathlib import Path

import faust
from faust.types import TP, EventT

from voxledger.config import Settings
from voxledger.envelope import Envelope
from voxledger.errors import EnvelopeError
from voxledger.ingest.capture import SESSION_CLOSED
from voxledger.processors.app import DeadLetterWriter, Throughput, raw_topic
from voxledger.processors.metrics import HELD
from voxledger.processors.redaction import (
    NO_ALLOW,
    AllowList,
    Pseudonyms,
    Redactor,
    SessionRedactor,
)

AGENT = "redact"
IDLE_CHECK_S = 1.0

log = logging.getLogger("voxledger.processors.redact")


def pseudonym_secret(settings: Settings) -> bytes:
    """The HMAC key of pseudonyms: configured, else generated once under the data dir (0600)."""
    if settings.processors.pseudonym_secret:
        return settings.processors.pseudonym_secret.get_secret_value().encode()
    path = settings.data_dir / "secrets" / "pseudonym.key"
    if not path.exists():
        _create_private_file(path, secrets.token_hex(32).encode())
        log.warning("no pseudonym secret configured: generated one at %s", path)
    return path.read_bytes().strip()


def _create_private_file(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)


class RedactAgent:
    """Redacts each session's envelopes in order; bad input goes to dead letters, never lost."""

    def __init__(self, settings: Settings, redactor: Redactor, secret: bytes) -> None:
        self.settings = settings
        self.redactor = redactor
        self.secret = secret
        self.languages = {t.name: t.language for t in settings.tenants}
        self.allowed = {
            t.name: AllowList(t.redaction.allow.terms, t.redaction.allow.patterns)
            for t in settings.tenants
        }
        self.sessions: dict[str, SessionRedactor] = {}
        self.last_seen: dict[str, float] = {}  # session id → monotonic time of its last input
        self.partitions: dict[str, TP] = {}  # session id → the partition its inputs come from
        self.waiting: dict[str, list[EventT]] = defaultdict(list)  # envelope_id → held inputs
        self.throughput = Throughput(AGENT)

    def register(self, app: faust.App) -> None:
        topics = self.settings.topics
        source = raw_topic(app, topics.raw.name, topics.raw.partitions)
        self.out = raw_topic(app, topics.redacted.name, topics.redacted.partitions)
        self.dead_letters = DeadLetterWriter(
            raw_topic(app, topics.deadletter.name, topics.deadletter.partitions), AGENT
        )

        @app.agent(source, name=AGENT)
        async def redact(stream: faust.StreamT) -> None:
            async for event in stream.noack().events():
                await self.handle(event)
                self.throughput.add()

        @app.timer(IDLE_CHECK_S)
        async def release_idle() -> None:
            await self.release_idle_sessions()

        @app.on_partitions_revoked.connect
        def drop_revoked(_app: faust.App, revoked: set[TP], **_: object) -> None:
            self.drop_revoked(revoked)

    def drop_revoked(self, revoked: set[TP]) -> None:
        """Forget sessions of revoked partitions and what they hold, unacknowledged."""
        for session_id in [s for s, tp in self.partitions.items() if tp in revoked]:
            self._forget(session_id)
        self.waiting = defaultdict(
            list, {i: held for i, held in self.waiting.items() if held[0].message.tp not in revoked}
        )

    async def handle(self, event: EventT) -> None:
        try:
            envelope = Envelope.from_bytes(event.value)
        except EnvelopeError as exc:
            await self._reject(event, str(exc), None)
            return
        self.waiting[envelope.envelope_id].append(event)
        try:
            outputs = self._session(envelope).process(envelope)
        except Exception as exc:  # any failure on one input dead-letters it; the agent goes on
            self.waiting.pop(envelope.envelope_id, None)
            await self._reject(event, f"{type(exc).__name__}: {exc}", envelope.session_id)
            return
        await self._send(outputs)
        self.last_seen[envelope.session_id] = time.monotonic()
        self.partitions[envelope.session_id] = event.message.tp
        if envelope.type == SESSION_CLOSED:
            self._forget(envelope.session_id)

    async def release_idle_sessions(self) -> None:
        """Release what silent sessions hold (a proxy died before the session closed)."""
        cutoff = time.monotonic() - self.settings.processors.idle_release_s
        for session_id in [s for s, seen in self.last_seen.items() if seen < cutoff]:
            session = self._forget(session_id)
            if session is not None:
                await self._send(session.flush())

    async def _send(self, outputs: list[Envelope]) -> None:
        for output in outputs:
            await self.out.send(key=output.key(), value=output.to_bytes())
            for held in self.waiting.pop(output.envelope_id, []):
                held.ack()
        HELD.labels(AGENT).set(sum(len(events) for events in self.waiting.values()))

    def _forget(self, session_id: str) -> SessionRedactor | None:
        self.last_seen.pop(session_id, None)
        self.partitions.pop(session_id, None)
        return self.sessions.pop(session_id, None)

    def _session(self, envelope: Envelope) -> SessionRedactor:
        session = self.sessions.get(envelope.session_id)
        if session is None:
            tenant = envelope.tenant or ""
            session = SessionRedactor(
                self.redactor,
                envelope.session_id,
                self.secret,
                self.languages.get(tenant),
                self.allowed.get(tenant, NO_ALLOW),
            )
            self.sessions[envelope.session_id] = session
        return session

    async def _reject(self, event: EventT, error: str, session_id: str | None) -> None:
        # Raw input holds PII: the dead letter keeps a redacted rendering, not the bytes.
        await self.dead_letters.send(event, error, session_id=session_id, redact=self._redact_text)
        event.ack()

    def _redact_text(self, text: str) -> str:
        return self.redactor.redact_text(text, None, Pseudonyms("dead-letter", self.secret)).text
