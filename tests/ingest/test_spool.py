"""The durable spool: order, acknowledgement, crash recovery and its size bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxledger.ingest.spool import SEGMENT_SUFFIX, Spool, SpoolRecord, encode_record

TOPIC = "voxledger.events.raw"


def record(n: int, size: int = 10) -> SpoolRecord:
    return SpoolRecord(TOPIC, f"session-{n % 3}".encode(), f"{n:06d}".encode() + b"x" * size)


def drain(spool: Spool, batch: int = 7) -> list[SpoolRecord]:
    """Everything in the spool, read and acknowledged in batches, as the publisher does."""
    out: list[SpoolRecord] = []
    while records := spool.read(batch, timeout=5.0):
        out.extend(records)
        spool.acknowledge(len(records))
    return out


def take(spool: Spool, count: int) -> list[SpoolRecord]:
    """Read and acknowledge `count` records (a read stops at a segment's end)."""
    out: list[SpoolRecord] = []
    while len(out) < count and (records := spool.read(count - len(out), timeout=5.0)):
        out.extend(records)
        spool.acknowledge(len(records))
    return out


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SEGMENT_SUFFIX}"))


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


def test_records_come_back_in_append_order_across_segments(spool_dir: Path) -> None:
    spool = Spool(spool_dir, max_bytes=10**9, segment_bytes=200, sync_records=4)
    sent = [record(n) for n in range(50)]
    for r in sent:
        spool.append(r)
    assert spool.wait_durable(5.0)
    assert len(segments(spool_dir)) > 1
    assert spool.depth == 50

    assert drain(spool) == sent
    assert spool.depth == 0
    spool.close()
    assert segments(spool_dir) == []  # fully acknowledged segments are deleted


def test_unacknowledged_records_are_read_again(spool_dir: Path) -> None:
    spool = Spool(spool_dir, max_bytes=10**9)
    for n in range(5):
        spool.append(record(n))
    assert spool.read(3, timeout=5.0) == [record(n) for n in range(3)]
    spool.acknowledge(1)  # the broker took only the first
    assert spool.read(10, timeout=5.0) == [record(n) for n in range(1, 5)]
    assert spool.depth == 4
    spool.close()


def test_reopened_spool_keeps_unacknowledged_records(spool_dir: Path) -> None:
    spool = Spool(spool_dir, max_bytes=10**9, segment_bytes=100)
    for n in range(20):
        spool.append(record(n))
    assert spool.wait_durable(5.0)
    assert take(spool, 5) == [record(n) for n in range(5)]
    spool.close()

    reopened = Spool(spool_dir, max_bytes=10**9, segment_bytes=100)
    assert reopened.depth >= 15  # an unsealed acknowledged segment may be replayed, never lost
    remaining = drain(reopened)
    assert remaining[-15:] == [record(n) for n in range(5, 20)]
    reopened.close()


def test_a_torn_last_record_is_cut_off_at_reopen(spool_dir: Path, caplog) -> None:
    spool = Spool(spool_dir, max_bytes=10**9)
    for n in range(3):
        spool.append(record(n))
    assert spool.wait_durable(5.0)  # durable, then the process "crashes": no close()
    last = segments(spool_dir)[-1]
    with last.open("ab") as file:
        file.write(encode_record(record(99))[:-4])  # a write cut short by the crash
    size_before = last.stat().st_size

    reopened = Spool(spool_dir, max_bytes=10**9)
    assert reopened.depth == 3
    assert last.stat().st_size < size_before
    assert "torn tail" in caplog.text
    reopened.append(record(3))
    assert drain(reopened) == [record(n) for n in range(4)]
    reopened.close()
    spool.close()


def test_a_record_with_a_bad_crc_is_not_replayed(spool_dir: Path) -> None:
    spool = Spool(spool_dir, max_bytes=10**9)
    for n in range(3):
        spool.append(record(n))
    spool.close()
    last = segments(spool_dir)[-1]
    data = bytearray(last.read_bytes())
    data[-1] ^= 0xFF  # a flipped bit in the last record's value
    last.write_bytes(bytes(data))

    reopened = Spool(spool_dir, max_bytes=10**9)
    assert drain(reopened) == [record(0), record(1)]
    reopened.close()


def test_the_spool_reports_full_at_its_bound(spool_dir: Path) -> None:
    one = len(encode_record(record(0, size=100)))
    spool = Spool(spool_dir, max_bytes=one * 5)
    for n in range(4):
        spool.append(record(n, size=100))
    assert not spool.full
    spool.append(record(4, size=100))
    assert spool.full
    assert spool.size_bytes == one * 5
    drain(spool)
    spool.close()
    assert not spool.full  # acknowledged and deleted: room again


def test_append_after_close_is_an_error(spool_dir: Path) -> None:
    spool = Spool(spool_dir, max_bytes=10**9)
    spool.close()
    with pytest.raises(RuntimeError, match="closed"):
        spool.append(record(0))
