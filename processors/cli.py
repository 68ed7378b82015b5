"""`voxledger processors`: run the stream processors."""

from __future__ import annotations

import sys

import click


@click.command("processors")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes to run, as members of one consumer group.",
)
@click.option("--worker-index", type=click.IntRange(0), default=None, hidden=True)
@click.option(
    "--loglevel",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def command(workers: int, worker_index: int | None, loglevel: str) -> None:
    """Redact PII (and, as they land, judge policy and cost) from the raw topic onwards."""
    from voxledger.config import load_settings
    from voxledger.processors.worker import run_worker, run_workers

    settings = load_settings()
    if workers == 1 or worker_index is not None:
        run_worker(settings, worker_index or 0, loglevel)
    else:
        sys.exit(run_workers(settings, workers))
