"""`voxledger reconcile`: prove every relayed frame reached the warehouse, session by session."""

from __future__ import annotations

from datetime import datetime

import click

from voxledger.config import load_settings


@click.command("reconcile")
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Only sessions first seen at or after this UTC time.",
)
@click.option("--all", "show_all", is_flag=True, help="List every session, not only mismatches.")
def reconcile_command(since: datetime | None, show_all: bool) -> None:
    """Compare proxy counts, raw, redacted + dead letters, and the events table per session.

    Exits 1 on any mismatch, naming the sessions and their missing seqs.
    """
    from rich.console import Console
    from rich.table import Table

    from voxledger.warehouse.reconcile import reconcile, tally_counts

    result = reconcile(load_settings(), since)
    rows = [tally_counts(s) for s in result.sessions if show_all or s.problems()]
    if rows:
        table = Table(*rows[0].keys(), title="reconciliation")
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row.values()))
        Console(width=200).print(table)
    click.echo(result.summary())
    if result.mismatched:
        raise SystemExit(1)
