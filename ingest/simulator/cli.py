"""`voxledger simulate-upstream`: serve a scripted stand-in for the OpenAI Realtime API."""

from __future__ import annotations

import click

from voxledger.ingest.simulator.exceptions import SimulatorError
from voxledger.ingest.simulator.server import SimulatorServer, run_simulator


@click.command("simulate-upstream")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0 = any free).",
)
@click.option(
    "--fast/--real-time",
    default=False,
    show_default=True,
    help="Stream replies as fast as possible instead of at speaking pace.",
)
def command(host: str, port: int, fast: bool) -> None:
    """Serve a simulated OpenAI Realtime API; clients pick a script with ?scenario=NAME."""

    def announce(server: SimulatorServer) -> None:
        pace = "fast" if fast else "real-time"
        click.echo(f"simulated OpenAI Realtime API at {server.url} ({pace}); Ctrl-C to stop")

    try:
        run_simulator(host, port, fast, on_ready=announce)
    except SimulatorError as exc:
        raise click.ClickException(str(exc)) from None
