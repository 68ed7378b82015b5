"""`voxledger sql`, `voxledger session show`, and SQLAlchemy on the warehouse file."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from click.testing import CliRunner, Result

from voxledger.cli import cli
from voxledger.warehouse import db

VOXLEDGER = Path(sys.executable).parent / "voxledger"
COSTS_QUERY = "SELECT session_id, cost_usd, verdict FROM sessions ORDER BY session_id"


@pytest.fixture
def env(warehouse: Any, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The CLI pointed at the test warehouse, as a user would: VOXLEDGER_DATA_DIR."""
    monkeypatch.setenv("VOXLEDGER_DATA_DIR", str(warehouse.data_dir))
    return {"VOXLEDGER_DATA_DIR": str(warehouse.data_dir)}


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def expected_costs(warehouse: Any) -> dict[str, Decimal]:
    return {s: Decimal(v["total_usd"]) for s, v in warehouse.produced.summaries.items()}


def test_sql_prints_a_table(env: dict[str, str], warehouse: Any) -> None:
    result = run("sql", COSTS_QUERY)
    assert result.exit_code == 0, result.output
    assert "session_id" in result.output and "cost_usd" in result.output
    for session_id, cost in expected_costs(warehouse).items():
        line = next(line for line in result.output.splitlines() if f" {session_id} " in line)
        assert str(cost) in line
    assert f"{len(warehouse.produced.summaries)} rows" in result.output


def test_sql_json_keeps_money_exact(env: dict[str, str], warehouse: Any) -> None:
    result = run("sql", COSTS_QUERY, "--format", "json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert {r["session_id"]: Decimal(r["cost_usd"]) for r in found} == expected_costs(warehouse)
    verdicts = {s: v["verdict"] for s, v in warehouse.produced.verdicts.items()}
    assert {r["session_id"]: r["verdict"] for r in found} == verdicts
    dated = json.loads(run("sql", "SELECT min(date) AS d FROM sessions", "--format", "json").output)
    assert dated == [{"d": "2026-11-20"}]


def test_sql_csv(env: dict[str, str], warehouse: Any) -> None:
    result = run(
        "sql",
        "SELECT session_id, deciding_rules, language FROM sessions ORDER BY session_id",
        "--format",
        "csv",
    )
    assert result.exit_code == 0, result.output
    table = list(csv.reader(io.StringIO(result.output)))
    assert table[0] == ["session_id", "deciding_rules", "language"]
    assert len(table) == 1 + len(warehouse.produced.verdicts)
    row = next(r for r in table if r[0] == "ga-support")
    assert json.loads(row[1]) == warehouse.produced.verdicts["ga-support"]["deciding_rules"]


def test_a_bad_query_exits_2_with_duckdb_message_and_no_traceback(env: dict[str, str]) -> None:
    # A real process: what a user sees on the terminal, exit code included.
    for query, message in (
        ("SELEC * FROM sessions", "Parser Error"),
        ("SELECT * FROM no_such_view", "Catalog Error"),
        ("SELECT no_such_column FROM sessions", "Binder Error"),
    ):
        done = subprocess.run(
            [str(VOXLEDGER), "sql", query],
            capture_output=True,
            text=True,
            env=dict(os.environ),  # VOXLEDGER_DATA_DIR set by `env`, nothing else of ours
            timeout=120,
        )
        assert done.returncode == 2, done
        assert message in done.stderr
        assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE intruder AS SELECT 1",
        "DELETE FROM events",
        "DROP VIEW sessions",
        "INSERT INTO _voxledger_state VALUES ('x')",
        "COPY (SELECT * FROM events) TO 'stolen.csv'",
        "ATTACH 'other.duckdb' AS other",
        "SET threads = 1",
        "SELECT 1; DROP VIEW sessions",
    ],
)
def test_writes_are_refused(env: dict[str, str], statement: str, clean_env: Path) -> None:
    result = run("sql", statement)
    assert result.exit_code == 2
    assert "read-only" in result.output or "exactly one" in result.output
    assert not (clean_env / "stolen.csv").exists()
    assert run("sql", "SELECT count(*) AS n FROM sessions", "--format", "json").exit_code == 0


def test_files_outside_the_warehouse_cannot_be_read(env: dict[str, str], tmp_path: Path) -> None:
    secret = tmp_path / "pseudonym.key"
    secret.write_text("not for SQL users")
    for query in (f"SELECT * FROM read_text('{secret}')", "SELECT * FROM read_text('/etc/passwd')"):
        result = run("sql", query, "--format", "json")
        assert result.exit_code == 2, result.output
        assert "not for SQL users" not in result.output and "root:" not in result.output
    assert run("sql", "SELECT count(*) AS n FROM events", "--format", "json").exit_code == 0


def test_session_show_prints_turns_costs_and_findings(env: dict[str, str], warehouse: Any) -> None:
    result = run("session", "show", "mcp-tools")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Where is my order <ACCOUNT_NUMBER_" in out
    assert "Your order is out for delivery" in out
    assert "ACME5518" not in out and "5518" not in out
    for finding in warehouse.produced.findings["mcp-tools"]:
        assert finding["rule_id"] in out
    for record in warehouse.produced.costs["mcp-tools"]:
        if record["kind"] == "response":
            assert f"${Decimal(record['cost_usd']):.6f}" in out
    assert "get_order_status" in out and "failed" in out
    # Turns come in conversation order.
    assert out.index("Where is my order") < out.index("Your order is out for delivery")
    assert out.index("Your order is out for delivery") < out.index("Okay, I'll do that")


def test_session_show_inlines_errors(env: dict[str, str]) -> None:
    result = run("session", "show", "edge-cases")
    assert result.exit_code == 0, result.output
    assert "invalid_value" in result.output
    assert "issue_refund" in result.output and "output_returned" in result.output


def test_session_show_unknown_session(env: dict[str, str]) -> None:
    result = run("session", "show", "no-such-session")
    assert result.exit_code == 2
    assert "no session 'no-such-session'" in result.output


def test_sqlalchemy_reads_a_view(warehouse: Any) -> None:
    path = db.refresh(warehouse.settings)
    engine = sqlalchemy.create_engine(f"duckdb:///{path}?access_mode=read_only")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text("SELECT session_id, cost_usd FROM sessions ORDER BY session_id")
            ).all()
            assert {r.session_id: r.cost_usd for r in rows} == expected_costs(warehouse)
            with pytest.raises(sqlalchemy.exc.DBAPIError, match="read-only"):
                connection.execute(sqlalchemy.text("CREATE TABLE intruder AS SELECT 1"))
        pandas = pytest.importorskip("pandas")
        frame = pandas.read_sql(
            "SELECT role, text FROM turns WHERE session_id = 'beta-booking' ORDER BY turn_index",
            engine,
        )
        assert list(frame["role"]) == ["user", "assistant", "user", "assistant"]
        assert frame["text"].iloc[0] == "Hi, I'd like to book a table for Friday."
    finally:
        engine.dispose()


def test_warehouse_refresh_prints_the_sqlalchemy_url(env: dict[str, str], warehouse: Any) -> None:
    result = run("warehouse", "refresh")
    assert result.exit_code == 0, result.output
    path = db.database_path(warehouse.settings).resolve()
    assert f"duckdb:///{path}?access_mode=read_only" in result.output
