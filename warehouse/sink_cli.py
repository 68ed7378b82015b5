"""The warehouse's writing commands: `voxledger sink`, `compact`, `rebuild` and `erase`."""

from __future__ import annotations

import getpass
import logging

import click


def _settings():
    from voxledger.config import load_settings

    return load_settings()


@click.command("sink")
def sink_command() -> None:
    """Write the redacted, findings, costs and dead-letter topics to Parquet until stopped.

    Meanwhile a background thread rebuilds the dashboard's mart as files land (throttled).
    """
    from voxledger.warehouse.marts import MartRefresher
    from voxledger.warehouse.sink import run_sink

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = _settings()
    with MartRefresher(settings):
        stats = run_sink(settings)
    click.echo(
        f"sink stopped: {stats.records} records, {stats.rows_written} rows in "
        f"{stats.files_written} files ({stats.rows_erased} rows erased)"
    )


@click.command("compact")
@click.option(
    "--max-rows",
    type=click.IntRange(1),
    default=1_000_000,
    show_default=True,
    help="Largest merged file, in rows.",
)
def compact_command(max_rows: int) -> None:
    """Merge each partition's small Parquet files; query results do not change."""
    from voxledger.warehouse.compact import compact

    result = compact(_settings(), max_rows=max_rows)
    click.echo(
        f"{result.files_before} files → {result.files_after} "
        f"({result.merged} merged files written, {result.upgraded} older files given the "
        f"current columns, {result.leftovers_removed} leftovers removed)"
    )


@click.command("rebuild")
def rebuild_command() -> None:
    """Drop the warehouse tables and rebuild them from the topics; erasures stay erased."""
    from voxledger.warehouse.rebuild import rebuild

    stats = rebuild(_settings())
    click.echo(
        f"rebuilt: {stats.records} records, {stats.rows_written} rows in "
        f"{stats.files_written} files ({stats.rows_erased} rows erased)"
    )


@click.command("erase")
@click.option("--session", "session_id", help="Erase every row of this session.")
@click.option("--subject", help="Erase every row holding this pseudonym, e.g. '<PERSON_4821>'.")
@click.option("--by", "requested_by", help="Who requests the erasure [default: your user name].")
def erase_command(session_id: str | None, subject: str | None, requested_by: str | None) -> None:
    """GDPR erasure: rewrite the Parquet files without the rows, and record who asked."""
    from voxledger.warehouse.erase import ErasureError, erase

    if (session_id is None) == (subject is None):
        raise ErasureError("give exactly one of --session ID or --subject PSEUDONYM")
    scope, target = ("session", session_id) if session_id is not None else ("subject", subject)
    result = erase(
        _settings(), scope=scope, target=target, requested_by=requested_by or getpass.getuser()
    )
    click.echo(
        f"erased {scope} {target}: {result.rows_removed} rows removed, "
        f"{result.files_rewritten} files rewritten (erasure {result.erasure_id})"
    )
