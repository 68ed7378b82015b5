"""Marts: the dashboard's views materialised into files, equal to the live views, rebuilt when
files land, published atomically, and built by one process at a time."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from voxledger.cli import cli
from voxledger.config import Settings
from voxledger.warehouse import db, marts, tables
from voxledger.warehouse.marts import MART_VIEWS, Mart, MartRefresher

Writer = Callable[[Path, str, int], int]
WAIT_S = 120.0  # a bound on waiting for the refresher thread, never a pause


def rows(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple[Any, ...]]:
    return con.execute(query).fetchall()


def sessions_in(mart: Mart) -> list[str]:
    con = duckdb.connect(str(mart.path), read_only=True)
    try:
        return [r[0] for r in rows(con, "SELECT session_id FROM sessions ORDER BY 1")]
    finally:
        con.close()


@pytest.fixture
def fresh(tmp_path: Path) -> Settings:
    """An empty warehouse of its own: its Parquet root, views database and marts in tmp_path."""
    return Settings(data_dir=tmp_path)


@pytest.fixture
def mart_con(warehouse: Any, tmp_path: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, Any]]:
    """A mart of the shared test warehouse (built in tmp_path), and the live views beside it."""
    settings = Settings(data_dir=tmp_path, warehouse={"url": db.warehouse_root(warehouse.settings)})
    mart = marts.build(settings)
    con = duckdb.connect(str(mart.path), read_only=True)
    live = db.connect(settings)
    try:
        yield con, live
    finally:
        con.close()
        live.close()


def test_a_mart_holds_exactly_what_the_live_views_show(mart_con: Any) -> None:
    con, live = mart_con
    for name in MART_VIEWS:
        described = [r[:2] for r in rows(con, f"DESCRIBE {name}")]
        assert described == [r[:2] for r in rows(live, f"DESCRIBE {name}")], name
        assert described == [(c.name, c.type) for c in tables.view_named(name).columns], name
        found = sorted(rows(con, f"SELECT * FROM {name}"), key=repr)
        assert found == sorted(rows(live, f"SELECT * FROM {name}"), key=repr), name
        assert found, f"{name} is empty: the comparison would prove nothing"
    tables_in_mart = {r[0] for r in rows(con, "SELECT table_name FROM duckdb_tables()")}
    assert tables_in_mart == {*MART_VIEWS, "_mart"}  # never the events


def test_a_mart_records_what_it_was_built_from(mart_con: Any, tmp_path: Path) -> None:
    con, _ = mart_con
    mart = marts.latest(Settings(data_dir=tmp_path))
    assert mart is not None
    (as_of, views, files), *more = rows(con, "SELECT as_of, views, files FROM _mart")
    assert not more
    assert (as_of, views, files) == (mart.as_of, mart.views, mart.files)
    assert views == marts.views_hash()


def test_the_mart_is_rebuilt_when_files_land(fresh: Settings, write_copy: Writer) -> None:
    root = Path(db.warehouse_root(fresh))
    next_offset = write_copy(root, "first", 0)
    first = marts.refresh(fresh)
    assert first is not None and sessions_in(first) == ["first"]
    assert marts.refresh(fresh) == first  # nothing landed: the same mart
    write_copy(root, "second", next_offset)
    assert marts.refresh(fresh, min_age_s=3600) == first  # throttled: too young to rebuild
    second = marts.refresh(fresh)
    assert second is not None and second != first
    assert sessions_in(second) == ["first", "second"]
    assert second.as_of > first.as_of
    assert marts.latest(fresh) == second
    assert marts.build(fresh) != second  # an explicit build always makes a new one


def test_a_rewritten_or_removed_file_makes_the_mart_stale(
    fresh: Settings, write_copy: Writer
) -> None:
    root = Path(db.warehouse_root(fresh))
    write_copy(root, "only", 0)
    built = marts.refresh(fresh)
    assert built is not None
    (path,) = root.glob("events/**/*.parquet")
    path.unlink()  # an erasure or compaction rewrites files; here the only one goes
    rebuilt = marts.refresh(fresh)
    assert rebuilt != built and rebuilt is not None and sessions_in(rebuilt) == []


def test_readers_keep_their_mart_while_newer_ones_replace_it(
    fresh: Settings, write_copy: Writer
) -> None:
    root = Path(db.warehouse_root(fresh))
    write_copy(root, "kept", 0)
    old = marts.build(fresh)
    reader = duckdb.connect(str(old.path), read_only=True)
    try:
        newer = [marts.build(fresh) for _ in range(marts.KEEP)]
        assert not old.path.exists()  # pruned: only the newest KEEP stay
        assert sorted(p.name for p in marts.mart_dir(fresh).glob("mart-*")) == sorted(
            m.name for m in newer
        )
        assert rows(reader, "SELECT session_id FROM sessions") == [("kept",)]  # still reads
    finally:
        reader.close()


def test_a_failed_build_publishes_nothing(
    fresh: Settings, write_copy: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_copy(Path(db.warehouse_root(fresh)), "before", 0)
    good = marts.build(fresh)
    definitions = tables.definitions()
    broken = [
        (n, "SELECT no_such_column FROM events" if n == "turns" else s) for n, s in definitions
    ]
    monkeypatch.setattr(tables, "definitions", lambda: broken)
    monkeypatch.setattr(marts, "views_hash", lambda: good.views)
    with pytest.raises(duckdb.BinderException):
        marts.build(fresh)
    assert marts.latest(fresh) == good
    left = sorted(p.name for p in marts.mart_dir(fresh).iterdir())
    assert left == [".lock", good.name]  # no half-built file, published or hidden


def test_a_mart_of_other_view_sql_is_not_used(
    fresh: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = marts.build(fresh)
    monkeypatch.setattr(marts, "views_hash", lambda: "0" * 12)  # as after an upgrade
    assert marts.latest(fresh) is None
    current = marts.refresh(fresh)
    assert current is not None and current.views == "0" * 12 and current != old


@pytest.fixture
def lock_holder(fresh: Settings) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the build lock, as a sink's refresher does while it builds."""
    lock = marts.mart_dir(fresh) / ".lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
            str(lock),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    try:
        yield holder
    finally:
        holder.communicate("", timeout=30)


def test_one_builder_at_a_time_across_processes(
    fresh: Settings, write_copy: Writer, lock_holder: subprocess.Popen[str]
) -> None:
    write_copy(Path(db.warehouse_root(fresh)), "waiting", 0)
    assert marts.refresh(fresh, wait=False) is None  # another builder: do not wait for it
    assert MartRefresher(fresh).check() is None
    assert marts.latest(fresh) is None
    lock_holder.communicate("", timeout=30)  # the other builder is done
    built = marts.refresh(fresh, wait=False)
    assert built is not None and sessions_in(built) == ["waiting"]


def test_the_refresher_thread_rebuilds_after_new_files(fresh: Settings, write_copy: Writer) -> None:
    root = Path(db.warehouse_root(fresh))
    next_offset = write_copy(root, "early", 0)
    checks: queue.Queue[Mart | None] = queue.Queue()

    def next_mart(unlike: Mart | None) -> Mart:
        while True:  # each check reports; wait for one that brings a different mart
            mart = checks.get(timeout=WAIT_S)
            if mart is not None and mart != unlike:
                return mart

    with MartRefresher(fresh, check_every_s=0.05, min_age_s=0, on_check=checks.put):
        first = next_mart(None)  # no mart at start: built at once
        assert sessions_in(first) == ["early"]
        write_copy(root, "late", next_offset)
        second = next_mart(first)
    assert sessions_in(second) == ["early", "late"]


def test_a_stopping_refresher_leaves_the_mart_up_to_date(
    fresh: Settings, write_copy: Writer
) -> None:
    """The sink's last files reach the mart when it stops, however young the mart was."""
    root = Path(db.warehouse_root(fresh))
    next_offset = write_copy(root, "before-stop", 0)
    checks: queue.Queue[Mart | None] = queue.Queue()
    refresher = MartRefresher(fresh, check_every_s=3600, min_age_s=3600, on_check=checks.put)
    refresher.start()
    first = checks.get(timeout=WAIT_S)  # the check at start: no mart yet, so one is built
    assert first is not None and sessions_in(first) == ["before-stop"]
    write_copy(root, "last-flush", next_offset)
    refresher.stop()
    last = marts.latest(fresh)
    assert last is not None and last != first
    assert sessions_in(last) == ["before-stop", "last-flush"]


def test_warehouse_refresh_builds_the_mart(
    fresh: Settings, write_copy: Writer, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_copy(Path(db.warehouse_root(fresh)), "cli", 0)
    monkeypatch.setenv("VOXLEDGER_DATA_DIR", str(fresh.data_dir))
    result = CliRunner().invoke(cli, ["warehouse", "refresh"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    built = marts.latest(fresh)
    assert built is not None and sessions_in(built) == ["cli"]
    again = CliRunner().invoke(cli, ["warehouse", "refresh"], catch_exceptions=False)
    assert again.exit_code == 0 and marts.latest(fresh) == built  # up to date: kept


def test_the_sink_command_runs_a_refresher(
    fresh: Settings, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`voxledger sink` keeps a MartRefresher running for as long as the sink runs."""
    from voxledger.warehouse import sink
    from voxledger.warehouse.sink import SinkStats

    seen: list[bool] = []

    class Spy(MartRefresher):
        def __enter__(self) -> MartRefresher:
            seen.append(True)
            return self  # not started: this test has no warehouse worth building

        def __exit__(self, *_: object) -> None:
            seen.append(False)

    def fake_run_sink(settings: Settings) -> SinkStats:
        assert seen == [True]  # the refresher started before the sink
        return SinkStats()

    monkeypatch.setenv("VOXLEDGER_DATA_DIR", str(fresh.data_dir))
    monkeypatch.setattr(marts, "MartRefresher", Spy)
    monkeypatch.setattr(sink, "run_sink", fake_run_sink)
    result = CliRunner().invoke(cli, ["sink"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == [True, False]


def test_the_marts_directory_sits_next_to_the_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, warehouse={"database": tmp_path / "bi" / "wh.duckdb"})
    assert marts.mart_dir(settings) == tmp_path / "bi" / "wh.marts"
    assert marts.mart_dir(Settings(data_dir=tmp_path)) == tmp_path / "warehouse.marts"
    assert marts.latest(settings) is None
    assert not os.path.exists(tmp_path / "bi")  # looking never creates anything
