"""`voxledger sink`: the redacted, findings, costs and dead-letter topics → Parquet, exactly once.

One consumer group reads the four topics (never the raw one) and writes, per topic partition,
one batch at a time: by size (`warehouse.flush_max_rows` rows held in all) or by time
(`warehouse.flush_interval_s`). A batch covering offsets [first, last] of a topic partition
becomes one file per (table, day) named `<topic>+<partition>+<first>-<last>.parquet` (see
schema.py). Offsets are committed only after every file of the batch is durable.

Exactly-once tables from at-least-once delivery: after a crash the sink resumes at the
committed offset, where files written but not committed may already exist. It then *follows
the existing files*: a batch starting where a file starts ends where that file ends (through
any chain of overlapping files), so the replay rewrites the same names with the same rows;
a batch never runs into the start of an existing file's range. If the resume offset lies
inside a file's range (a compaction merged uncommitted files), it seeks back to the file's
start. Every file whose range lies inside a range just written is removed. Rows under an
erasure (see erase.py) are dropped before writing.

Before a replay rewrites a file, its records are checked to be the file's: a partition whose
log was reset (a topic deleted and created again, a memory-only broker restarted) starts
again at offset 0 with other records. Then the partition's files are kept under an archive
name, `<topic>~<UTC time of the reset>+<partition>+…`, still read by the views, and the new
log is written beside them: what landed is never overwritten.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pyarrow as pa
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from voxledger.config import Settings
from voxledger.errors import VoxLedgerError
from voxledger.kafka import client_config
from voxledger.topics import LogIdentity, topic_ids
from voxledger.warehouse.erase import ErasureList
from voxledger.warehouse.schema import (
    COSTS,
    DEAD_LETTERS,
    EVENTS,
    FINDINGS,
    SCHEMAS,
    SESSION_COSTS,
    VERDICTS,
    KafkaRecord,
    Role,
    record_to_row,
)
from voxledger.warehouse.storage import (
    ERASURE_LIST,
    DataFile,
    Store,
    data_file_name,
    open_store,
)

__all__ = ["GROUP_ID", "ROLE_TABLES", "Sink", "SinkError", "SinkStats"]

GROUP_ID = "voxledger-sink"
ROLE_TABLES: dict[str, tuple[str, ...]] = {
    "redacted": (EVENTS, DEAD_LETTERS),
    "findings": (FINDINGS, VERDICTS, DEAD_LETTERS),
    "costs": (COSTS, SESSION_COSTS, DEAD_LETTERS),
    "deadletter": (DEAD_LETTERS,),
}
POLL_S = 0.1
POLL_BATCH = 2000
KAFKA_TIMEOUT_S = 10.0
_NOT_LANDED = object()  # no file holds a row for the offset asked about

log = logging.getLogger("voxledger.warehouse.sink")


class SinkError(VoxLedgerError):
    """The sink cannot read its topics or write the warehouse."""


@dataclass
class SinkStats:
    records: int = 0
    rows_written: int = 0
    rows_erased: int = 0
    files_written: int = 0
    files_replaced: int = 0
    flushes: int = 0
    resets: int = 0  # partitions found reset (their landed files archived)


@dataclass
class Batch:
    """What one topic partition has consumed since its last durable flush."""

    topic: str
    partition: int
    role: Role
    start: int  # the first offset this batch covers
    align_end: int | None = None  # an existing file ends here: the batch must end here too
    stop_before: int | None = None  # an existing file starts here: the batch must end before
    last: int | None = None  # the last offset consumed
    verified: bool = True  # False until a replay's records are known to be its files' own
    count: int = 0
    opened_at: float = 0.0
    rows: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, table: str, day: str, values: dict[str, Any], offset: int) -> None:
        if not self.count:
            self.opened_at = time.monotonic()
        self.rows.setdefault((table, day), []).append(values)
        self.last = offset
        self.count += 1


class Sink:
    """The warehouse writer; `run()` consumes until stopped, `run_until()` until given ends."""

    def __init__(
        self,
        settings: Settings,
        *,
        group_id: str = GROUP_ID,
        commit: bool = True,
        store: Store | None = None,
        after_flush: Callable[[set[str]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.after_flush = after_flush  # called with the tables a flush wrote to
        self.store = store or open_store(settings)
        self.commit = commit
        topics = settings.topics
        self.roles: dict[str, Role] = {
            topics.redacted.name: "redacted",
            topics.findings.name: "findings",
            topics.costs.name: "costs",
            topics.deadletter.name: "deadletter",
        }
        if topics.raw.name in self.roles or len(self.roles) != 4:
            raise SinkError("the raw topic and the sink's four topics must all differ")
        self.raw_topic = topics.raw.name
        self.batches: dict[tuple[str, int], Batch] = {}
        self.tables_written: set[str] = set()
        self.ahead: dict[tuple[str, int], list[DataFile]] = {}  # files at or past the batch
        self.stats = SinkStats()
        self.held = 0  # rows held in all batches: flush_max_rows bounds it
        self.eof: dict[tuple[str, int], int] = {}  # where each partition last reached its end
        self.running = True
        self.erasures = ErasureList()
        self.log_identity = LogIdentity(partial(topic_ids, settings))
        self._erasure_bytes: bytes | None = None
        timeout_ms = int(settings.processors.session_timeout_s * 1000)
        self.consumer = Consumer(
            client_config(
                settings,
                **{
                    "group.id": group_id,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": timeout_ms,
                    "heartbeat.interval.ms": max(100, timeout_ms // 3),
                    "max.poll.interval.ms": max(timeout_ms, 300_000),
                    "fetch.max.bytes": 64 * 1024 * 1024,
                    "enable.partition.eof": True,  # how run_until() knows it caught up
                    "log_level": 3,
                },
            )
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def subscribe(self) -> None:
        """Join the consumer group; partitions start where recovery says (see module doc)."""
        for topic in self.roles:
            self._metadata(topic)  # a missing topic is an error now, not a silent wait
        self.consumer.subscribe(
            list(self.roles), on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def assign_all(self) -> dict[tuple[str, int], int]:
        """Read every partition without a group (rebuild); returns the end offsets now."""
        partitions = [
            TopicPartition(topic, p)
            for topic in self.roles
            for p in sorted(self._metadata(topic).partitions)
        ]
        starts = self._start_positions(partitions)
        ends = {}
        for tp in partitions:
            tp.offset = starts[(tp.topic, tp.partition)]
            ends[(tp.topic, tp.partition)] = self._watermarks(tp)[1]
        self.consumer.assign(partitions)
        return ends

    def stop(self, *_: Any) -> None:
        """Finish the current poll, flush what is held, commit, leave (SIGTERM, Ctrl-C)."""
        self.running = False

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def close(self) -> None:
        self.flush(final=True)
        self.consumer.close()

    def run(self) -> SinkStats:
        """Consume until stop(); then flush and commit what was held."""
        self.subscribe()
        try:
            while self.running:
                self.poll_once()
        finally:
            self.close()
        return self.stats

    def run_until(self, ends: dict[tuple[str, int], int], deadline_s: float | None = None) -> bool:
        """Consume until every partition reached the end it had when we started; False if
        stopped first. `ends` are lower bounds: tansu answers ListOffsets with the start of
        the last record batch, so a partition is done when a fetch reports its end (EOF) at
        or past its `ends` offset."""
        deadline = time.monotonic() + deadline_s if deadline_s else None
        while self.running:
            if all(self.eof.get(key, -1) >= end for key, end in ends.items()):
                self.flush(final=True)
                return True
            if deadline and time.monotonic() > deadline:
                return False
            self.poll_once()
        return False

    def poll_once(self) -> None:
        messages = self.consumer.consume(POLL_BATCH, POLL_S)
        for message in messages:
            error = message.error()
            if error is None:
                self._add(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                self.eof[(message.topic(), message.partition())] = message.offset()
            else:
                if error.fatal():
                    raise SinkError(f"Kafka consumer failed: {error.str()}")
                log.warning("consumer: %s", error.str())
        if self._due():
            self.flush()

    # -- assignment and recovery ---------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # A topic with a new id is a new log: its committed offsets belong to the old one.
        # Read from its start, it meets the reset check in _add, which archives the old files.
        new_logs = self.log_identity.started_over({tp.topic for tp in partitions})
        for topic in sorted(new_logs):
            log.error(
                "%s has a new topic id: its log started over; reading it from the start", topic
            )
        starts = self._start_positions(partitions, new_logs)
        for tp in partitions:
            tp.offset = starts[(tp.topic, tp.partition)]
        consumer.assign(partitions)
        log.info(
            "assigned %s", ", ".join(f"{t.topic}[{t.partition}]@{t.offset}" for t in partitions)
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        self.flush(keys=keys, final=True)
        for key in keys:
            dropped = self.batches.pop(key, None)
            if dropped and dropped.align_end is None:
                self.held -= dropped.count
            self.ahead.pop(key, None)
        consumer.unassign()

    def _start_positions(
        self, partitions: list[TopicPartition], new_logs: set[str] = frozenset()
    ) -> dict[tuple[str, int], int]:
        """Where each partition's next batch starts: the committed offset (else, and in
        `new_logs`, the log start), moved back to the start of any file whose range holds it."""
        committed = {}
        resumed = [tp for tp in partitions if tp.topic not in new_logs]
        if self.commit and resumed:
            try:
                for tp in self.consumer.committed(resumed, timeout=KAFKA_TIMEOUT_S):
                    committed[(tp.topic, tp.partition)] = tp.offset
            except KafkaException as exc:
                raise SinkError(f"cannot read committed offsets: {exc.args[0].str()}") from None
        tables = {t for tp in partitions for t in ROLE_TABLES[self.roles[tp.topic]]}
        files = self.store.list_files(sorted(tables))
        starts = {}
        for tp in partitions:
            key = (tp.topic, tp.partition)
            start = committed.get(key, -1)
            if start < 0:
                start = self._watermarks(tp)[0]
            mine = [f for f in files if (f.topic, f.partition) == key]
            start = _seek_back(mine, start)
            self.ahead[key] = [f for f in mine if f.last >= start]
            self.batches[key] = self._new_batch(key, start)
            starts[key] = start
        return starts

    def _new_batch(self, key: tuple[str, int], start: int) -> Batch:
        files = sorted((f for f in self.ahead.get(key, []) if f.last >= start), key=_by_first)
        self.ahead[key] = files
        end = None
        for f in files:  # the chain of files from `start`: the batch must cover all of it
            if f.first <= (start if end is None else end):
                end = f.last if end is None else max(end, f.last)
        stop = None if end is not None else min((f.first for f in files), default=None)
        return Batch(
            *key, self.roles[key[0]], start, align_end=end, stop_before=stop, verified=end is None
        )

    # -- consuming -----------------------------------------------------------------------------

    def _add(self, message: Message) -> None:
        key = (message.topic(), message.partition())
        offset = message.offset()
        batch = self.batches.get(key)
        if batch is None:
            return  # not ours: a revoked partition's last fetch
        ts_type, ts = message.timestamp()
        record = KafkaRecord(key[0], key[1], offset, message.value(), ts if ts_type else None)
        row = record_to_row(record, batch.role, self.raw_topic)
        if offset < batch.start or not batch.verified:
            landed = self._landed_timestamp(key, offset)
            if landed is not _NOT_LANDED and landed != row.values["kafka_timestamp"]:
                batch = self._start_over(key, offset)
            elif offset < batch.start:
                return  # already durable
            elif landed is not _NOT_LANDED:
                batch.verified = True
        batch = self._make_room(batch, offset)
        batch.add(row.table, row.date, row.values, offset)
        self.stats.records += 1
        if batch.align_end is not None:
            if offset >= batch.align_end:  # the replayed range is complete: rewrite its files
                self._flush_batches([batch])
            return
        self.held += 1
        if self.held >= self.settings.warehouse.flush_max_rows:
            self.flush()

    def _make_room(self, batch: Batch, offset: int) -> Batch:
        """Close the batch where an existing file's range says it ends, before `offset`."""
        while True:
            if batch.align_end is not None and offset > batch.align_end:
                self._flush_batches([batch])
            elif batch.stop_before is not None and offset >= batch.stop_before:
                self._flush_batches([batch], end=batch.stop_before - 1)
            else:
                return batch
            batch = self.batches[(batch.topic, batch.partition)]

    def _landed_timestamp(self, key: tuple[str, int], offset: int) -> Any:
        """The Kafka timestamp of the row this partition's files hold for `offset`, or
        _NOT_LANDED (never written, or erased)."""
        for f in self._landed_files(key):
            if f.first <= offset <= f.last:
                rows = self.store.read_table(f.path, ["kafka_offset", "kafka_timestamp"])
                for found, ts in zip(*rows.to_pydict().values(), strict=True):
                    if found == offset:
                        return ts
        return _NOT_LANDED

    def _landed_files(self, key: tuple[str, int]) -> list[DataFile]:
        """Every file this topic partition has in the warehouse now."""
        tables = ROLE_TABLES[self.roles[key[0]]]
        return [f for f in self.store.list_files(tables) if (f.topic, f.partition) == key]

    def _start_over(self, key: tuple[str, int], offset: int) -> Batch:
        """The partition's log was reset: archive what landed from the old log, then write
        the new one from `offset`. Held rows of the old log are written first, uncommitted
        (their offsets mean nothing in the new log)."""
        batch = self.batches[key]
        replayed = batch.align_end is not None  # an unverified replay: it holds new records
        if batch.count and not replayed:
            self._write(batch, batch.last)
            self.held -= batch.count
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        archived = 0
        for f in self._landed_files(key):
            name = data_file_name(f"{f.topic}~{stamp}", f.partition, f.first, f.last)
            self.store.move(f.path, self.store.file_path(f.table, f.date, name))
            archived += 1
        log.error(
            "%s[%d] was reset: offset %d holds another record than the warehouse has; "
            "kept %d landed file(s) as %s~%s, writing the new log beside them",
            *key,
            offset,
            archived,
            key[0],
            stamp,
        )
        self.stats.resets += 1
        self.ahead[key] = []
        if replayed and offset >= batch.start:  # keep its records, as an ordinary batch
            batch.align_end, batch.stop_before, batch.verified = None, None, True
            self.held += batch.count
        else:
            batch = self.batches[key] = Batch(*key, self.roles[key[0]], offset)
        return batch

    def _due(self) -> bool:
        held = [b for b in self.batches.values() if b.count and b.align_end is None]
        if not held:
            return False
        oldest = min(b.opened_at for b in held)
        return time.monotonic() - oldest >= self.settings.warehouse.flush_interval_s

    # -- writing -------------------------------------------------------------------------------

    def flush(self, keys: Iterable[tuple[str, int]] | None = None, *, final: bool = False) -> None:
        """Write every held batch (not a replay still short of its file's end), then commit."""
        chosen = (
            self.batches
            if keys is None
            else {k: self.batches[k] for k in keys if k in self.batches}
        )
        ready = [b for b in chosen.values() if b.count and b.align_end is None]
        if ready:
            self._flush_batches(ready)
        if final and self.commit:
            log.info("sink stopped: %s", self.stats)

    def _flush_batches(self, batches: list[Batch], end: int | None = None) -> None:
        self._reload_erasures()
        commits = []
        for batch in batches:
            last = (
                end
                if end is not None
                else batch.align_end
                if batch.align_end is not None
                else batch.last
            )
            if batch.count:
                assert last is not None
                self._write(batch, last)
                commits.append(TopicPartition(batch.topic, batch.partition, last + 1))
            key = (batch.topic, batch.partition)
            next_start = last + 1 if last is not None else batch.start
            self.batches[key] = self._new_batch(key, next_start)
            if batch.align_end is None:
                self.held -= batch.count
        if commits and self.commit:
            try:
                self.consumer.commit(offsets=commits, asynchronous=False)
            except KafkaException as exc:  # files are durable: a replay rewrites the same names
                log.warning("offset commit failed (will replay): %s", exc.args[0].str())
        self.stats.flushes += 1
        if self.after_flush and self.tables_written:
            self.after_flush(self.tables_written)
        self.tables_written = set()

    def _write(self, batch: Batch, last: int) -> None:
        name = data_file_name(batch.topic, batch.partition, batch.start, last)
        written = set()
        for (table, day), rows in sorted(batch.rows.items()):
            arrow = pa.Table.from_pylist(rows, schema=SCHEMAS[table])
            arrow, erased = self.erasures.apply(arrow)
            path = self.store.file_path(table, day, name)
            self.store.write_table(path, arrow)
            written.add(path)
            self.tables_written.add(table)
            self.stats.rows_written += arrow.num_rows
            self.stats.rows_erased += erased
            self.stats.files_written += 1
        self._drop_replaced((batch.topic, batch.partition), batch.start, last, written)

    def _drop_replaced(
        self, key: tuple[str, int], first: int, last: int, written: set[str]
    ) -> None:
        """Remove files whose range the batch just rewrote (their rows are in the new files)."""
        keep = []
        for f in self.ahead.get(key, []):
            if first <= f.first and f.last <= last:
                if f.path not in written:
                    self.store.delete(f.path)
                    self.stats.files_replaced += 1
            else:
                keep.append(f)
        self.ahead[key] = keep

    def _reload_erasures(self) -> None:
        data = self.store.read_bytes(self.store.path(ERASURE_LIST)) or b""
        if data != self._erasure_bytes:
            self.erasures = ErasureList.parse(data)
            self._erasure_bytes = data

    # -- Kafka helpers -------------------------------------------------------------------------

    def _metadata(self, topic: str) -> Any:
        try:
            found = self.consumer.list_topics(topic, timeout=KAFKA_TIMEOUT_S).topics.get(topic)
        except KafkaException as exc:
            raise SinkError(f"Kafka does not answer: {exc.args[0].str()}") from None
        if found is None or found.error is not None or not found.partitions:
            raise SinkError(f"topic {topic} does not exist (run `voxledger topics create`)")
        return found

    def _watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        try:
            return self.consumer.get_watermark_offsets(tp, timeout=KAFKA_TIMEOUT_S)
        except KafkaException as exc:
            raise SinkError(
                f"cannot read offsets of {tp.topic}[{tp.partition}]: {exc.args[0].str()}"
            ) from None


def _batch_end(batch: Batch) -> int | None:
    return batch.align_end if batch.align_end is not None else batch.last


def _by_first(f: DataFile) -> int:
    return f.first


def _seek_back(files: list[DataFile], start: int) -> int:
    """Move `start` back to the first offset of any file whose range holds it, repeatedly."""
    moved = True
    while moved:
        moved = False
        for f in files:
            if f.first < start <= f.last:
                start, moved = f.first, True
    return start


def run_sink(settings: Settings) -> SinkStats:
    """`voxledger sink`: run until SIGTERM/Ctrl-C, then flush, commit and leave."""
    sink = Sink(settings, after_flush=budget_check(settings))
    sink.install_signal_handlers()
    return sink.run()


def budget_check(settings: Settings) -> Callable[[set[str]], None] | None:
    """After a flush that landed costs, look for daily/monthly budget crossings."""
    if not any(t.budgets.daily_usd or t.budgets.monthly_usd for t in settings.tenants):
        return None
    from voxledger.warehouse.budgets import BudgetAlerts
    from voxledger.warehouse.db import connect

    alerts = BudgetAlerts(settings)

    def check(tables: set[str]) -> None:
        if COSTS in tables:
            with connect(settings, read_only=True) as db:
                alerts.check(db)

    return check
