"""`voxledger compact`: merge a partition's small files into one, without changing any query.

Within one table, day and Kafka topic partition, consecutive files are merged (up to
`max_rows` rows each) into one file named by the union of their offset ranges: the name is
a function of the inputs, so running it again changes nothing.

Crash safety: the merged file is written (durably) first, then the inputs are removed. In
between, each input is *covered*: its range lies inside the merged file's range, and readers
that list files with `storage.live_files()` skip it, so no reader counts a row twice. A run
that finds covered files (a compaction that crashed before removing its inputs) removes
them first; the sink does the same for ranges it rewrites.

It is also the upgrade path for files written by an older VoxLedger: a file that lacks a
column the current schema has is rewritten with it (NULLs), even when it merges with nothing,
so that the views, which read columns by name, bind.

Run it beside the sink, not during a `rebuild` of the same warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

import pyarrow as pa
import pyarrow.parquet as pq

from voxledger.config import Settings
from voxledger.warehouse.schema import BASE_TABLES, SCHEMAS, conform
from voxledger.warehouse.storage import DataFile, Store, covered, data_file_name, open_store

__all__ = ["CompactResult", "compact"]

DEFAULT_MAX_ROWS = 1_000_000


@dataclass(frozen=True)
class CompactResult:
    files_before: int
    files_after: int
    merged: int  # merged files written
    leftovers_removed: int  # covered files of an earlier, interrupted run
    upgraded: int = 0  # lone files rewritten with the current schema's columns


def compact(
    settings: Settings, *, max_rows: int = DEFAULT_MAX_ROWS, tables: tuple[str, ...] = BASE_TABLES
) -> CompactResult:
    """Merge the small files of every partition of `tables`; returns what changed."""
    store = open_store(settings)
    files = store.list_files(tables)
    leftovers = covered(files)
    for f in leftovers:
        store.delete(f.path)
    live = [f for f in files if f not in set(leftovers)]
    merged = upgraded = 0
    after = 0
    key = _group_key
    for _, group in groupby(sorted(live, key=lambda f: (*key(f), f.first)), key=key):
        runs = _runs(store, list(group), max_rows)
        for run in runs:
            if len(run) > 1:
                _merge(store, run)
                merged += 1
            elif _lacks_columns(store, run[0]):
                _merge(store, run)  # a run of one: rewritten in place, conformed
                upgraded += 1
        after += len(runs)
    return CompactResult(len(files), after, merged, len(leftovers), upgraded)


def _group_key(f: DataFile) -> tuple[str, str, str, int]:
    return (f.table, f.date, f.topic, f.partition)


def _runs(store: Store, group: list[DataFile], max_rows: int) -> list[list[DataFile]]:
    """Consecutive files, cut so that no merged file exceeds max_rows (a big file stays alone)."""
    runs: list[list[DataFile]] = []
    current: list[DataFile] = []
    rows = 0
    for f in group:
        n = _row_count(store, f)
        if current and rows + n > max_rows:
            runs.append(current)
            current, rows = [], 0
        current.append(f)
        rows += n
    if current:
        runs.append(current)
    return runs


def _row_count(store: Store, f: DataFile) -> int:
    with store.fs.open_input_file(f.path) as handle:
        return pq.ParquetFile(handle).metadata.num_rows


def _lacks_columns(store: Store, f: DataFile) -> bool:
    with store.fs.open_input_file(f.path) as handle:
        names = set(pq.ParquetFile(handle).schema_arrow.names)
    return not set(SCHEMAS[f.table].names) <= names


def _merge(store: Store, run: list[DataFile]) -> None:
    first, last = run[0], run[-1]
    tables = [conform(store.read_table(f.path), first.table) for f in run]
    merged = pa.concat_tables(tables).sort_by("kafka_offset")
    name = data_file_name(first.topic, first.partition, first.first, last.last)
    target = store.file_path(first.table, first.date, name)
    store.write_table(target, merged)  # durable before any input goes
    for f in run:
        if f.path != target:
            store.delete(f.path)
