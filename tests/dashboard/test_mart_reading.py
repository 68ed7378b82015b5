"""The dashboard reads the latest mart, never the live views: new files show once a mart holds
them, a first start without a mart builds one (once), and the data's "as of" is known."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from voxledger.config import Settings, load_settings
from voxledger.dashboard import data
from voxledger.warehouse import db, marts


@dataclass(frozen=True)
class Copy:
    """A copy of the dashboard tests' warehouse that a test may change, with its settings."""

    settings: Settings
    root: Path

    def land_a_new_session(self, session_id: str) -> None:
        """New events files, as the sink would land them: `refund`'s events as `session_id`."""
        events = self.root / "events" / "**" / "*.parquet"
        sources = duckdb.sql(
            f"SELECT DISTINCT filename FROM read_parquet('{events}', filename = true) "
            "WHERE session_id = 'refund'"
        ).fetchall()
        assert sources
        for (source,) in sources:
            duckdb.sql(
                f"COPY (SELECT * REPLACE ('{session_id}' AS session_id, "
                f"envelope_id || '-{session_id}' AS envelope_id) "
                f"FROM read_parquet('{source}') WHERE session_id = 'refund') "
                f"TO '{Path(source).parent / f'{session_id}.parquet'}' (FORMAT parquet)"
            )

    def live_sessions(self) -> int:
        con = db.connect(self.settings)
        try:
            found = con.execute("SELECT count(*) FROM sessions").fetchone()
            assert found is not None
            return int(found[0])
        finally:
            con.close()


@pytest.fixture
def copy(
    dashboard_warehouse: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Copy]:
    """The built warehouse's Parquet copied under tmp_path, without any mart yet. Pages'
    background refresh leaves a stale mart alone for an hour: the test says when to build."""
    for name in [n for n in os.environ if n.startswith("VOXLEDGER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VOXLEDGER_WAREHOUSE__MART_MIN_AGE_S", "3600")
    shutil.copytree(dashboard_warehouse.data_dir / "warehouse", tmp_path / "warehouse")
    config = tmp_path / "voxledger.toml"
    original = dashboard_warehouse.config.read_text()
    config.write_text(original.replace(str(dashboard_warehouse.data_dir), str(tmp_path)))
    monkeypatch.setenv("VOXLEDGER_CONFIG", str(config))
    yield Copy(load_settings(config), tmp_path / "warehouse")


def shown_sessions(settings: Settings) -> int:
    """How many sessions the Spend page's totals count (read the way pages read)."""
    totals = data.spend_totals(data.Warehouse(settings), data.Filters())
    return int(totals["sessions"])


def test_pages_read_the_mart_not_the_live_views(copy: Copy) -> None:
    before = marts.refresh(copy.settings)
    assert before is not None
    sessions = copy.live_sessions()
    assert shown_sessions(copy.settings) == sessions
    copy.land_a_new_session("late")
    assert copy.live_sessions() == sessions + 1  # the views see the file at once...
    assert shown_sessions(copy.settings) == sessions  # ...pages, once a mart holds it
    after = marts.refresh(copy.settings)
    assert after is not None and after != before
    wh = data.Warehouse(copy.settings)
    assert int(data.spend_totals(wh, data.Filters())["sessions"]) == sessions + 1
    assert wh.mart == after and wh.as_of == after.as_of > before.as_of


def test_a_first_start_without_a_mart_builds_one_once(copy: Copy) -> None:
    assert marts.latest(copy.settings) is None
    wh = data.Warehouse(copy.settings)
    assert shown_sessions(copy.settings) == copy.live_sessions()
    built = marts.latest(copy.settings)
    assert built is not None and wh.mart == built
    assert shown_sessions(copy.settings) == copy.live_sessions()
    assert sorted(marts.mart_dir(copy.settings).glob("mart-*")) == [built.path]  # just one


def test_a_page_keeps_its_mart_while_a_newer_one_lands(copy: Copy) -> None:
    """Every figure of one page run comes from the same data."""
    first = marts.refresh(copy.settings)
    wh = data.Warehouse(copy.settings)
    sessions = int(data.spend_totals(wh, data.Filters())["sessions"])
    copy.land_a_new_session("meanwhile")
    assert marts.refresh(copy.settings) != first
    assert wh.mart == first
    span = data.filter_options(wh)
    assert span["as_of"] == first.as_of  # type: ignore[union-attr]
    assert int(wh.one("SELECT count(*) AS n FROM sessions")["n"]) == sessions


def test_the_data_as_of_time_is_the_marts(dashboard_env: Any) -> None:
    settings = dashboard_env.settings()
    latest = marts.latest(settings)
    assert latest is not None  # the test warehouse's refresh built it
    options = data.filter_options(data.Warehouse(settings))
    assert options["as_of"] == latest.as_of
    assert options["as_of"].utcoffset() is not None and options["as_of"].utcoffset().seconds == 0


def test_pages_rebuild_a_stale_mart_in_the_background(
    copy: Copy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No sink runs (an erasure, or a dashboard on another host): opening pages is enough."""
    before = marts.refresh(copy.settings)
    sessions = copy.live_sessions()
    copy.land_a_new_session("noticed")
    eager = copy.settings.warehouse.model_copy(
        update={"mart_min_age_s": 0.0, "mart_check_every_s": 0.001}
    )
    settings = copy.settings.model_copy(update={"warehouse": eager})
    assert shown_sessions(settings) == sessions  # this page keeps the mart it opened...
    for thread in [t for t in threading.enumerate() if t.name == "mart-check"]:
        thread.join(timeout=120)  # ...while a background check rebuilds it
    after = marts.latest(copy.settings)
    assert after is not None and after != before
    assert shown_sessions(settings) == sessions + 1  # the next page opens the new one
