"""How fast each dashboard page renders on a warehouse of ~1M events (AppTest, in-process).

A seed of real sessions (recorded logs and simulator scenarios run offline through the real
redaction, policy and cost processors; the sink's own record → row code) is cloned with DuckDB
into base-table Parquet of the sink's layout, spread over 30 days and both tenants, until
the events table holds --events rows. Then the dashboard reads it as in production: through
the latest mart (voxledger.warehouse.marts), built from the real views.

Printed: the time to build the mart (what the sink's refresher and `voxledger warehouse
refresh` spend, in the background, each time files have landed), and per page the first
render after a fresh start with a mart present (every Streamlit cache empty: the mart is
opened and every query of the page runs) and a warm one (a rerun within the cache period).
With --live-views, also the time of each view the mart holds, read live (what the dashboard
used to wait for on its first page).

    .venv/bin/python bench/dashboard_render.py [--events 1000000] [--keep DIR] [--live-views]

--keep DIR builds the warehouse there and keeps it; a later run with the same DIR reuses it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb

REPO = Path(__file__).resolve().parents[1]
PAGES = {
    "spend": "finance",
    "quality": "engineer",
    "compliance": "compliance",
    "residency": "compliance",
    "transcript": "compliance",
    "sql": "engineer",
    "access_audit": "admin",
}
DAYS = 30
# Per base table: the columns made unique per clone, and the timestamp the date comes from.
CLONED = {
    "events": (("envelope_id", "session_id"), "observed_at"),
    "findings_raw": (("finding_id", "session_id"), "observed_at"),
    "verdicts_raw": (("session_id",), "kafka_timestamp"),
    "costs_raw": (("record_id", "session_id"), "observed_at"),
    "session_costs_raw": (("session_id",), "kafka_timestamp"),
}


def load_fixtures() -> ModuleType:
    """tests/dashboard/conftest.py: the seed sessions and the dashboard test config."""
    sys.path.insert(0, str(REPO / "tests"))
    path = REPO / "tests" / "dashboard" / "conftest.py"
    spec = importlib.util.spec_from_file_location("dashboard_test_fixtures", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def clone(seed: Path, root: Path, target_events: int) -> int:
    """Write each base table of `seed` cloned until events reach `target_events`."""
    con = duckdb.connect()
    seed_events = con.execute(
        f"SELECT count(*) FROM read_parquet('{seed}/events/**/*.parquet')"
    ).fetchone()[0]
    copies = max(1, -(-target_events // seed_events))
    for table, (unique, clock) in CLONED.items():
        files = f"{seed}/{table}/**/*.parquet"
        if not list(seed.glob(f"{table}/**/*.parquet")):
            continue
        renamed = ", ".join(f"{c} || '~' || k AS {c}" for c in unique)
        shifted = f"{clock} + to_days(k % {DAYS}) + to_minutes(k // {DAYS})"
        tenant = (
            ", CASE WHEN k % 3 = 0 THEN 'acme-eu' ELSE tenant END AS tenant"
            if table in ("events", "verdicts_raw")
            else ""
        )
        out = root / table
        out.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"""COPY (
                SELECT * REPLACE ({renamed}, {shifted} AS {clock}{tenant}),
                       CAST(timezone('UTC', {shifted}) AS DATE) AS date
                FROM read_parquet('{files}', hive_partitioning = false), range({copies}) r(k)
            ) TO '{out}' (FORMAT parquet, PARTITION_BY (date), OVERWRITE_OR_IGNORE,
                          FILENAME_PATTERN 'bench+0+{{i}}')"""
        )
    shutil.copytree(seed / "dead_letters", root / "dead_letters", dirs_exist_ok=True)
    return seed_events * copies


def render(app: Path, role: str, page: str) -> float:
    """Seconds for one page's run. The app runs once logged out first (the login form reads
    no data), so the time is the page's, not AppTest's start."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(app), default_timeout=600)
    at.run()
    at.session_state["user"] = role
    at.switch_page(f"app_pages/{page}.py")
    started = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - started
    if at.exception:
        raise SystemExit(f"{page}: {at.exception[0].value}")
    if page == "transcript":  # also open one transcript: the search, then the turns
        at.text_input(key="t_session").input("refund~1")
        started = time.perf_counter()
        at.run()
        elapsed += time.perf_counter() - started
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="build the warehouse here (or reuse it)")
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/run_all)")
    parser.add_argument(
        "--live-views", action="store_true", help="also time each view the mart holds, live"
    )
    args = parser.parse_args()
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    fixtures = load_fixtures()
    base = args.keep or Path(tempfile.mkdtemp(prefix="voxledger-bench-"))
    data_dir = base / "data"
    config = data_dir / "voxledger.toml"
    try:
        if config.exists() and (data_dir / "warehouse" / "events").exists():
            seeded = cloned = 0.0  # --keep DIR from an earlier run
            events = _count_events(data_dir / "warehouse")
        else:
            started = time.perf_counter()
            fixtures.build_warehouse(base / "seed" / "warehouse", fixtures.SESSIONS)
            seeded = time.perf_counter() - started
            started = time.perf_counter()
            events = clone(base / "seed" / "warehouse", data_dir / "warehouse", args.events)
            cloned = time.perf_counter() - started
            config.write_text(fixtures.CONFIG.format(data_dir=data_dir, users=fixtures._users()))
        os.environ["VOXLEDGER_CONFIG"] = str(config)
        for name in [
            n for n in os.environ if n.startswith("VOXLEDGER_") and n != "VOXLEDGER_CONFIG"
        ]:
            del os.environ[name]
        figures = report(config, events, seeded, cloned, live_views=args.live_views)
        if args.json:
            args.json.write_text(json.dumps(figures))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def _count_events(root: Path) -> int:
    query = f"SELECT count(*) FROM read_parquet('{root}/events/**/*.parquet')"
    return int(duckdb.connect().execute(query).fetchall()[0][0])


def fresh_start() -> None:
    """What a new dashboard process starts with: no cached connection, no cached result."""
    import gc

    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    gc.collect()  # the dropped mart connection closes: the next page opens the file again


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds (this process, every thread) of `work`."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def live_view_times(settings: Any) -> dict[str, float]:
    """Each view the mart holds, read whole from the live views (the old first-page wait)."""
    from voxledger.warehouse.db import connect
    from voxledger.warehouse.marts import MART_VIEWS

    con = connect(settings)
    try:
        return {
            view: timed(lambda v=view: con.sql(f"SELECT * FROM {v}").to_arrow_table())[0]
            for view in MART_VIEWS
        }
    finally:
        con.close()


def report(
    config: Path, events: int, seeded: float, cloned: float, *, live_views: bool
) -> dict[str, float]:
    from voxledger.config import load_settings
    from voxledger.warehouse import marts
    from voxledger.warehouse.db import refresh

    settings = load_settings(config)
    refresh(settings, marts=False)
    build_wall, build_cpu = timed(lambda: marts.build(settings))
    mart = marts.latest(settings)
    assert mart is not None
    con = duckdb.connect(str(mart.path), read_only=True)
    sessions = con.execute("SELECT count(*) FROM sessions").fetchone()[0]  # type: ignore[index]
    con.close()
    app = REPO / "dashboard" / "app.py"
    print(f"warehouse: {events:,} events, {sessions:,} sessions over {DAYS} days")
    if seeded or cloned:
        print(f"seed (real processors) {seeded:.1f} s, clone to Parquet {cloned:.1f} s")
    print(
        f"mart build (in the background, after files land): {build_wall:.2f} s "
        f"({build_cpu:.2f} CPU s), {mart.path.stat().st_size / 1e6:.1f} MB"
    )
    figures: dict[str, float] = {
        "events": events,
        "mart_build_s": build_wall,
        "mart_build_cpu_s": build_cpu,
    }
    if live_views:
        times = live_view_times(settings)
        print("views the mart holds, read live (the old first-page wait):")
        for view, seconds in times.items():
            print(f"  {view:<16}{seconds:>8.2f} s")
        print(f"  {'total':<16}{sum(times.values()):>8.2f} s")
        figures["live_views_s"] = sum(times.values())
    render(app, "admin", "access_audit")  # imports the app's modules: not a page's time
    print(f"\n{'page':<14}{'role':<12}{'first, fresh start':>20}{'warm':>10}")
    slowest = {"first": 0.0, "warm": 0.0}
    for page, role in PAGES.items():
        fresh_start()
        first = render(app, role, page)
        warm = render(app, role, page)
        print(f"{page:<14}{role:<12}{first:>18.2f} s{warm:>8.2f} s")
        slowest = {"first": max(slowest["first"], first), "warm": max(slowest["warm"], warm)}
    return {
        **figures,
        "slowest_first_s": slowest["first"],
        "slowest_cold_s": slowest["first"],
        "slowest_warm_s": slowest["warm"],
    }


if __name__ == "__main__":
    main()
