"""`voxledger rebuild`: drop the base tables and write them again from the topics (event sourcing).

A consumer without a group reads every partition of the four topics from the start of the log
to the end offsets taken when the rebuild began, then exits; nothing is committed, so the
running sink's position is untouched. The erasure list and the erasures table are kept, and
rows under an erasure are not written again.
"""

from __future__ import annotations

from voxledger.config import Settings
from voxledger.warehouse.schema import BASE_TABLES
from voxledger.warehouse.sink import Sink, SinkError, SinkStats
from voxledger.warehouse.storage import open_store

__all__ = ["rebuild"]


def rebuild(settings: Settings, *, deadline_s: float | None = None) -> SinkStats:
    """Drop every base table and re-read the topics up to their current ends."""
    store = open_store(settings)
    for table in BASE_TABLES:
        store.delete_dir(store.table_dir(table))
    sink = Sink(settings, commit=False, store=store)
    sink.install_signal_handlers()
    try:
        ends = sink.assign_all()
        if not sink.run_until(ends, deadline_s):
            raise SinkError("rebuild stopped before it caught up; run it again")
    finally:
        sink.consumer.close()
    return sink.stats
