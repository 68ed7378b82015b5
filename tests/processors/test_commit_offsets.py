"""The processors commit no offset past a message an agent still holds (faust's own rule
skips one: see `new_offset_behind_held`)."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from weakref import WeakSet

from faust.types import TP
from faust.types.tuples import Message
from intervaltree import IntervalTree

from voxledger.processors.app import new_offset_behind_held

RAW = TP("voxledger.events.raw", 0)


def consumer(committed: int | None) -> SimpleNamespace:
    """The part of faust's consumer state that decides the next commit."""
    return SimpleNamespace(
        _acked=defaultdict(list),
        _acked_index=defaultdict(set),
        _gap=defaultdict(IntervalTree),
        _committed_offset=defaultdict(lambda: None, {RAW: committed}),
        _unacked_messages=WeakSet(),
    )


def delivered(state: SimpleNamespace, offset: int, *, ack: bool) -> Message:
    message = Message(RAW.topic, RAW.partition, offset, 0.0, 0, {}, b"k", b"v", None)
    state._unacked_messages.add(message)
    if ack:
        acknowledge(state, message)
    return message


def acknowledge(state: SimpleNamespace, message: Message) -> None:
    """What faust's Consumer.ack records."""
    message.acked = True
    state._unacked_messages.discard(message)
    state._acked[RAW].append(message.offset)
    state._acked_index[RAW].add(message.offset)


def test_a_held_message_at_the_committed_offset_is_not_skipped() -> None:
    state = consumer(committed=100)
    held = delivered(state, 100, ack=False)  # a transcript delta waiting for its final
    for offset in (101, 102, 103):
        delivered(state, offset, ack=True)

    assert new_offset_behind_held(state, RAW) is None  # faust's own rule commits 104 here
    assert state._acked[RAW] == [101, 102, 103]  # kept for when the delta is sent

    acknowledge(state, held)
    assert new_offset_behind_held(state, RAW) == 104


def test_commits_stop_before_the_first_held_message() -> None:
    state = consumer(committed=None)
    for offset in (0, 1, 2):
        delivered(state, offset, ack=True)
    kept = delivered(state, 3, ack=False)
    delivered(state, 4, ack=True)

    assert new_offset_behind_held(state, RAW) == 3
    assert kept.offset == 3 and state._acked[RAW] == [4]


def test_offsets_never_fetched_count_as_acknowledged() -> None:
    state = consumer(committed=10)
    delivered(state, 10, ack=True)
    state._gap[RAW].addi(11, 13)  # 11 and 12 were never in the log (compacted, markers)
    delivered(state, 13, ack=True)

    assert new_offset_behind_held(state, RAW) == 14
