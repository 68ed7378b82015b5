"""The stream-processing application: one faust app whose agents read topics keyed by session_id.

At-least-once: an input's offset is committed only after everything it produced was handed
to the producer (faust flushes the producer before each commit), and outputs are
deterministic functions of the input (same ids), so a replay rewrites the same records.
Idempotent producing is off: tansu cannot do it, and the idempotent sinks absorb replays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import faust
from faust.types import EventT

from voxledger.config import Settings
from voxledger.deadletter import DeadLetter
from voxledger.kafka import bootstrap_servers
from voxledger.processors.consumer import App
from voxledger.processors.metrics import DEAD_LETTERS, EVENT_RATE, EVENTS, LAG
from voxledger.topics import topic_ids

APP_ID = "voxledger-processors"
LAG_INTERVAL_S = 5.0

log = logging.getLogger("voxledger.processors")


def create_app(settings: Settings) -> faust.App:
    """The faust app, configured for VoxLedger's topics; agents are added by their modules."""
    servers = bootstrap_servers(settings).split(",")
    app = App(
        APP_ID,
        topic_ids=partial(topic_ids, settings),
        broker=";".join(f"kafka://{server.strip()}" for server in servers),
        store="memory://",
        processing_guarantee="at_least_once",
        topic_allow_declare=False,  # topics are created explicitly with their partition counts
        topic_disable_leader=True,
        topic_partitions=settings.topics.raw.partitions,
        broker_session_timeout=settings.processors.session_timeout_s,
        broker_heartbeat_interval=min(1.0, settings.processors.session_timeout_s / 3),
        broker_commit_interval=settings.processors.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Batch outputs: with faust's default (no linger, 16 KiB batches) every record was its
        # own produce request, and socket writes took most of the agents' time.
        producer_linger_ms=20,
        producer_max_batch_size=1024 * 1024,
        producer_compression_type="zstd",
        web_enabled=False,
        table_standby_replicas=0,
        # Agents hold inputs unacknowledged on purpose (open sessions, held deltas); waiting
        # for every ack would hang shutdown and rebalances. Replays are idempotent.
        stream_wait_empty=False,
    )
    _track_lag(app)
    return app


def raw_topic(app: faust.App, name: str, partitions: int) -> faust.TopicT:
    """A topic of bytes in and bytes out: agents decode themselves, to dead-letter bad input."""
    return app.topic(name, key_serializer="raw", value_serializer="raw", partitions=partitions)


class DeadLetterWriter:
    """Sends an input an agent cannot process to the dead-letter topic, with the reason."""

    def __init__(self, topic: faust.TopicT, agent: str) -> None:
        self.topic = topic
        self.agent = agent

    async def send(
        self,
        event: EventT,
        error: str,
        *,
        session_id: str | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        message = event.message
        letter = DeadLetter.of(
            agent=self.agent,
            error=error,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            original=message.value or b"",
            key=message.key,
            session_id=session_id,
            redact=redact,
        )
        await self.topic.send(key=message.key, value=letter.to_bytes())
        DEAD_LETTERS.labels(self.agent).inc()
        log.warning(
            "dead letter from %s: %s (%s[%d]@%d)",
            self.agent,
            error,
            message.topic,
            message.partition,
            message.offset,
        )


class Throughput:
    """Counts an agent's events and keeps a recent events/s figure for /metrics."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self._count = 0
        self._since = time.monotonic()

    def add(self, n: int = 1) -> None:
        EVENTS.labels(self.agent).inc(n)
        self._count += n
        elapsed = time.monotonic() - self._since
        if elapsed >= LAG_INTERVAL_S:
            EVENT_RATE.labels(self.agent).set(self._count / elapsed)
            self._count, self._since = 0, time.monotonic()


def _track_lag(app: faust.App) -> None:
    @app.timer(LAG_INTERVAL_S)
    async def report_lag() -> None:
        consumer: Any = app.consumer
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = consumer._committed_offset.get(tp)  # faust keeps no public accessor
            if highwater is not None:
                LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - (position or 0)))
