"""Reconciliation: every frame the proxy relayed is accounted for, topic by topic, to SQL.

For each session: frames relayed (the proxy's `voxledger.session.closed` counts, plus the
opened and closed markers) = envelopes in raw (seqs gap-free) = envelopes in redacted + the
redact agent's dead letters = rows in `events`; every `response.done` has a cost row; a
closed session has a verdict. Topics are read to their end (partition EOF, which the fetch
reports correctly, unlike a broker's listed watermarks on some brokers), without a consumer
group, and only ids and counts are kept: raw payloads are never printed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from voxledger.config import Settings
from voxledger.errors import VoxLedgerError
from voxledger.ingest.capture import SESSION_CLOSED, SESSION_OPENED
from voxledger.kafka import client_config
from voxledger.warehouse.db import connect

MARKERS = (SESSION_OPENED, SESSION_CLOSED)
READ_TIMEOUT_S = 120.0


@dataclass
class SessionTally:
    """What each stage holds of one session."""

    session_id: str
    tenant: str | None = None
    first_seen: str | None = None
    relayed: int | None = None  # frames the proxy relayed; None: not from the proxy
    closed: bool = False
    capture_lost: bool = False  # the proxy's capture process died during the session
    unpublished: int = 0  # envelopes capture could neither publish nor spool (counted)
    raw_seqs: list[int] = field(default_factory=list)
    raw_ids: set[str] = field(default_factory=set)
    redacted_ids: set[str] = field(default_factory=set)
    dead_letters: int = 0
    responses_done: set[str] = field(default_factory=set)
    events_rows: int = 0
    events_distinct: int = 0
    costed: set[str] = field(default_factory=set)
    verdict: str | None = None

    def problems(self) -> list[str]:
        out = []
        raw = len(self.raw_seqs)
        if self.relayed is not None and self.relayed + len(MARKERS) != raw:
            out.append(
                f"proxy relayed {self.relayed} frames (+2 markers), raw holds {raw}"
                f"{self._why_missing()}"
            )
        missing = self.missing_seqs()
        if missing:
            out.append(f"missing seqs {_ranges(missing)}{self._why_missing()}")
        if raw != len(set(self.raw_seqs)):
            out.append(f"{raw - len(set(self.raw_seqs))} duplicate seq(s) in raw")
        downstream = len(self.redacted_ids) + self.dead_letters
        if downstream != len(self.raw_ids):
            out.append(
                f"raw {len(self.raw_ids)} ≠ redacted {len(self.redacted_ids)}"
                f" + dead letters {self.dead_letters}"
            )
        if self.events_distinct != len(self.redacted_ids):
            out.append(f"events table {self.events_distinct} ≠ redacted {len(self.redacted_ids)}")
        if self.events_rows != self.events_distinct:
            out.append(f"{self.events_rows - self.events_distinct} duplicate event row(s)")
        uncosted = self.responses_done - self.costed
        if uncosted:
            out.append(f"{len(uncosted)} response.done without a cost row")
        if self.closed and self.verdict is None:
            out.append("closed without a verdict")
        return out

    def _why_missing(self) -> str:
        reasons = []
        if self.capture_lost:
            reasons.append("capture process died; session closed 1012")
        if self.unpublished:
            reasons.append(f"{self.unpublished} counted unpublished by capture")
        if not self.closed:
            reasons.append("session still open")
        return f" ({'; '.join(reasons)})" if reasons else ""

    def missing_seqs(self) -> list[int]:
        if not self.raw_seqs:
            return []
        return sorted(set(range(max(self.raw_seqs) + 1)) - set(self.raw_seqs))


@dataclass
class Reconciliation:
    sessions: list[SessionTally]

    @property
    def mismatched(self) -> list[SessionTally]:
        return [s for s in self.sessions if s.problems()]

    @property
    def open_sessions(self) -> list[SessionTally]:
        return [s for s in self.sessions if not s.closed]

    def summary(self) -> str:
        bad = self.mismatched
        envelopes = sum(len(s.raw_ids) for s in self.sessions)
        state = "OK" if not bad else f"MISMATCH in {len(bad)} session(s)"
        return (
            f"{state}: {len(self.sessions)} sessions, {envelopes} raw envelopes, "
            f"{len(self.open_sessions)} still open"
        )


def reconcile(settings: Settings, since: datetime | None = None) -> Reconciliation:
    """Tally every session in raw, redacted, dead letters and the warehouse, then compare."""
    tallies: dict[str, SessionTally] = {}

    def tally(session_id: str) -> SessionTally:
        if session_id not in tallies:
            tallies[session_id] = SessionTally(session_id)
        return tallies[session_id]

    topics = settings.topics
    for value in read_to_end(settings, topics.raw.name):
        _count_raw(value, tally)
    for value in read_to_end(settings, topics.redacted.name):
        _count_redacted(value, tally)
    for value in read_to_end(settings, topics.deadletter.name):
        _count_dead_letter(value, tally)
    _count_warehouse(settings, tallies)
    sessions = sorted(tallies.values(), key=lambda s: (s.first_seen or "", s.session_id))
    if since is not None:
        cutoff = since.isoformat()
        sessions = [s for s in sessions if (s.first_seen or "") >= cutoff[:19]]
    return Reconciliation(sessions)


def read_to_end(settings: Settings, topic: str) -> Iterator[bytes]:
    """Every message value of `topic` from the beginning to each partition's end."""
    group = f"voxledger-reconcile-{uuid.uuid4().hex[:8]}"  # never committed
    consumer = Consumer(
        client_config(
            settings,
            **{"group.id": group, "enable.partition.eof": True, "enable.auto.commit": False},
        )
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise VoxLedgerError(f"topic {topic} does not exist")
        partitions = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions]
        consumer.assign(partitions)
        pending = {tp.partition for tp in partitions}
        while pending:
            message = consumer.poll(READ_TIMEOUT_S)
            if message is None:
                raise VoxLedgerError(f"no answer from the broker reading {topic}")
            error = message.error()
            if error is None:
                yield message.value() or b""
            elif error.code() == KafkaError._PARTITION_EOF:
                pending.discard(message.partition())
            else:
                raise VoxLedgerError(f"reading {topic}: {error.str()}")
    finally:
        consumer.close()


def _envelope_fields(value: bytes) -> dict | None:
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("session_id"), str):
        return None
    return data


def _count_raw(value: bytes, tally: Callable[[str], SessionTally]) -> None:
    data = _envelope_fields(value)
    if data is None:
        return  # not an envelope: the redact agent dead-letters it, without a session
    session = tally(data["session_id"])
    session.tenant = session.tenant or data.get("tenant")
    observed = str(data.get("observed_at") or "")
    if observed and (session.first_seen is None or observed < session.first_seen):
        session.first_seen = observed
    if isinstance(data.get("seq"), int):
        session.raw_seqs.append(data["seq"])
    session.raw_ids.add(str(data.get("envelope_id")))
    if data.get("type") == SESSION_CLOSED:
        session.closed = True
        payload = data.get("payload") or {}
        frames = payload.get("frames")
        session.capture_lost = payload.get("capture_lost") is True
        if isinstance(payload.get("unpublished"), int):
            session.unpublished = payload["unpublished"]
        if isinstance(frames, dict) and data.get("source") == "proxy":
            session.relayed = sum(v for v in frames.values() if isinstance(v, int))


def _count_redacted(value: bytes, tally: Callable[[str], SessionTally]) -> None:
    data = _envelope_fields(value)
    if data is None:
        return
    session = tally(data["session_id"])
    session.redacted_ids.add(str(data.get("envelope_id")))
    if data.get("type") == "response.done":
        response = (data.get("payload") or {}).get("response") or {}
        if isinstance(response, dict) and response.get("id"):
            session.responses_done.add(str(response["id"]))


def _count_dead_letter(value: bytes, tally: Callable[[str], SessionTally]) -> None:
    data = _envelope_fields(value)
    if data is None or data.get("agent") != "redact":
        return  # policy/cost dead letters come from redacted envelopes, already counted
    tally(data["session_id"]).dead_letters += 1


def _count_warehouse(settings: Settings, tallies: dict[str, SessionTally]) -> None:
    with connect(settings, read_only=True) as db:
        for session_id, rows, distinct in db.execute(
            "SELECT session_id, count(*), count(DISTINCT envelope_id) FROM events GROUP BY 1"
        ).fetchall():
            if session_id in tallies:
                tallies[session_id].events_rows = rows
                tallies[session_id].events_distinct = distinct
        for session_id, ref in db.execute(
            "SELECT DISTINCT session_id, ref FROM costs WHERE kind = 'response'"
        ).fetchall():
            if session_id in tallies:
                tallies[session_id].costed.add(ref)
        for session_id, verdict in db.execute(
            "SELECT session_id, verdict FROM verdicts"
        ).fetchall():
            if session_id in tallies:
                tallies[session_id].verdict = verdict


def _ranges(numbers: list[int]) -> str:
    """[3, 4, 5, 9] → '3-5, 9'."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    text = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans[:20])
    return text + (" …" if len(spans) > 20 else "")


def tally_counts(session: SessionTally) -> dict[str, object]:
    """One row of the reconciliation table (also the dashboard's panel)."""
    return {
        "session_id": session.session_id,
        "tenant": session.tenant,
        "relayed": None if session.relayed is None else session.relayed + len(MARKERS),
        "raw": len(session.raw_ids),
        "redacted": len(session.redacted_ids),
        "dead_letters": session.dead_letters,
        "events_rows": session.events_rows,
        "responses": len(session.responses_done),
        "costed": len(session.responses_done & session.costed),
        "verdict": session.verdict or ("(open)" if not session.closed else None),
        "problems": "; ".join(session.problems()),
    }


__all__ = ["Reconciliation", "SessionTally", "read_to_end", "reconcile", "tally_counts"]
