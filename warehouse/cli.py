"""Reading the warehouse: `voxledger sql`, `voxledger session show`, `voxledger warehouse`."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

FORMATS = ("table", "json", "csv")
DICTIONARY = Path("docs") / "data-dictionary.md"


def _settings() -> Any:
    from voxledger.config import load_settings

    return load_settings()


# -- voxledger sql ------------------------------------------------------------------------------


@click.command("sql")
@click.argument("query")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="How to print the result.",
)
def sql_command(query: str, output_format: str) -> None:
    """Run one read-only SQL query on the warehouse views and print the result.

    \b
    Example: voxledger sql "SELECT session_id, verdict, cost_usd FROM sessions"
    The views and their columns are in docs/data-dictionary.md.
    """
    from voxledger.warehouse.db import read_query

    columns, rows = read_query(_settings(), query)
    if output_format == "json":
        click.echo(to_json(columns, rows))
    elif output_format == "csv":
        click.echo(to_csv(columns, rows), nl=False)
    else:
        _print_table(columns, rows)


def _plain(value: Any) -> Any:
    """A value as JSON has it: money stays exact (a string), times ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def to_json(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """Rows as a JSON array of objects, one per row."""
    return json.dumps(
        [dict(zip(columns, (_plain(v) for v in row), strict=True)) for row in rows],
        ensure_ascii=False,
        indent=2,
        default=str,
    )


def to_csv(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """Rows as CSV with a header; NULL is empty, lists are JSON."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    plain = _plain(value)
    return json.dumps(plain, ensure_ascii=False) if isinstance(plain, list | dict) else str(plain)


def _print_table(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, show_lines=False, header_style="bold")
    for row in rows:
        table.add_row(*("NULL" if v is None else _cell(v) for v in row))
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    console.print(f"{len(rows)} row{'' if len(rows) == 1 else 's'}", style="dim")


# -- voxledger session show ---------------------------------------------------------------------


@click.group("session")
def session_group() -> None:
    """Look at one session in the warehouse."""


@session_group.command("show")
@click.argument("session_id")
def session_show(session_id: str) -> None:
    """Print SESSION_ID's redacted transcript, turn by turn, with costs and findings inline."""
    from rich.console import Console

    from voxledger.warehouse.db import connect

    con = connect(_settings())
    try:
        report = load_session(con, session_id)
    finally:
        con.close()
    console = Console(width=None if sys.stdout.isatty() else 120)
    render_session(report, console)


# -- voxledger warehouse ------------------------------------------------------------------------


@click.group("warehouse")
def warehouse_group() -> None:
    """The warehouse's DuckDB database and its documentation."""


@warehouse_group.command("refresh")
def warehouse_refresh() -> None:
    """Create or update the DuckDB file and its views (for BI tools opening it directly),
    and rebuild the dashboard's mart when files changed since it was built."""
    from voxledger.warehouse.db import refresh

    path = refresh(_settings())
    click.echo(f"views ready in {path}")
    click.echo(f"SQLAlchemy URL: duckdb:///{path.resolve()}?access_mode=read_only")


@warehouse_group.command("dictionary")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DICTIONARY,
    show_default=True,
    help="Where the data dictionary lives.",
)
@click.option("--check", is_flag=True, help="Only check it is up to date; exit 1 when not.")
def warehouse_dictionary(output: Path, check: bool) -> None:
    """Write the data dictionary generated from the view definitions (tables.py)."""
    from voxledger.warehouse.tables import render_dictionary

    text = render_dictionary()
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else None
        if current != text:
            click.echo(f"{output} is out of date: run `voxledger warehouse dictionary`", err=True)
            sys.exit(1)
        click.echo(f"{output} is up to date")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}")


# -- the session report -------------------------------------------------------------------------


def _records(con: Any, query: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = con.execute(query, params)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def load_session(con: Any, session_id: str) -> dict[str, Any]:
    """Everything `session show` prints about one session, read from the public views."""
    from voxledger.warehouse.db import WarehouseError

    found = _records(con, "SELECT * FROM sessions WHERE session_id = ?", [session_id])
    if not found:
        raise WarehouseError(f"no session {session_id!r} in the warehouse")
    where = "WHERE session_id = ?"
    return {
        "session": found[0],
        "turns": _records(con, f"SELECT * FROM turns {where} ORDER BY seq", [session_id]),
        "responses": _records(
            con,
            "SELECT r.*, l.ttf_audio_ms, l.speech_stopped_to_first_audio_ms FROM responses r "
            "LEFT JOIN latency l USING (session_id, response_id) WHERE r.session_id = ?",
            [session_id],
        ),
        "tool_calls": _records(con, f"SELECT * FROM tool_calls {where}", [session_id]),
        "findings": _records(
            con,
            "SELECT *, list_max(TRY_CAST(json_extract_string(evidence, '$[*].seq') AS BIGINT[]))"
            f" AS at_seq FROM findings {where}",
            [session_id],
        ),
        "errors": _records(
            con, f"SELECT * FROM errors {where} AND kind = 'error_event'", [session_id]
        ),
        "session_costs": _records(con, f"SELECT * FROM session_costs {where}", [session_id]),
    }


def _money(value: Any) -> str:
    return "unpriced" if value is None else f"${Decimal(value):.6f}"


def _ms(value: Any) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def render_session(report: dict[str, Any], console: Any) -> None:
    """Header, then the timeline by seq: turns, responses, tool calls, findings, errors."""
    from rich.panel import Panel
    from rich.text import Text

    s = report["session"]
    header = Text()
    for label, value in (
        ("session", s["session_id"]),
        ("tenant", f"{s['tenant']} / {s['app']}"),
        ("region", f"{s['region']} via {s['upstream_host']} (EU residency: {s['eu_residency']})"),
        ("model", s["model"]),
        ("started", s["started_at"]),
        ("duration", None if s["duration_s"] is None else f"{s['duration_s']:.1f} s"),
        ("turns", f"{s['user_turns']} user, {s['assistant_turns']} assistant"),
        ("verdict", f"{s['verdict'] or 'open'} {', '.join(s['deciding_rules'] or [])}".strip()),
        ("cost", _money(s["cost_usd"])),
    ):
        header.append(f"{label:>9}: ", style="bold")
        header.append(f"{value}\n")
    header.rstrip()
    console.print(Panel(header, title="VoxLedger session", expand=False))
    for _, _, line in sorted(_timeline(report), key=lambda entry: (entry[0], entry[1])):
        console.print(line)
    for summary in report["session_costs"]:
        if summary["unplayed_audio_s"]:
            console.print(
                Text(
                    f"unplayed audio: {summary['unplayed_audio_s']} s "
                    f"({_money(summary['unplayed_audio_usd'])})",
                    style="dim",
                )
            )


def _timeline(report: dict[str, Any]) -> list[tuple[int, int, Any]]:
    from rich.text import Text

    last = max([t["seq"] for t in report["turns"]] + [0]) + 1
    entries: list[tuple[int, int, Any]] = []
    for turn in report["turns"]:
        line = Text(f"#{turn['turn_index']:<3}", style="dim")
        line.append(f"{turn['role']:>9}  ", style="bold cyan" if turn["role"] == "user" else "bold")
        line.append(turn["text"] or "")
        entries.append((turn["seq"], 0, line))
    for r in report["responses"]:
        tokens = f"{r['input_tokens'] or 0} in / {r['output_tokens'] or 0} out"
        reason = f" ({r['status_reason']})" if r["status_reason"] else ""
        text = (
            f"      ↳ {r['response_id']} {r['status']}{reason} · {tokens} tokens · "
            f"{_money(r['cost_usd'])} · first audio {_ms(r['ttf_audio_ms'])}"
        )
        entries.append((r["seq"] if r["seq"] is not None else last, 1, Text(text, style="dim")))
    for call in report["tool_calls"]:
        text = (
            f"      ⚙ {call['kind']} {call['server_label'] + '.' if call['server_label'] else ''}"
            f"{call['name']}({call['arguments'] or ''}) → {call['outcome']}"
        )
        entries.append((call["seq"] if call["seq"] is not None else last, 1, Text(text)))
    for finding in report["findings"]:
        text = f"      ⚑ {finding['severity']} {finding['rule_id']}: {finding['message']}"
        at = finding["at_seq"] if finding["at_seq"] is not None else last
        entries.append((at, 2, Text(text, style="bold red")))
    for error in report["errors"]:
        text = f"      ✖ error {error['code'] or ''}: {error['message'] or ''}"
        entries.append((error["seq"] if error["seq"] is not None else last, 2, Text(text, "red")))
    return entries
