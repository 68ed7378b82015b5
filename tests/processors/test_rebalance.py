"""A rebalance takes a partition away: its open sessions are dropped unconcluded, unacknowledged.

The new owner replays such a session from the committed offset, so the old owner must not
conclude what it saw of it (a verdict on half a call) nor acknowledge it. Inputs here are the
agents' own `handle` fed with what faust hands them: a record's bytes, its partition, ack().
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from faust.types import TP

from voxledger.config import Settings
from voxledger.envelope import Envelope
from voxledger.ingest.capture import SESSION_CLOSED
from voxledger.processors.cost.logs import read_envelopes
from voxledger.processors.policy import load_policy
from voxledger.processors.policy_agent import PolicyAgent
from voxledger.processors.redact_agent import RedactAgent

CALL = Path(__file__).parents[1] / "data" / "realtime_logs" / "ga_support_call.jsonl"
KEPT, REVOKED = TP("voxledger.events.redacted", 0), TP("voxledger.events.redacted", 1)


@dataclass
class Message:
    tp: TP
    offset: int
    key: bytes = b""

    @property
    def topic(self) -> str:
        return self.tp.topic

    @property
    def partition(self) -> int:
        return self.tp.partition


@dataclass
class Record:
    """What an agent reads of a faust event."""

    value: bytes
    message: Message
    acked: bool = False

    def ack(self) -> None:
        self.acked = True


@dataclass
class Sent:
    """An output topic: what was sent to it."""

    values: list[dict] = field(default_factory=list)

    async def send(self, key: bytes, value: bytes) -> None:
        self.values.append(json.loads(value))


def call(session_id: str) -> list[Envelope]:
    envelopes, _ = read_envelopes(CALL)
    closing = envelopes[-1].model_copy(
        update={"seq": envelopes[-1].seq + 1, "type": SESSION_CLOSED, "payload": {}}
    )
    return [e.model_copy(update={"session_id": session_id}) for e in [*envelopes, closing]]


def records(envelopes: list[Envelope], tp: TP) -> list[Record]:
    return [Record(e.to_bytes(), Message(tp, offset)) for offset, e in enumerate(envelopes)]


def feed(agent: PolicyAgent | RedactAgent, inputs: list[Record]) -> None:
    async def run() -> None:
        for record in inputs:
            await agent.handle(record)  # type: ignore[arg-type]

    asyncio.run(run())


def verdicts(sent: Sent, session_id: str) -> list[dict]:
    return [r for r in sent.values if r["kind"] == "verdict" and r["session_id"] == session_id]


def test_policy_agent_drops_sessions_of_revoked_partitions_and_judges_their_replay_whole() -> None:
    agent = PolicyAgent(Settings(), load_policy(None))
    agent.out = agent.dead_letters = Sent()  # type: ignore[assignment]
    moved, stays = call("sess_moved"), call("sess_stays")
    half = len(moved) // 2
    first_half = records(moved[:half], REVOKED)
    feed(agent, [*first_half, *records(stays[:half], KEPT)])

    agent.drop_revoked({REVOKED})

    assert set(agent.sessions) == {"sess_stays"}
    assert not any(r.acked for r in first_half)  # the committed offset stays before it
    # Had this worker kept the partition, the replay from the committed offset is the whole call.
    replay = records(moved, REVOKED)
    feed(agent, replay)
    assert len(verdicts(agent.out, "sess_moved")) == 1  # type: ignore[arg-type]
    assert all(r.acked for r in replay)
    assert agent.sessions.keys() == {"sess_stays"}


@pytest.mark.usefixtures("redactor")
def test_redact_agent_drops_held_deltas_of_revoked_partitions(redactor) -> None:
    agent = RedactAgent(Settings(), redactor, b"rebalance test secret")
    agent.out = Sent()  # type: ignore[assignment]
    moved, stays = call("sess_moved"), call("sess_stays")
    delta = next(i for i, e in enumerate(moved) if e.type.endswith("_transcript.delta"))
    held = records(moved[: delta + 1], REVOKED)
    feed(agent, [*held, *records(stays[: delta + 1], KEPT)])
    assert not held[-1].acked  # a delta waits for its item's text to be whole

    agent.drop_revoked({REVOKED})

    assert set(agent.sessions) == {"sess_stays"}
    assert set(agent.partitions) == {"sess_stays"}
    assert all(events[0].message.tp == KEPT for events in agent.waiting.values())
    assert not held[-1].acked
