"""A durable local spool for messages the broker cannot take yet: CRC-checked segment files."""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

log = logging.getLogger(__name__)

# Each record: body length and CRC32 of the body, then the body (topic and key lengths, topic,
# key, value). A record whose length or CRC does not check out is a torn write from a crash.
_HEADER = struct.Struct(">II")
_BODY_HEADER = struct.Struct(">HI")
SEGMENT_SUFFIX = ".seg"
SEGMENT_BYTES = 8 * 1024 * 1024
SYNC_INTERVAL_S = 0.05
SYNC_RECORDS = 256
READ_CHUNK_BYTES = 1024 * 1024


class SpoolRecord(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes


def encode_record(record: SpoolRecord) -> bytes:
    topic = record.topic.encode()
    key = record.key or b""
    body = _BODY_HEADER.pack(len(topic), len(key)) + topic + key + record.value
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def decode_records(data: bytes) -> tuple[list[tuple[SpoolRecord, int]], int]:
    """Records in `data` with the offset just past each, and where the valid part ends."""
    records: list[tuple[SpoolRecord, int]] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        start, end = offset + _HEADER.size, offset + _HEADER.size + length
        if end > len(data) or length < _BODY_HEADER.size:
            break
        body = data[start:end]
        if zlib.crc32(body) != crc:
            break
        topic_len, key_len = _BODY_HEADER.unpack_from(body)
        fields = _BODY_HEADER.size
        topic = body[fields : fields + topic_len].decode()
        key = body[fields + topic_len : fields + topic_len + key_len] or None
        records.append((SpoolRecord(topic, key, body[fields + topic_len + key_len :]), end))
        offset = end
    return records, offset


@dataclass
class _Segment:
    path: Path
    durable_bytes: int  # written and fsync'd
    records: int


class Spool:
    """Append from any thread without touching disk; a background thread writes and fsyncs
    in batches. The drainer reads durable records in append order and acknowledges them once
    the broker has them; fully acknowledged segments are deleted.
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        sync_interval_s: float = SYNC_INTERVAL_S,
        sync_records: int = SYNC_RECORDS,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.sync_interval_s = sync_interval_s
        self.sync_records = sync_records
        self.failed: str | None = None  # the last disk error, until a write succeeds again
        self._cond = threading.Condition()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._segments: list[_Segment] = []
        self._ack_offset = 0  # into the first segment
        self._acked_records = 0  # of the first segment
        self._next_number = 1
        self._closing = False
        self._retire = False
        self._read_start, self._read_ends = 0, []  # the drainer's last read
        directory.mkdir(parents=True, exist_ok=True)
        self._recover()
        self._writer = threading.Thread(target=self._write_loop, name="spool-writer", daemon=True)
        self._writer.start()

    # -- what callers see -----------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Records appended and not yet acknowledged."""
        with self._cond:
            durable = sum(s.records for s in self._segments) - self._acked_records
            return durable + len(self._pending)

    @property
    def size_bytes(self) -> int:
        """Bytes on disk plus bytes waiting to be written."""
        with self._cond:
            return sum(s.durable_bytes for s in self._segments) + self._pending_bytes

    @property
    def full(self) -> bool:
        return self.size_bytes >= self.max_bytes

    def append(self, record: SpoolRecord) -> None:
        """Queue one record for the writer; never blocks on disk."""
        data = encode_record(record)
        with self._cond:
            if self._closing:
                raise RuntimeError("the spool is closed")
            self._pending.append(data)
            self._pending_bytes += len(data)
            # The first record starts the writer's batch timer; a full batch ends it early.
            if len(self._pending) == 1 or len(self._pending) >= self.sync_records:
                self._cond.notify_all()

    def read(self, max_records: int, timeout: float = 0.0) -> list[SpoolRecord]:
        """The oldest unacknowledged durable records; waits up to `timeout` for pending ones.

        One reader (the drainer) at a time: acknowledge() refers to the last read.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._readable() or not self._pending, timeout)
            doomed = self._drop_acknowledged_segments()
            first = self._segments[0] if self._segments else None
            start, stop = self._ack_offset, first.durable_bytes if first else 0
        _unlink(doomed)
        self._read_start, self._read_ends = start, []
        if first is None or stop <= start:
            return []
        records = self._read_segment(first.path, start, stop, max_records)
        self._read_ends = [end for _, end in records]
        return [record for record, _ in records]

    def _read_segment(
        self, path: Path, start: int, stop: int, max_records: int
    ) -> list[tuple[SpoolRecord, int]]:
        # The writer only ever appends past `stop`, so this needs no lock.
        with path.open("rb") as file:
            file.seek(start)
            data = file.read(min(stop - start, READ_CHUNK_BYTES))
            records, _ = decode_records(data)
            if not records and len(data) < stop - start:  # one record larger than a chunk
                data += file.read(stop - start - len(data))
                records, _ = decode_records(data)
        return records[:max_records]

    def acknowledge(self, count: int) -> None:
        """The first `count` records of the last read are safe in the broker."""
        if count <= 0:
            return
        if count > len(self._read_ends):
            raise ValueError(f"cannot acknowledge {count} of {len(self._read_ends)} records read")
        with self._cond:
            self._ack_offset = self._read_start + self._read_ends[count - 1]
            self._acked_records += count
            doomed = self._drop_acknowledged_segments()
            if self._segments and self._fully_acked(self._segments[0]) and not self._pending:
                self._retire = True  # the writer deletes its own segment once all is acked
                self._cond.notify_all()
        self._read_ends = []
        _unlink(doomed)

    def wait_durable(self, timeout: float) -> bool:
        """Block until every appended record is on disk; False on timeout."""
        with self._cond:
            self._cond.notify_all()
            return self._cond.wait_for(lambda: not self._pending, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write and fsync what is pending, then stop the writer."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._writer.join(timeout)
        if self._pending:
            log.error("spool closed with %d records unwritten: %s", len(self._pending), self.failed)

    # -- recovery -------------------------------------------------------------------------------

    def _recover(self) -> None:
        paths = sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}"))
        for path in paths:
            data = path.read_bytes()
            records, valid = decode_records(data)
            if valid < len(data):
                # A crash mid-write leaves a torn tail; everything before it is intact.
                log.warning(
                    "spool segment %s: dropped a torn tail of %d bytes after %d records",
                    path.name,
                    len(data) - valid,
                    len(records),
                )
                with path.open("r+b") as file:
                    file.truncate(valid)
                    os.fsync(file.fileno())
            if records:
                self._segments.append(_Segment(path, valid, len(records)))
            else:
                path.unlink()
        if paths:
            self._next_number = int(paths[-1].stem) + 1
        if self._segments:
            log.warning(
                "spool at %s holds %d records from an earlier run; they go to the broker first",
                self.directory,
                sum(s.records for s in self._segments),
            )

    # -- the writer thread ----------------------------------------------------------------------

    def _write_loop(self) -> None:
        file: BinaryIO | None = None
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closing or self._retire)
                if self._pending and not self._closing:
                    # Batch fsyncs: wait for more records, up to the sync interval.
                    deadline = time.monotonic() + self.sync_interval_s
                    self._cond.wait_for(
                        lambda: len(self._pending) >= self.sync_records or self._closing,
                        max(0.0, deadline - time.monotonic()),
                    )
                batch, closing = self._pending[:], self._closing
                file = self._retire_segment(file)
            if batch:
                file = self._write_batch(file, batch)
            if closing:  # nothing is appended once closing: the batch was the last
                if file:
                    file.close()
                return
            if self.failed:
                time.sleep(self.sync_interval_s)  # a disk error: retry, don't spin

    def _write_batch(self, file: BinaryIO | None, batch: list[bytes]) -> BinaryIO | None:
        """Write and fsync the batch, starting a new segment whenever one is full."""
        done = 0
        while done < len(batch):
            if file is None or self._segments[-1].durable_bytes >= self.segment_bytes:
                file = self._open_segment(file)
            segment = self._segments[-1]
            chunk = _fitting(batch[done:], self.segment_bytes - segment.durable_bytes)
            data = b"".join(chunk)
            try:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            except OSError as exc:
                self._write_failed(file, segment, exc)
                return file
            with self._cond:
                segment.durable_bytes += len(data)
                segment.records += len(chunk)
                del self._pending[: len(chunk)]  # appends only ever go to the end
                self._pending_bytes -= len(data)
                if self.failed:
                    log.warning("spool writes work again after: %s", self.failed)
                    self.failed = None
                self._cond.notify_all()
            done += len(chunk)
        return file

    def _write_failed(self, file: BinaryIO, segment: _Segment, exc: OSError) -> None:
        # Cut the partial write so the next attempt appends to a clean record boundary.
        try:
            file.truncate(segment.durable_bytes)
            file.seek(segment.durable_bytes)
        except OSError:
            pass
        if self.failed is None:
            log.error(
                "cannot write the spool at %s: %s; %d records wait in memory",
                self.directory,
                exc,
                len(self._pending),
            )
        self.failed = str(exc)

    def _open_segment(self, file: BinaryIO | None) -> BinaryIO:
        if file:
            file.close()
        with self._cond:
            path = self.directory / f"{self._next_number:020d}{SEGMENT_SUFFIX}"
            self._next_number += 1
            self._segments.append(_Segment(path, 0, 0))
        file = path.open("ab")
        _fsync_directory(self.directory)  # the new file's name must survive a crash too
        return file

    def _retire_segment(self, file: BinaryIO | None) -> BinaryIO | None:
        """Called under the lock: delete the written-to segment once every record is acked."""
        if not self._retire:
            return file
        self._retire = False
        only = len(self._segments) == 1
        if only and self._fully_acked(self._segments[0]) and not self._pending:
            if file:
                file.close()
            self._segments[0].path.unlink(missing_ok=True)
            self._segments.clear()
            self._ack_offset = self._acked_records = 0
            return None
        return file

    # -- helpers (called under the lock) --------------------------------------------------------

    def _readable(self) -> bool:
        return any(s.durable_bytes > 0 for s in self._segments) and (
            self._segments[0].durable_bytes > self._ack_offset or len(self._segments) > 1
        )

    def _fully_acked(self, segment: _Segment) -> bool:
        return segment is self._segments[0] and self._acked_records >= segment.records

    def _drop_acknowledged_segments(self) -> list[Path]:
        # Only sealed segments (not the one being written) go here; the caller unlinks them.
        doomed = []
        while len(self._segments) > 1 and self._fully_acked(self._segments[0]):
            doomed.append(self._segments.pop(0).path)
            self._ack_offset = self._acked_records = 0
        return doomed


def _fitting(records: list[bytes], room: int) -> list[bytes]:
    """The leading records that fit in `room` bytes; at least one, so big records still go."""
    size, count = 0, 0
    for data in records:
        if count and size + len(data) > room:
            break
        size += len(data)
        count += 1
    return records[:count]


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
