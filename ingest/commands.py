"""The ingest layer's subcommands (import, attach, loadgen): thin wrappers over their libraries."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from voxledger.config import Settings, load_settings

if TYPE_CHECKING:
    from voxledger.ingest.sideband import AttachSummary

__all__ = ["attach_command", "import_command", "loadgen_command"]

T = TypeVar("T")


def _settings() -> Settings:
    return load_settings()


async def _until_interrupted(run: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run a job that stops gracefully (and still reports) on Ctrl-C or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        return await run(stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--tenant", help="Tenant the sessions belong to (sets tenant, app and region).")
def import_command(files: tuple[Path, ...], tenant: str | None) -> None:
    """Publish recorded Realtime event logs (JSONL, one event a line) to the raw topic.

    Sessions start at each session.created; lines that already are envelopes are
    re-published unchanged; lines that are not valid JSON are kept as parse errors.
    """
    from voxledger.ingest.importer import import_logs

    click.echo(import_logs(_settings(), files, tenant=tenant).text())


@click.command("attach")
@click.option("--call-id", required=True, help="The WebRTC or SIP call's id, from OpenAI.")
@click.option("--tenant", help="Tenant the call belongs to: its endpoint, key, app and region.")
@click.option(
    "--upstream-url",
    help="Realtime endpoint to attach at, e.g. the simulator's ws://127.0.0.1:PORT/v1 "
    "[default: the tenant's].",
)
def attach_command(call_id: str, tenant: str | None, upstream_url: str | None) -> None:
    """Publish every event of a live WebRTC or SIP call (sideband) until it ends or Ctrl-C."""
    from voxledger.ingest.sideband import attach_call

    settings = _settings()

    async def attach(stop: asyncio.Event) -> AttachSummary:
        connected = asyncio.Event()
        announce = asyncio.create_task(_say_when(connected, f"attached to call {call_id}"))
        try:
            return await attach_call(
                settings, call_id, tenant, upstream_url, stop=stop, connected=connected
            )
        finally:
            announce.cancel()

    click.echo(asyncio.run(_until_interrupted(attach)).text())


async def _say_when(event: asyncio.Event, message: str) -> None:
    await event.wait()
    click.echo(f"{message}; Ctrl-C to stop", err=True)


@click.command("loadgen")
@click.option(
    "--sessions",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Calls to place in total.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds over which call starts are spread evenly (0: all at once).",
)
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    metavar="NAME",
    help="Scenario to play, by name or YAML path; repeat for a mix "
    "[default: every shipped scenario, in turn].",
)
@click.option(
    "--target",
    default=None,
    metavar="URL",
    help="Realtime endpoint base [default: the proxy at ws://127.0.0.1:8080/v1].",
)
@click.option("--api-key", default=None, help="Key the calls present [default: vx-demo-us].")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Most calls at once [default: no limit].",
)
@click.option("--fast", is_flag=True, help="Send audio as fast as possible, not at 20 ms a chunk.")
def loadgen_command(
    sessions: int,
    duration: float,
    scenarios: tuple[str, ...],
    target: str | None,
    api_key: str | None,
    concurrency: int | None,
    fast: bool,
) -> None:
    """Place many scripted calls at once and report how they went (Ctrl-C stops early).

    Exits 1 when any call failed.
    """
    from voxledger.ingest.loadgen import (
        DEFAULT_API_KEY,
        DEFAULT_TARGET,
        SessionOutcome,
        generate_load,
        resolve_scenarios,
    )

    plays = resolve_scenarios(scenarios)
    tally = {"ok": 0, "failed": 0}

    def show(_: object) -> str:
        return f"{tally['ok']} ok, {tally['failed']} failed"

    progress = click.progressbar(
        length=sessions, label="sessions", item_show_func=show, file=click.get_text_stream("stderr")
    )
    with progress as bar:

        def done(outcome: SessionOutcome) -> None:
            tally["ok" if outcome.ok else "failed"] += 1
            bar.update(1, outcome)

        summary = asyncio.run(
            _until_interrupted(
                lambda stop: generate_load(
                    sessions=sessions,
                    duration_s=duration,
                    scenarios=plays,
                    target=target or DEFAULT_TARGET,
                    api_key=api_key or DEFAULT_API_KEY,
                    concurrency=concurrency,
                    fast=fast,
                    stop=stop,
                    on_done=done,
                )
            )
        )
    click.echo(summary.text())
    if summary.failed:
        raise SystemExit(1)  # scripts and CI can tell a run with failed calls
