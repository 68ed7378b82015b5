"""docs/data-dictionary.md is generated from tables.py, and tables.py matches what DuckDB says."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from voxledger.cli import cli
from voxledger.config import Settings
from voxledger.warehouse import db, tables

REPO = Path(__file__).resolve().parents[2]
DICTIONARY = REPO / "docs" / "data-dictionary.md"


def test_the_checked_in_dictionary_is_up_to_date() -> None:
    assert DICTIONARY.read_text(encoding="utf-8") == tables.render_dictionary(), (
        "docs/data-dictionary.md is stale: run `voxledger warehouse dictionary`"
    )


def test_documented_columns_are_the_views_columns(tmp_path: Path) -> None:
    """Names and DuckDB types, in order: the dictionary cannot describe a column wrongly."""
    con = db.connect(Settings(data_dir=tmp_path))
    try:
        for view in tables.VIEWS:
            described = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {view.name}").fetchall()]
            assert described == [(c.name, c.type) for c in view.columns], view.name
    finally:
        con.close()


def test_every_public_view_is_documented_with_session_id() -> None:
    names = [v.name for v in tables.VIEWS]
    assert len(names) == len(set(names))
    assert set(names) >= {
        "events", "sessions", "turns", "responses", "tool_calls", "findings", "verdicts",
        "costs", "cost_modalities", "session_costs", "latency", "errors", "transcriptions",
        "erasures",
    }  # fmt: skip
    for view in tables.VIEWS:
        assert "session_id" in {c.name for c in view.columns}, view.name
        assert view.description and all(c.meaning for c in view.columns), view.name
        assert f"## {view.name}\n" in tables.render_dictionary()


def test_dictionary_command_writes_and_checks(tmp_path: Path) -> None:
    target = tmp_path / "dictionary.md"
    runner = CliRunner()
    stale = runner.invoke(cli, ["warehouse", "dictionary", "--check", "--output", str(target)])
    assert stale.exit_code == 1
    assert "out of date" in stale.output
    wrote = runner.invoke(cli, ["warehouse", "dictionary", "--output", str(target)])
    assert wrote.exit_code == 0, wrote.output
    assert target.read_text(encoding="utf-8") == DICTIONARY.read_text(encoding="utf-8")
    fresh = runner.invoke(cli, ["warehouse", "dictionary", "--check", "--output", str(target)])
    assert fresh.exit_code == 0, fresh.output
    target.write_text(target.read_text(encoding="utf-8") + "\nhand edit\n", encoding="utf-8")
    edited = runner.invoke(cli, ["warehouse", "dictionary", "--check", "--output", str(target)])
    assert edited.exit_code == 1
