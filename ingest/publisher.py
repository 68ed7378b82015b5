"""Fire-and-forget publishing of envelopes to Kafka, via a local spool while the broker is away."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from voxledger.config import Settings
from voxledger.envelope import Envelope, message_bytes
from voxledger.ingest.metrics import PublisherMetrics
from voxledger.ingest.spool import Spool, SpoolRecord
from voxledger.kafka import producer_config

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05
# No delivery report for this long means the broker is too slow to keep up: spool instead.
SLOW_AFTER_S = 5.0
PROBE_INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 1.0
DRAIN_BATCH = 500
DRAIN_TIMEOUT_S = 10.0
# Envelopes wait up to this long to share a produce request: at 50 sessions that cut the
# broker's CPU by three quarters (and the producer's by a quarter); nothing reads the raw
# topic by the millisecond. flush() (close, drain) sends at once.
LINGER_MS = 50


class _KafkaLog:
    """librdkafka's own log lines (one per reconnect attempt) go to debug; we log the state."""

    def __init__(self) -> None:
        self._log = logging.getLogger(f"{__name__}.librdkafka")

    def log(self, level: int, msg: str, *args: Any) -> None:
        self._log.debug(msg, *args)


@dataclass
class _InFlight:
    record: SpoolRecord
    produced_at: float


class Publisher:
    """Hands envelopes to a confluent-kafka Producer without waiting for Kafka.

    When the broker is down or too slow (delivery errors, a full producer queue, all brokers
    down, no delivery report for SLOW_AFTER_S) every later envelope, and every one not yet
    acknowledged, goes to the local spool, so per-session order holds. A background thread
    polls the producer, and while spooling, probes the broker and drains the spool in order;
    once it is empty, envelopes go straight to Kafka again.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: PublisherMetrics | None = None,
        *,
        topic: str | None = None,
        spool: Spool | None = None,
        slow_after_s: float = SLOW_AFTER_S,
    ) -> None:
        self.settings = settings
        self.topic = topic or settings.topics.raw.name
        self.metrics = metrics or PublisherMetrics()
        self.spool = spool or Spool(settings.data_dir / "spool", settings.proxy.spool_max_bytes)
        self.slow_after_s = slow_after_s
        self.published = 0  # envelopes handed to publish()
        self.delivered = 0
        self.delivery_failures = 0
        self.spooled = 0
        self._changed = threading.Condition()  # guards the state below; notified on changes
        self._inflight: dict[int, _InFlight] = {}  # insertion order is produce order
        self._next_token = 0
        self._spooling = False
        self._producer: Producer | None = None
        self._abandoned: list[Producer] = []
        self._drain_producer: Producer | None = None
        self._late: set[bytes] = set()  # spooled values an abandoned producer delivered after all
        self._was_full = False
        self._warned_missing_topic = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self.metrics.watch_spool(lambda: self.spool.depth, lambda: self.spool.size_bytes)

    def start(self) -> Publisher:
        if self.spool.depth:
            self._spooling = True  # an earlier run left envelopes: they go first
            self.metrics.spooling.set(1)
        else:
            self._producer = self._new_producer()
        self._thread.start()
        return self

    # -- what the relay calls -------------------------------------------------------------------

    def publish(self, envelope: Envelope) -> bool:
        """Queue one envelope for the raw topic; True when it went to the spool. Never blocks."""
        record = SpoolRecord(self.topic, envelope.key(), message_bytes(envelope))
        with self._changed:
            self.published += 1
            if not self._spooling:
                token, self._next_token = self._next_token, self._next_token + 1
                try:
                    self._producer.produce(
                        record.topic,
                        record.value,
                        record.key,
                        on_delivery=partial(self._on_delivery, token),
                    )
                    self._inflight[token] = _InFlight(record, time.monotonic())
                    return False
                except BufferError:
                    self._start_spooling("the producer queue is full")
                except KafkaException as exc:
                    self._start_spooling(f"the producer failed: {exc.args[0].str()}")
            self.spool.append(record)
            self.spooled += 1
        self.metrics.spooled.inc()
        return True

    @property
    def spooling(self) -> bool:
        return self._spooling

    @property
    def accepting_sessions(self) -> bool:
        """False while the spool is full or cannot be written: new sessions must wait."""
        full = self.spool.full or self.spool.failed is not None
        if full != self._was_full:
            self._was_full = full
            _log_spool_full(full, self.spool)
        return not full

    def status(self) -> dict[str, Any]:
        """A snapshot for another process's PublisherStatus."""
        with self._changed:
            spooling, inflight = self._spooling, bool(self._inflight)
            counts = (self.published, self.delivered, self.delivery_failures, self.spooled)
        depth = self.spool.depth
        return {
            "published": counts[0],
            "delivered": counts[1],
            "delivery_failures": counts[2],
            "spooled": counts[3],
            "spooling": spooling,
            "settled": not spooling and not inflight and depth == 0,
            "spool_depth": depth,
            "spool_bytes": self.spool.size_bytes,
            "spool_failed": self.spool.failed,
        }

    def wait_until(self, predicate: Callable[[Publisher], bool], timeout: float) -> bool:
        """Block until predicate(self) holds (checked on every state change); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    @property
    def settled(self) -> bool:
        """Everything published so far is in the broker."""
        return not self._spooling and not self._inflight and self.spool.depth == 0

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what the producer holds (or spool it), make the spool durable, stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        producer = self._producer
        if producer is not None and producer.flush(timeout):
            with self._changed:
                self._start_spooling("closing before the broker acknowledged everything")
        self._resolve_abandoned()
        if self._drain_producer is not None:
            self._drain_producer.flush(1.0)
        self.spool.close()

    # -- producer callbacks (run on the background thread, inside poll) -------------------------

    def _on_delivery(self, token: int, err: KafkaError | None, msg: Message) -> None:
        now = time.monotonic()
        with self._changed:
            sent = self._inflight.get(token)
            if sent is None:  # moved to the spool already
                if err is None:
                    self._late.add(msg.value())
                return
            if err is None:
                del self._inflight[token]
                self.delivered += 1
            else:
                self.delivery_failures += 1
                self._start_spooling(f"delivery failed: {err.str()}")
            self._changed.notify_all()
        if err is None:
            self.metrics.delivered.inc()
            self.metrics.publish_latency.observe(now - sent.produced_at)
        else:
            self.metrics.delivery_failures.inc()

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN or err.fatal():
            with self._changed:
                self._start_spooling(f"the broker is unreachable: {err.str()}")
        else:
            log.debug("kafka: %s", err.str())

    def _start_spooling(self, reason: str) -> None:
        """Called under the lock: route everything not yet acknowledged to the spool, in order."""
        if self._spooling:
            return
        self._spooling = True
        moved = [sent.record for sent in self._inflight.values()]
        self._inflight.clear()
        for record in moved:
            self.spool.append(record)
        self.spooled += len(moved)
        if self._producer is not None:
            self._abandoned.append(self._producer)  # its late reports are served by the drainer
            self._producer = None
        self._changed.notify_all()
        self.metrics.spooled.inc(len(moved))
        self.metrics.spooling.set(1)
        log.warning(
            "spooling envelopes to %s: %s (%d unacknowledged moved there)",
            self.spool.directory,
            reason,
            len(moved),
        )

    # -- the background thread ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._spooling:
                    self._drain_once()
                else:
                    self._producer.poll(POLL_INTERVAL_S)
                    self._check_slow()
            except Exception:  # the thread must outlive any one failure
                log.exception("publisher background step failed")
                self._stop.wait(PROBE_INTERVAL_S)

    def _check_slow(self) -> None:
        with self._changed:
            oldest = next(iter(self._inflight.values()), None)
            if oldest and time.monotonic() - oldest.produced_at > self.slow_after_s:
                self._start_spooling(f"no delivery report for {self.slow_after_s:.0f} s")

    def _drain_once(self) -> None:
        self._resolve_abandoned()
        producer = self._ready_drain_producer()
        if producer is None:
            self._stop.wait(PROBE_INTERVAL_S)
            return
        records = self.spool.read(DRAIN_BATCH, timeout=PROBE_INTERVAL_S)
        if not records:
            self._finish_draining()
            return
        delivered = self._deliver(producer, records)
        self.spool.acknowledge(delivered)
        with self._changed:
            self._changed.notify_all()
        if delivered < len(records):
            self._discard_drain_producer()
            self._stop.wait(PROBE_INTERVAL_S)

    def _finish_draining(self) -> None:
        with self._changed:
            if self.spool.depth:  # records still on their way to disk
                return
            self._producer, self._drain_producer = self._drain_producer, None
            self._spooling = False
            self._late.clear()
            self._changed.notify_all()
        self.metrics.spooling.set(0)
        log.warning("spool drained; publishing to %s directly again", self.topic)

    def _resolve_abandoned(self) -> None:
        """Purge producers given up on and serve their reports, so `_late` is complete."""
        while self._abandoned:
            producer = self._abandoned.pop(0)
            producer.purge()
            producer.flush(PROBE_TIMEOUT_S)

    def _ready_drain_producer(self) -> Producer | None:
        """A producer to drain with, once the broker answers and has the topic; else None."""
        if self._drain_producer is None:
            self._drain_producer = self._new_producer()
        try:
            metadata = self._drain_producer.list_topics(self.topic, timeout=PROBE_TIMEOUT_S)
        except KafkaException:
            return None
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            if not self._warned_missing_topic:
                self._warned_missing_topic = True
                log.warning(
                    "the broker answers but has no topic %s; create it (voxledger topics create)",
                    self.topic,
                )
            return None
        return self._drain_producer

    def _deliver(self, producer: Producer, records: list[SpoolRecord]) -> int:
        """Produce spooled records and wait for them; how many from the start are delivered."""
        results: list[KafkaError | bool | None] = [False] * len(records)

        def done(index: int, started: float, err: KafkaError | None, _msg: Message) -> None:
            results[index] = err
            if err is None:
                self.metrics.publish_latency.observe(time.monotonic() - started)

        for index, record in enumerate(records):
            if record.value in self._late:  # an abandoned producer delivered it after all
                self._late.discard(record.value)
                results[index] = None
                continue
            producer.produce(
                record.topic,
                record.value,
                record.key,
                on_delivery=partial(done, index, time.monotonic()),
            )
        producer.flush(DRAIN_TIMEOUT_S + PROBE_TIMEOUT_S)
        delivered = next((i for i, r in enumerate(results) if r is not None), len(results))
        with self._changed:
            self.delivered += delivered
            self.delivery_failures += sum(1 for r in results if isinstance(r, KafkaError))
        self.metrics.delivered.inc(delivered)
        return delivered

    def _discard_drain_producer(self) -> None:
        if self._drain_producer is not None:
            self._drain_producer.purge()
            self._drain_producer.flush(PROBE_TIMEOUT_S)
            self._drain_producer = None

    def _new_producer(self) -> Producer:
        # A bounded delivery timeout, so a drain attempt against a dying broker ends.
        return Producer(
            producer_config(
                self.settings,
                logger=_KafkaLog(),
                error_cb=self._on_error,
                **{"message.timeout.ms": int(DRAIN_TIMEOUT_S * 1000), "linger.ms": LINGER_MS},
            )
        )


def _log_spool_full(full: bool, spool: Spool | SpoolStatus) -> None:
    if full:
        log.error(
            "spool full or failing (%d bytes, limit %d, error: %s) at %s; "
            "refusing new sessions until the broker takes the backlog",
            spool.size_bytes,
            spool.max_bytes,
            spool.failed or "none",
            spool.directory,
        )
    else:
        log.warning("spool below its limit again; accepting new sessions")


@dataclass
class SpoolStatus:
    """A spool in another process, as last reported."""

    directory: Path
    max_bytes: int
    depth: int = 0
    size_bytes: int = 0
    failed: str | None = None

    @property
    def full(self) -> bool:
        return self.size_bytes >= self.max_bytes


class PublisherStatus:
    """A Publisher running in another process (the proxy's capture process), as last reported.

    Same read-only face as Publisher (counts, spooling, settled, accepting_sessions, spool);
    a report comes within 50 ms of any change, so that is how far behind it can be.
    """

    def __init__(self, settings: Settings, topic: str | None = None) -> None:
        self.topic = topic or settings.topics.raw.name
        self.spool = SpoolStatus(settings.data_dir / "spool", settings.proxy.spool_max_bytes)
        self.published = self.delivered = self.delivery_failures = self.spooled = 0
        self.spooling = False
        self.settled = True
        self.unavailable: str | None = None  # why the publishing process is gone, if it is
        self._was_full = False

    def update(self, status: dict[str, Any]) -> None:
        self.published = status["published"]
        self.delivered = status["delivered"]
        self.delivery_failures = status["delivery_failures"]
        self.spooled = status["spooled"]
        self.spooling = status["spooling"]
        self.settled = status["settled"]
        self.spool.depth = status["spool_depth"]
        self.spool.size_bytes = status["spool_bytes"]
        self.spool.failed = status["spool_failed"]

    @property
    def accepting_sessions(self) -> bool:
        """False while the spool is full or failing, or nothing would publish at all."""
        full = self.spool.full or self.spool.failed is not None
        if full != self._was_full:
            self._was_full = full
            _log_spool_full(full, self.spool)
        return not full and self.unavailable is None
