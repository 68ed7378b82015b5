"""Where the warehouse's files live: a local directory or S3-compatible storage, via pyarrow.

Writes are atomic and durable. On a local disk a file is written under a hidden temporary
name, fsync'd, renamed into place, and its directory fsync'd. On object storage a single PUT
is atomic by itself (an object appears whole or not at all), so files go straight to their
final key. Readers therefore never see half a file.
"""

from __future__ import annotations

import io
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from voxledger.config import Settings
from voxledger.errors import VoxLedgerError

__all__ = [
    "DataFile",
    "StorageError",
    "Store",
    "data_file_name",
    "live_files",
    "open_store",
]

ERASURE_LIST = "_erasure_list.jsonl"
# <topic>+<partition>+<first:020d>-<last:020d>.parquet; Kafka topic names never contain '+'.
_NAME = re.compile(
    r"^(?P<topic>[^+/]+)\+(?P<partition>\d+)\+(?P<first>\d{20})-(?P<last>\d{20})\.parquet$"
)
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
PARQUET_OPTIONS = {"compression": "zstd", "write_statistics": True}


class StorageError(VoxLedgerError):
    """The warehouse location cannot be opened, read or written."""


def data_file_name(topic: str, partition: int, first: int, last: int) -> str:
    """A data file's name: the topic partition and the offset range its batch covered."""
    return f"{topic}+{partition}+{first:020d}-{last:020d}.parquet"


@dataclass(frozen=True, order=True)
class DataFile:
    """One Parquet file of a base table, with what its name says."""

    table: str
    date: str
    topic: str
    partition: int
    first: int
    last: int
    path: str  # the path within the store's filesystem

    def covers(self, other: DataFile) -> bool:
        """Whether this file's range holds `other`'s (same table, day and topic partition)."""
        return (
            (self.table, self.date, self.topic, self.partition)
            == (other.table, other.date, other.topic, other.partition)
            and self.first <= other.first
            and other.last <= self.last
            and self.path != other.path
        )


class Store:
    """The warehouse root on one pyarrow filesystem."""

    def __init__(self, fs: pafs.FileSystem, base: str, uri: str) -> None:
        self.fs = fs
        self.base = base.rstrip("/")
        self.uri = uri.rstrip("/")  # how users (and DuckDB, locally) name the root
        self.local = isinstance(fs, pafs.LocalFileSystem)

    # -- paths ---------------------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def table_dir(self, table: str) -> str:
        return self.path(table)

    def file_path(self, table: str, date: str, name: str) -> str:
        return self.path(table, f"date={date}", name)

    def full_uri(self, path: str) -> str:
        """What a reader outside this process opens: a local path or an s3:// URI."""
        return path if self.local else f"s3://{path}"

    # -- writing -------------------------------------------------------------------------------

    def write_table(self, path: str, table: pa.Table) -> None:
        """Write `table` as Parquet at `path`, atomically and durably."""
        buffer = io.BytesIO()
        pq.write_table(table, buffer, **PARQUET_OPTIONS)
        self.write_bytes(path, buffer.getvalue())

    def write_bytes(self, path: str, data: bytes) -> None:
        try:
            if self.local:
                _write_local(Path(path), data)
            else:
                with self.fs.open_output_stream(path) as out:  # one atomic PUT
                    out.write(data)
        except OSError as exc:
            raise StorageError(f"cannot write {self.full_uri(path)}: {exc}") from None

    def read_bytes(self, path: str) -> bytes | None:
        """A file's bytes, or None when it does not exist."""
        try:
            with self.fs.open_input_stream(path) as stream:
                return stream.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            if "does not exist" in str(exc) or "NoSuchKey" in str(exc):
                return None
            raise StorageError(f"cannot read {self.full_uri(path)}: {exc}") from None

    def read_table(self, path: str, columns: list[str] | None = None) -> pa.Table:
        """A data file, whole or only `columns`."""
        try:
            return pq.read_table(path, columns=columns, filesystem=self.fs)
        except OSError as exc:
            raise StorageError(f"cannot read {self.full_uri(path)}: {exc}") from None

    def move(self, path: str, new_path: str) -> None:
        """Rename a file (atomic on a local root)."""
        try:
            self.fs.move(path, new_path)
        except OSError as exc:
            raise StorageError(f"cannot move {self.full_uri(path)}: {exc}") from None

    def delete(self, path: str) -> None:
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:
            pass  # already gone: a crashed run's cleanup finished by another
        except OSError as exc:
            raise StorageError(f"cannot delete {self.full_uri(path)}: {exc}") from None

    def delete_dir(self, path: str) -> None:
        try:
            self.fs.delete_dir(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if "does not exist" not in str(exc):
                raise StorageError(f"cannot delete {self.full_uri(path)}: {exc}") from None

    # -- listing -------------------------------------------------------------------------------

    def list_files(self, tables: Iterable[str]) -> list[DataFile]:
        """Every data file of `tables` (sorted), temporary and foreign files left out."""
        found = []
        for table in tables:
            for info in self._infos(table):
                if info.type == pafs.FileType.File:
                    data_file = _parse(table, info.path)
                    if data_file:
                        found.append(data_file)
        return sorted(found)

    def list_paths(self, table: str) -> list[str]:
        """Every Parquet file under a table, whatever its name (the erasures table, say)."""
        infos = self._infos(table)
        return sorted(
            i.path
            for i in infos
            if i.type == pafs.FileType.File
            and i.base_name.endswith(".parquet")
            and not i.base_name.startswith(".")
        )

    def _infos(self, table: str) -> list[pafs.FileInfo]:
        where = self.table_dir(table)
        try:
            return self.fs.get_file_info(
                pafs.FileSelector(where, recursive=True, allow_not_found=True)
            )
        except OSError as exc:
            raise StorageError(f"cannot list {self.full_uri(where)}: {exc}") from None


def covered(files: list[DataFile]) -> list[DataFile]:
    """The files whose range lies inside another's: a compaction's inputs not yet removed."""
    by_key: dict[tuple[str, str, str, int], list[DataFile]] = {}
    for f in files:
        by_key.setdefault((f.table, f.date, f.topic, f.partition), []).append(f)
    out = []
    for group in by_key.values():
        # In order of first offset, widest first: a file is covered when an earlier file
        # reaches at least as far.
        group.sort(key=lambda f: (f.first, -f.last))
        reach = -1
        for f in group:
            if f.last <= reach:
                out.append(f)
            reach = max(reach, f.last)
    return out


def live_files(settings: Settings, table: str) -> list[str]:
    """The files of `table` a reader should read: every data file but the covered ones.

    Returns absolute local paths, or s3:// URIs for object storage.
    """
    store = open_store(settings)
    files = store.list_files([table])
    if not files:  # the erasures table (or any table not named by offset ranges)
        return [store.full_uri(p) for p in store.list_paths(table)]
    dead = set(covered(files))
    return [store.full_uri(f.path) for f in files if f not in dead]


def _parse(table: str, path: str) -> DataFile | None:
    parts = path.rsplit("/", 2)
    if len(parts) != 3:
        return None
    day = _DATE_DIR.match(parts[1])
    name = _NAME.match(parts[2])
    if not day or not name:
        return None
    return DataFile(
        table,
        day.group(1),
        name["topic"],
        int(name["partition"]),
        int(name["first"]),
        int(name["last"]),
        path,
    )


def _write_local(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"  # hidden: no glob matches it
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: the directory entry must reach the disk too."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some filesystems cannot open directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_store(settings: Settings) -> Store:
    """The warehouse root from Settings.warehouse.url (default `<data_dir>/warehouse`)."""
    url = settings.warehouse.url or str(settings.data_dir / "warehouse")
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        return _s3_store(settings, parsed.netloc, parsed.path.strip("/"))
    if parsed.scheme in ("", "file"):
        local = Path(parsed.path if parsed.scheme == "file" else url).expanduser().resolve()
        return Store(pafs.LocalFileSystem(), str(local), str(local))
    raise StorageError(f"warehouse url {url!r}: use a local directory or s3://bucket/prefix")


def _s3_store(settings: Settings, bucket: str, prefix: str) -> Store:
    if not bucket:
        raise StorageError("warehouse url: s3:// needs a bucket, as in s3://bucket/prefix")
    options: dict[str, object] = {}
    endpoint = settings.warehouse.s3_endpoint
    if endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme in ("http", "https"):
            options["scheme"] = parsed.scheme
            options["endpoint_override"] = parsed.netloc + parsed.path.rstrip("/")
        else:
            options["endpoint_override"] = endpoint
    if settings.warehouse.s3_region:
        options["region"] = settings.warehouse.s3_region
    try:
        fs = pafs.S3FileSystem(**options)  # credentials: the usual AWS_* environment/profile
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot open s3://{bucket}: {exc}") from None
    base = f"{bucket}/{prefix}" if prefix else bucket
    return Store(fs, base, f"s3://{base}")
