"""Marts: the views the dashboard reads, materialised into a DuckDB file of their own.

The public views derive sessions, turns and latency from the events on every read: at a
million events that takes seconds per view, too slow for a page. A mart holds the result of
MART_VIEWS as plain tables, so a page only ever reads small tables.

- A mart is `<database>.marts/mart-<as of>-<views>-<files>.duckdb` (next to the views'
  database, `warehouse.marts/` by default): computed from the Parquet files listed at
  `<as of>` (UTC, its "data as of"), by the view SQL hashed in `<views>`, from the file
  listing hashed in `<files>`. A name is never reused and a file never changes once there.
- `build()` writes a mart under a hidden temporary name, fsyncs it and renames it into place,
  so a reader never sees half a mart; it keeps the newest KEEP marts and removes the rest
  (on POSIX a reader that has one open keeps reading it). The view chain is computed once,
  in creation order, each view reading the ones before it as tables.
- One builder at a time, across processes: builders take an flock on `.lock` in the marts
  directory. Readers take no lock, and never open the views' database: the single-writer
  lock of DuckDB can never keep a reader out.
- `refresh()` rebuilds only when files were added, rewritten or removed since the latest
  mart. `voxledger warehouse refresh` runs it; `voxledger sink` runs a MartRefresher thread
  (and refreshes once more when it stops); the dashboard builds the first mart itself when
  there is none yet, and, as pages are opened, rebuilds a stale one in the background with
  the same throttle (so erasures and compactions reach it with no sink running, and a
  dashboard on another host than the sink keeps its own marts fresh).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.fs as pafs

from voxledger.config import Settings
from voxledger.warehouse import tables
from voxledger.warehouse.db import SOURCE_TABLES, create_base_views, database_path
from voxledger.warehouse.storage import Store, open_store

__all__ = [
    "KEEP",
    "MART_VIEWS",
    "Mart",
    "MartRefresher",
    "build",
    "files_hash",
    "latest",
    "mart_dir",
    "refresh",
    "refresh_soon",
    "views_hash",
]

# The views the dashboard reads; never `events` (pages ask for aggregates only).
MART_VIEWS = (
    "sessions",
    "turns",
    "responses",
    "tool_calls",
    "findings",
    "costs",
    "cost_modalities",
    "session_costs",
    "latency",
    "errors",
)
KEEP = 2  # marts kept: the newest, and the one readers may have just opened
FORMAT = "1"  # bump when the layout of a mart file changes
STATE_TABLE = "_mart"
_NAME = re.compile(r"^mart-(\d{8}T\d{12}Z)-([0-9a-f]{12})-([0-9a-f]{12})\.duckdb$")
_STAMP = "%Y%m%dT%H%M%S%fZ"

log = logging.getLogger("voxledger.warehouse.marts")


@dataclass(frozen=True)
class Mart:
    """One published mart: its file, what data it holds (as of when) and how it was made."""

    path: Path
    as_of: datetime  # the files listed at this time (UTC) are all in it
    views: str  # hash of the view SQL it was computed with
    files: str  # hash of the file listing it was computed from

    @classmethod
    def parse(cls, path: Path) -> Mart | None:
        found = _NAME.match(path.name)
        if not found:
            return None
        as_of = datetime.strptime(found[1], _STAMP).replace(tzinfo=UTC)
        return cls(path, as_of, found[2], found[3])

    @property
    def name(self) -> str:
        return self.path.name


def mart_dir(settings: Settings) -> Path:
    """Where the marts live: next to the views' database (`warehouse.marts/` by default)."""
    database = database_path(settings)
    return database.with_name(f"{database.stem}.marts")


def views_hash() -> str:
    """What a mart's tables mean: the SQL of every view, the views kept, the file layout."""
    text = "\n".join([FORMAT, ",".join(MART_VIEWS), *(f"{n}:{s}" for n, s in tables.definitions())])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def files_hash(store: Store) -> str:
    """What a mart's rows come from: every source file's path, size and modification time."""
    digest = hashlib.sha256(store.uri.encode())
    for table in SOURCE_TABLES:
        selector = pafs.FileSelector(store.table_dir(table), recursive=True, allow_not_found=True)
        infos = store.fs.get_file_info(selector)
        for info in sorted(infos, key=lambda i: i.path):
            name = info.base_name
            if info.type == pafs.FileType.File and name.endswith(".parquet") and name[0] != ".":
                digest.update(f"\n{info.path}\t{info.size}\t{info.mtime_ns}".encode())
    return digest.hexdigest()[:12]


def latest(settings: Settings) -> Mart | None:
    """The newest mart computed by the views of this code version, if any (a directory read)."""
    views = views_hash()
    try:
        names = sorted(os.listdir(mart_dir(settings)), reverse=True)
    except FileNotFoundError:
        return None
    for name in names:
        mart = Mart.parse(mart_dir(settings) / name)
        if mart and mart.views == views:
            return mart
    return None


def refresh(settings: Settings, *, min_age_s: float = 0.0, wait: bool = True) -> Mart | None:
    """The latest mart, built first when files changed since it was (or there is none).

    A mart younger than `min_age_s` is kept even when stale (throttling). With `wait=False`
    a build another process is running is not waited for: returns None when no mart is there.
    """
    store = open_store(settings)
    current = latest(settings)
    if current and not _due(current, store, min_age_s):
        return current
    with _build_lock(settings, wait=wait) as held:
        if not held:
            return current
        current = latest(settings)  # another process may have built it while we waited
        if current and not _due(current, store, min_age_s):
            return current
        return _build(settings, store)


def build(settings: Settings) -> Mart:
    """Build a new mart from the files there now, whatever the latest one holds."""
    store = open_store(settings)
    with _build_lock(settings, wait=True):
        return _build(settings, store)


def _due(mart: Mart, store: Store, min_age_s: float) -> bool:
    if (datetime.now(UTC) - mart.as_of).total_seconds() < min_age_s:
        return False
    return mart.files != files_hash(store)


@contextlib.contextmanager
def _build_lock(settings: Settings, *, wait: bool) -> Iterator[bool]:
    """An exclusive flock on the marts directory's `.lock`: one builder at a time."""
    directory = mart_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def _build(settings: Settings, store: Store) -> Mart:
    """Compute MART_VIEWS into a temporary file, then publish it under its mart name."""
    directory = mart_dir(settings)
    for leftover in directory.glob(".building-*"):  # a crashed build's: we hold the lock
        _remove(leftover)
    as_of = datetime.now(UTC)
    files = files_hash(store)  # listed after as_of: every file there at as_of is read
    views = views_hash()
    temp = directory / f".building-{uuid.uuid4().hex}.duckdb"
    started = time.perf_counter()
    try:
        _materialise(temp, store, as_of, files, views)
        _fsync(temp)
        path = directory / f"mart-{as_of.strftime(_STAMP)}-{views}-{files}.duckdb"
        os.replace(temp, path)
        _fsync(directory)
    finally:
        for suffix in ("", ".wal", ".tmp"):  # the file (unless published), its WAL, its spill
            _remove(temp.with_name(temp.name + suffix))
    log.info("mart %s built in %.2f s", path.name, time.perf_counter() - started)
    _prune(directory)
    mart = Mart.parse(path)
    assert mart is not None
    return mart


def _materialise(path: Path, store: Store, as_of: datetime, files: str, views: str) -> None:
    """The view chain in creation order: MART_VIEWS as tables of the file, the others TEMP.

    `events` stays a view (each view reads the Parquet it needs, never a copy of all of it);
    every other view is computed once, and the views after it read that result.
    """
    con = duckdb.connect(str(path))
    try:
        create_base_views(con, store)
        for name, sql in tables.definitions():
            if name in MART_VIEWS:
                con.execute(f"CREATE TABLE main.{name} AS {sql}")
            elif name == "events":
                con.execute(f"CREATE TEMP VIEW {name} AS {sql}")
            else:
                con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
        con.execute(
            f"CREATE TABLE main.{STATE_TABLE} AS SELECT ?::TIMESTAMPTZ AS as_of, "
            "?::VARCHAR AS views, ?::VARCHAR AS files",
            [as_of, views, files],
        )
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _prune(directory: Path) -> None:
    """Keep the newest KEEP marts (of any view version); remove the older ones."""
    marts = sorted((p for p in directory.glob("mart-*.duckdb") if Mart.parse(p)), reverse=True)
    for old in marts[KEEP:]:
        old.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(fd)


# -- background refresh ---------------------------------------------------------------------

BUILD_SHARE = 0.25  # a mart is rebuilt at most this share of the time (slow builds space out)


class MartRefresher:
    """A thread that rebuilds the mart when new files have landed, throttled.

    Every `check_every_s` (default: `warehouse.mart_check_every_s`) it compares the latest
    mart with the file listing; a stale mart at least `min_age_s` old (`mart_min_age_s`), and
    old enough that builds take at most BUILD_SHARE of the time, is rebuilt. A build another
    process is running is not waited for. Builds run at a lower
    CPU priority than the thread that started the refresher (the sink's consumer loop); the
    last one, when it stops, does not.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        check_every_s: float | None = None,
        min_age_s: float | None = None,
        on_check: Callable[[Mart | None], None] | None = None,
    ) -> None:
        self.settings = settings
        mart = settings.warehouse
        self.check_every_s = mart.mart_check_every_s if check_every_s is None else check_every_s
        self.min_age_s = mart.mart_min_age_s if min_age_s is None else min_age_s
        self.on_check = on_check  # called after every check with the latest mart
        self.last_build_s = 0.0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mart-refresher", daemon=True)

    def __enter__(self) -> MartRefresher:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0, *, final: bool = True) -> None:
        """Stop checking. With `final`, then bring the mart up to date whatever its age, so
        that what the sink landed last is in it when no refresher runs any more."""
        self._stopped.set()
        self._thread.join(timeout_s)
        if final:
            try:
                refresh(self.settings)  # waits for a build still under way, then re-checks
            except Exception:  # the sink's own outcome matters more than the mart's
                log.exception("final mart refresh failed")

    def check(self) -> Mart | None:
        """One check: rebuild the mart when due; returns the latest mart."""
        min_age = max(self.min_age_s, self.last_build_s / BUILD_SHARE)
        started = time.perf_counter()
        before = latest(self.settings)
        mart = refresh(self.settings, min_age_s=min_age, wait=False)
        if mart is not None and mart != before:
            self.last_build_s = time.perf_counter() - started
        return mart

    def _run(self) -> None:
        _lower_priority()
        while not self._stopped.is_set():
            mart = None
            try:
                mart = self.check()
            except Exception:  # a bad file or a full disk must not stop the sink
                log.exception("mart refresh failed; retrying at the next check")
            if self.on_check:
                self.on_check(mart)
            self._stopped.wait(self.check_every_s)  # pacing between checks


# Marts directories this process last checked (monotonic time), and those being checked.
_checked: dict[Path, float] = {}
_checking: set[Path] = set()
_checking_lock = threading.Lock()


def refresh_soon(settings: Settings) -> None:
    """Check in a background thread whether the mart is due (stale, and as old as a
    MartRefresher would let it get), and rebuild it if so; at most every
    `warehouse.mart_check_every_s` per marts directory in this process. For readers (the
    dashboard) that cannot count on a refresher running: they keep their mart meanwhile and
    open the new one next time."""
    directory = mart_dir(settings)
    now = time.monotonic()
    with _checking_lock:
        last = _checked.get(directory)
        every = settings.warehouse.mart_check_every_s
        if directory in _checking or (last is not None and now - last < every):
            return
        _checked[directory] = now
        _checking.add(directory)
    threading.Thread(
        target=_check_once, args=(settings, directory), name="mart-check", daemon=True
    ).start()


def _check_once(settings: Settings, directory: Path) -> None:
    _lower_priority()
    try:
        refresh(settings, min_age_s=settings.warehouse.mart_min_age_s, wait=False)
    except Exception:  # the reader keeps the mart it has; the next check tries again
        log.exception("mart refresh failed; retrying at the next check")
    finally:
        with _checking_lock:
            _checking.discard(directory)


def _lower_priority() -> None:
    """Nice this thread (Linux nice values are per thread); DuckDB's workers, started by the
    builds it runs, inherit it. Best effort."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
