"""`voxledger dashboard`: serve the Streamlit app; `voxledger dashboard hash-password`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_command(app: Path, host: str, port: int) -> list[str]:
    """`streamlit run` headless, no usage statistics, no file watching, on host:port."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless=true",
        f"--server.address={host}",
        f"--server.port={port}",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--browser.gatherUsageStats=false",
        "--global.developmentMode=false",
        "--client.toolbarMode=minimal",
        "--theme.base=light",
    ]


@click.group("dashboard", invoke_without_command=True)
@click.option("--port", type=click.IntRange(1, 65535), help="Port [default: dashboard.port, 8501].")
@click.option("--host", help="Address to listen on [default: dashboard.host, 127.0.0.1].")
@click.pass_context
def command(ctx: click.Context, port: int | None, host: str | None) -> None:
    """Serve the dashboard (spend, quality, compliance, EU residency, transcript audit, SQL)."""
    if ctx.invoked_subcommand is not None:
        return
    from voxledger.config import load_settings

    settings = load_settings()  # a bad config fails here, with exit 2, not inside Streamlit
    host = host or settings.dashboard.host
    port = port or settings.dashboard.port
    if not settings.dashboard.users:
        click.echo(
            "warning: no dashboard users configured; add [dashboard.users.<name>] "
            "(see `voxledger dashboard hash-password`)",
            err=True,
        )
    click.echo(f"dashboard at http://{host}:{port}", err=True)
    args = streamlit_command(APP, host, port)
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process: a signal to `voxledger dashboard` reaches Streamlit itself.
    os.execv(sys.executable, args)


@command.command("hash-password")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="The password (prompted for when omitted; stdin works too).",
)
def hash_password_command(password: str) -> None:
    """Print the bcrypt hash to store as a dashboard user's password_bcrypt."""
    from voxledger.dashboard.auth import hash_password
    from voxledger.errors import VoxLedgerError

    if len(password) < 8:
        raise VoxLedgerError("a dashboard password needs at least 8 characters")
    click.echo(hash_password(password))
