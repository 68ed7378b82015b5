"""Agents that judge a whole session: one accumulator per session over the redacted topic.

A session's inputs are acknowledged only when it closes (its `voxledger.session.closed`
envelope, or silence for `processors.idle_release_s`), so the committed offset never passes
an open session and a restart replays each open session from its start; a rebalance drops
the open sessions of revoked partitions unconcluded, for their new owner replays them whole
(judging a partial session at its idle timeout would send a wrong verdict). Outputs have
deterministic ids, so what a replay sends again is the same record; inputs seen twice in a
session (a replay upstream) are judged once.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TP, EventT

from voxledger.config import Settings, TopicSpec
from voxledger.envelope import Envelope
from voxledger.errors import EnvelopeError
from voxledger.ingest.capture import SESSION_CLOSED
from voxledger.processors.app import DeadLetterWriter, Throughput, raw_topic
from voxledger.processors.metrics import HELD

IDLE_CHECK_S = 1.0
CLOSED_MEMORY = 10_000  # closed sessions remembered, so late replays do not reopen them

log = logging.getLogger("voxledger.processors")


@dataclass
class OpenSession:
    state: Any
    partition: TP  # where its inputs come from: the session is this worker's while it holds it
    events: list[EventT] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    last_seen: float = field(default_factory=time.monotonic)


class SessionAgent:
    """Base of the policy and cost agents: subclasses say how to start, judge and conclude."""

    name: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions: dict[str, OpenSession] = {}
        self.closed: OrderedDict[str, None] = OrderedDict()
        self.throughput = Throughput(self.name)

    # -- what a subclass provides -------------------------------------------------------------

    def start(self, envelope: Envelope) -> Any:
        raise NotImplementedError

    def judge(self, state: Any, envelope: Envelope) -> list[dict[str, Any]]:
        raise NotImplementedError

    def conclude(self, state: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    # -- the loop -----------------------------------------------------------------------------

    def register(self, app: faust.App, source: TopicSpec, output: TopicSpec) -> None:
        dead = self.settings.topics.deadletter
        self.out = raw_topic(app, output.name, output.partitions)
        self.dead_letters = DeadLetterWriter(raw_topic(app, dead.name, dead.partitions), self.name)

        @app.agent(raw_topic(app, source.name, source.partitions), name=self.name)
        async def run(stream: faust.StreamT) -> None:
            async for event in stream.noack().events():
                await self.handle(event)
                self.throughput.add()

        @app.timer(IDLE_CHECK_S)
        async def close_idle() -> None:
            cutoff = time.monotonic() - self.settings.processors.idle_release_s
            for session_id in [s for s, o in self.sessions.items() if o.last_seen < cutoff]:
                await self.finish(session_id)

        @app.on_partitions_revoked.connect
        def drop_revoked(_app: faust.App, revoked: set[TP], **_: Any) -> None:
            self.drop_revoked(revoked)

    def drop_revoked(self, revoked: set[TP]) -> None:
        """Forget open sessions of revoked partitions, inputs unacknowledged: not ours now."""
        for session_id in [s for s, o in self.sessions.items() if o.partition in revoked]:
            del self.sessions[session_id]
        if revoked:
            log.info(
                "%s: partitions revoked, %d session(s) left open", self.name, len(self.sessions)
            )

    async def handle(self, event: EventT) -> None:
        try:
            envelope = Envelope.from_bytes(event.value)
        except EnvelopeError as exc:
            await self._reject(event, str(exc), None)
            return
        if envelope.session_id in self.closed:
            event.ack()  # a late replay of a session already concluded
            return
        session = self.sessions.get(envelope.session_id)
        if session is None:
            state = self.start(envelope)
            session = self.sessions[envelope.session_id] = OpenSession(state, event.message.tp)
        session.last_seen = time.monotonic()
        if envelope.envelope_id in session.seen:
            session.events.append(event)
            return
        try:
            records = self.judge(session.state, envelope)
        except Exception as exc:  # any failure on one input dead-letters it; the agent goes on
            await self._reject(event, f"{type(exc).__name__}: {exc}", envelope.session_id)
            return
        session.seen.add(envelope.envelope_id)
        session.events.append(event)
        await self._send(envelope.session_id, records)
        if envelope.type == SESSION_CLOSED:
            await self.finish(envelope.session_id)
        HELD.labels(self.name).set(sum(len(s.events) for s in self.sessions.values()))

    async def finish(self, session_id: str) -> None:
        """Conclude a session, send what it concludes, then acknowledge all its inputs."""
        session = self.sessions.pop(session_id)
        await self._send(session_id, self.conclude(session.state))
        for event in session.events:
            event.ack()
        self.closed[session_id] = None
        while len(self.closed) > CLOSED_MEMORY:
            self.closed.popitem(last=False)

    def destination(self, record: dict[str, Any]) -> faust.TopicT:
        """Where a record goes: the agent's output topic, unless a subclass routes it."""
        return self.out

    async def _send(self, session_id: str, records: list[dict[str, Any]]) -> None:
        for record in records:
            topic = self.destination(record)
            await topic.send(key=session_id.encode(), value=json.dumps(record).encode())

    async def _reject(self, event: EventT, error: str, session_id: str | None) -> None:
        # The redacted topic holds no raw PII, so the dead letter keeps the bytes.
        await self.dead_letters.send(event, error, session_id=session_id)
        event.ack()
