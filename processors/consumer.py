"""faust's Kafka consumer, with the two rules at-least-once needs that faust does not keep.

1. **Never commit past a held message.** Our agents hold inputs unacknowledged on purpose
   (a transcript delta until its item is final, an open session's events). faust's own rule
   lets the committed offset skip one: with C committed and C held, once C+1, C+2… are acked
   its guard `min(acked) - committed > 1` fails and it commits past C, so a kill -9 loses C.
2. **A log that started over is read from its start.** A topic deleted and created again,
   or every topic of a memory-only broker restarted empty, begins again at offset 0 with
   other records. Two ways it shows, both handled by clearing the partition's read, ack and
   commit bookkeeping (and reading from the log's start):
   - the fetch position was past the new log's end: the fetcher resets to its start, below
     faust's read offset, and faust would drop every record under that offset as read;
   - the new log had grown past the old position (or the broker, like tansu, does not report
     it out of range): records from the middle of the new log arrive as if next, and their
     offsets may be committed before the group rejoins. The topic's id (KIP-516) tells: it
     is looked up after every assignment, before fetching resumes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import faust
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from faust.types.tuples import ack_lock
from faust.utils.functional import consecutive_numbers

from voxledger.topics import LogIdentity

log = logging.getLogger("voxledger.processors")


class Consumer(aiokafka_driver.Consumer):
    """faust's aiokafka consumer; see the module docstring for what it changes."""

    def _new_offset(self, tp: TP) -> int | None:
        """The offset to commit for `tp`: the end of the first run of acked offsets, but never
        past the lowest message still unacknowledged."""
        acked = self._acked[tp]
        if not acked:
            return None
        self._fill_gaps(tp, acked)
        acked.sort()
        held = self._lowest_held_offset(tp)
        batch = [o for o in next(consecutive_numbers(acked)) if held is None or o < held]
        if not batch:
            return None  # the next offset to commit is still being processed
        del acked[: len(batch)]
        self._acked_index[tp].difference_update(batch)
        return batch[-1] + 1

    def _fill_gaps(self, tp: TP, acked: list[int]) -> None:
        """Offsets the fetcher never saw (compacted away, transaction markers) count as acked,
        as in faust."""
        gap = self._gap[tp]
        if not gap:
            return
        max_offset = max(acked)
        filled = [o for i in sorted(gap.overlap(0, max_offset)) for o in range(i.begin, i.end)]
        if filled:
            acked.extend(filled)
            gap.chop(0, max(filled[-1], max_offset + 1))

    def _lowest_held_offset(self, tp: TP) -> int | None:
        committed = self._committed_offset[tp]
        return min(
            (
                m.offset
                for m in list(self._unacked_messages)
                if m.tp == tp and not m.acked and (committed is None or m.offset >= committed)
            ),
            default=None,
        )

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        records = await super()._getmany(active_partitions, timeout)
        for tp, batch in records.items():
            if batch and self._is_reset(tp, batch[0].offset):
                self._start_partition_over(tp, f"restarts at offset {batch[0].offset}")
        return records

    async def perform_seek(self) -> None:
        """After an assignment: seek to the committed offsets, except in logs that started over."""
        await super().perform_seek()
        assigned = self.assignment()
        topics: LogIdentity = self.app.log_identity
        new_logs = await asyncio.to_thread(topics.started_over, {tp.topic for tp in assigned})
        restarted = [tp for tp in assigned if tp.topic in new_logs]
        for tp in restarted:
            self._start_partition_over(tp, "has a new topic id")
        if restarted:
            await self._thread.seek_to_beginning(
                *(TopicPartition(tp.topic, tp.partition) for tp in restarted)  # aiokafka's type
            )

    def _is_reset(self, tp: TP, first_offset: int) -> bool:
        """Records below what was committed (or, before any commit, below what was read):
        only a log that started over hands those out unasked; faust's own seeks and
        rebalances move its read offset first."""
        floor = self._committed_offset.get(tp)
        if floor is None:
            floor = self._read_offset.get(tp)
        return floor is not None and first_offset < floor

    def _start_partition_over(self, tp: TP, sign: str) -> None:
        log.warning(
            "%s[%d] %s (read up to %s, committed %s): its log started over (topic created "
            "again, or a memory-only broker restarted); reading the new log from its start",
            tp.topic,
            tp.partition,
            sign,
            self._read_offset.get(tp),
            self._committed_offset.get(tp),
        )
        with ack_lock:
            # Messages of the old log may still be held by agents: their offsets mean nothing
            # in the new log, so their later acks must not reach the commit bookkeeping.
            for message in [m for m in list(self._unacked_messages) if m.tp == tp]:
                message.acked = True
                self._unacked_messages.discard(message)
            for state in (
                self._gap,
                self._acked,
                self._acked_index,
                self._read_offset,
                self._committed_offset,
            ):
                state.pop(tp, None)


class Transport(aiokafka_driver.Transport):
    Consumer = Consumer


class App(faust.App):
    """A faust app whose consumer is the one above; `topic_ids` looks up topics' ids."""

    def __init__(
        self, *args: Any, topic_ids: Callable[[list[str]], dict[str, str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.log_identity = LogIdentity(topic_ids)

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)
