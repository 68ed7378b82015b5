"""How fast each dashboard page renders on a warehouse of ~1M events (AppTest, in-process).

A seed of real sessions (recorded logs and simulator scenarios run offline through the real
redaction, policy and cost processors; the sink's own record → row code) is cloned with DuckDB
into base-table Parquet of the sink's layout, spread over 30 days and both tenants, until
the events table holds --events rows. Then the dashboard reads it through the real views.

Printed: the time to take the dashboard's snapshot of the views (once per cache period, in the
background after the first), and per page the render time with a cold query cache (its SQL
runs) and a warm one (a rerun within the cache period).

    .venv/bin/python bench/dashboard_render.py [--events 1000000] [--keep DIR]
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
from pathlib import Path
from types import ModuleType

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
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(app), default_timeout=600)
    at.session_state["user"] = role
    at.run()
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
    parser.add_argument("--keep", type=Path, help="build the warehouse here and keep it")
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/run_all)")
    args = parser.parse_args()
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    fixtures = load_fixtures()
    base = args.keep or Path(tempfile.mkdtemp(prefix="voxledger-bench-"))
    data_dir = base / "data"
    try:
        started = time.perf_counter()
        fixtures.build_warehouse(base / "seed" / "warehouse", fixtures.SESSIONS)
        seeded = time.perf_counter() - started
        started = time.perf_counter()
        events = clone(base / "seed" / "warehouse", data_dir / "warehouse", args.events)
        cloned = time.perf_counter() - started
        config = data_dir / "voxledger.toml"
        config.write_text(fixtures.CONFIG.format(data_dir=data_dir, users=fixtures._users()))
        os.environ["VOXLEDGER_CONFIG"] = str(config)
        for name in [
            n for n in os.environ if n.startswith("VOXLEDGER_") and n != "VOXLEDGER_CONFIG"
        ]:
            del os.environ[name]
        figures = report(data_dir, config, events, seeded, cloned)
        if args.json:
            args.json.write_text(json.dumps(figures))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def report(
    data_dir: Path, config: Path, events: int, seeded: float, cloned: float
) -> dict[str, float]:
    from voxledger.config import load_settings
    from voxledger.dashboard.data import open_snapshot
    from voxledger.warehouse.db import refresh

    settings = load_settings(config)
    refresh(settings)
    started = time.perf_counter()
    con = open_snapshot(settings)
    snapshot = time.perf_counter() - started
    sessions = con.execute("SELECT count(*) FROM sessions").fetchone()[0]
    con.close()
    app = REPO / "dashboard" / "app.py"
    render(app, "admin", "access_audit")  # takes the app's own snapshot: not a page's time
    print(f"warehouse: {events:,} events, {sessions:,} sessions over {DAYS} days")
    print(f"seed (real processors) {seeded:.1f} s, clone to Parquet {cloned:.1f} s")
    print(f"snapshot of the views (once per cache period): {snapshot:.2f} s\n")
    print(f"{'page':<14}{'role':<12}{'cold query cache':>18}{'warm':>10}")
    slowest = {"cold": 0.0, "warm": 0.0}
    for page, role in PAGES.items():
        cold = render(app, role, page)
        warm = render(app, role, page)
        print(f"{page:<14}{role:<12}{cold:>16.2f} s{warm:>8.2f} s")
        slowest = {"cold": max(slowest["cold"], cold), "warm": max(slowest["warm"], warm)}
    return {
        "events": events,
        "snapshot_s": snapshot,
        "slowest_cold_s": slowest["cold"],
        "slowest_warm_s": slowest["warm"],
    }


if __name__ == "__main__":
    main()
