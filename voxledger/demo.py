"""The main job: bring up the pipeline on the embedded default, run it, and stop what it started."""

from __future__ import annotations

import contextlib
import signal
import threading

import click

from voxledger.broker import running_broker, start_broker, stop_broker
from voxledger.config import Settings
from voxledger.topics import describe_topics, ensure_topics


def run_demo(settings: Settings, *, serve: bool) -> None:
    """Start the broker (unless one runs), create topics, print status; Ctrl-C stops it all."""
    started_broker = False
    if settings.bootstrap_servers is None and running_broker(settings) is None:
        state, _ = start_broker(settings)
        started_broker = True
        click.echo(f"started the embedded broker at {state.bootstrap_servers} (pid {state.pid})")
    try:
        ensure_topics(settings)
        for topic in describe_topics(settings):
            click.echo(f"  {topic.name}: {topic.partitions} partitions")
        if serve:
            click.echo("VoxLedger is running. Press Ctrl-C to stop.")
            _wait_for_interrupt()
    finally:
        if started_broker:
            stop_broker(settings)
            click.echo("stopped the embedded broker")


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
