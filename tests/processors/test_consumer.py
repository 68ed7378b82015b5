"""The processors' faust consumer: commits never pass a held message, and a partition whose log
started over is read in full (faust alone drops the new log's records below its old offset).

The consumer here is the real class with faust's bookkeeping as a fresh consumer has it; only
the fetch from Kafka is a stand-in that hands out the given records.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from weakref import WeakSet

from aiokafka import TopicPartition
from faust.types import TP
from faust.types.tuples import Message
from intervaltree import IntervalTree

from voxledger.processors.consumer import Consumer
from voxledger.topics import LogIdentity

RAW = TP("voxledger.events.raw", 0)
OTHER = TP("voxledger.events.raw", 1)


class Fetched:
    """faust's consumer thread, as far as these rules use it: prepared records, committed
    offsets and assignment, and the seeks asked of it."""

    def __init__(self, committed: dict[TP, int] | None = None) -> None:
        self.records: dict[TP, list[SimpleNamespace]] = {}
        self.committed = committed or {}
        self.to_beginning: list[TP] = []

    async def getmany(self, active_partitions: object, timeout: float) -> dict:
        records, self.records = self.records, {}
        return records

    def assignment(self) -> set[TP]:
        return set(self.committed)

    async def seek_to_committed(self) -> dict[TP, int]:
        return self.committed

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        assert all(isinstance(tp, TopicPartition) for tp in partitions)  # aiokafka insists
        self.to_beginning.extend(TP(tp.topic, tp.partition) for tp in partitions)


def consumer(committed: int | None = None, read: int | None = None) -> Consumer:
    """A consumer with faust's commit bookkeeping for RAW, and a stand-in fetch."""
    state = Consumer.__new__(Consumer)  # the bookkeeping below is all these rules read
    state._acked = defaultdict(list)
    state._acked_index = defaultdict(set)
    state._gap = defaultdict(IntervalTree)
    state._committed_offset = defaultdict(lambda: None, {RAW: committed})
    state._read_offset = defaultdict(lambda: None, {RAW: read})
    state._unacked_messages = WeakSet()
    state._thread = Fetched()
    return state


def delivered(state: Consumer, offset: int, *, ack: bool, tp: TP = RAW) -> Message:
    message = Message(tp.topic, tp.partition, offset, 0.0, 0, {}, b"k", b"v", None)
    state._unacked_messages.add(message)
    if ack:
        acknowledge(state, message)
    return message


def acknowledge(state: Consumer, message: Message) -> None:
    """What faust's Consumer.ack records (skipped, as there, for a message already acked)."""
    if message.acked:
        return
    message.acked = True
    state._unacked_messages.discard(message)
    state._acked[message.tp].append(message.offset)
    state._acked_index[message.tp].add(message.offset)


def fetch(state: Consumer, tp: TP, *offsets: int) -> dict:
    state._thread.records = {tp: [SimpleNamespace(offset=o) for o in offsets]}
    return asyncio.run(state._getmany(None, 1.0))


def test_a_held_message_at_the_committed_offset_is_not_skipped() -> None:
    state = consumer(committed=100)
    held = delivered(state, 100, ack=False)  # a transcript delta waiting for its final
    for offset in (101, 102, 103):
        delivered(state, offset, ack=True)

    assert state._new_offset(RAW) is None  # faust's own rule commits 104 here
    assert state._acked[RAW] == [101, 102, 103]  # kept for when the delta is sent

    acknowledge(state, held)
    assert state._new_offset(RAW) == 104


def test_commits_stop_before_the_first_held_message() -> None:
    state = consumer()
    for offset in (0, 1, 2):
        delivered(state, offset, ack=True)
    kept = delivered(state, 3, ack=False)
    delivered(state, 4, ack=True)

    assert state._new_offset(RAW) == 3
    assert kept.offset == 3 and state._acked[RAW] == [4]


def test_offsets_never_fetched_count_as_acknowledged() -> None:
    state = consumer(committed=10)
    delivered(state, 10, ack=True)
    state._gap[RAW].addi(11, 13)  # 11 and 12 were never in the log (compacted, markers)
    delivered(state, 13, ack=True)

    assert state._new_offset(RAW) == 14


def test_a_log_that_starts_over_is_read_from_its_start() -> None:
    state = consumer(committed=1400, read=1430)
    held = delivered(state, 1420, ack=False)  # an agent still holds a message of the old log
    delivered(state, 1425, ack=True)
    state._gap[RAW].addi(1410, 1412)

    fetched = fetch(state, RAW, 0, 1, 2)  # the new log, below what was read and committed

    assert [r.offset for r in fetched[RAW]] == [0, 1, 2]  # handed on, not dropped
    assert state._read_offset[RAW] is None and state._committed_offset[RAW] is None
    assert not state._acked[RAW] and not state._gap[RAW]
    # The old log's held message no longer blocks commits, and its late ack counts for nothing.
    acknowledge(state, held)
    assert state._acked[RAW] == []
    for offset in (0, 1, 2):
        delivered(state, offset, ack=True)
    assert state._new_offset(RAW) == 3


def test_records_from_the_committed_offset_on_are_no_reset() -> None:
    # After a rebalance faust seeks to the committed offset and re-reads from there.
    state = consumer(committed=1400, read=1430)
    acked = delivered(state, 1401, ack=True)

    fetch(state, RAW, 1400, 1401)

    assert state._read_offset[RAW] == 1430 and state._committed_offset[RAW] == 1400
    assert state._acked[RAW] == [acked.offset]


def test_a_reset_touches_only_its_own_partition() -> None:
    state = consumer(committed=1400, read=1430)
    state._committed_offset[OTHER] = 50
    other = delivered(state, 60, ack=False, tp=OTHER)

    fetch(state, RAW, 0)

    assert state._committed_offset[OTHER] == 50
    assert not other.acked and other in state._unacked_messages


def test_an_assignment_in_a_topic_with_a_new_id_reads_it_from_its_start() -> None:
    """The group rejoined after the broker came back empty; the new raw log had grown past the
    old position before, and that position was committed: only the topic id tells."""
    ids = {RAW.topic: "raw-1", "voxledger.events.redacted": "redacted-1"}
    kept = TP("voxledger.events.redacted", 0)
    state = consumer(committed=1700, read=1700)
    state.app = SimpleNamespace(log_identity=LogIdentity(lambda names: {n: ids[n] for n in names}))
    state._thread = Fetched({RAW: 1700, OTHER: 40, kept: 90})
    asyncio.run(state.perform_seek())  # the first assignment: ids noted, committed offsets kept
    assert state._thread.to_beginning == [] and state._read_offset[RAW] == 1700

    ids[RAW.topic] = "raw-2"
    asyncio.run(state.perform_seek())

    assert sorted(state._thread.to_beginning) == [RAW, OTHER]
    assert state._read_offset[RAW] is None and state._committed_offset[OTHER] is None
    assert state._read_offset[kept] == 90  # the redacted topic's log is the same one
