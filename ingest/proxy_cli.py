"""`voxledger proxy`: run the capture proxy until SIGINT or SIGTERM, logging JSON lines."""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import logging
import signal
import sys
from datetime import UTC, datetime

import click

from voxledger.cli import UserError
from voxledger.config import Settings, load_settings

# Attributes every LogRecord has; anything else was passed as `extra` and belongs in the line.
_STANDARD_FIELDS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_FIELDS:
                line[key] = _plain(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def _plain(value: object) -> object:
    # Libraries attach objects to records (websockets: a weak proxy to the connection).
    try:
        if value is None or isinstance(value, str | int | float | bool):
            return value
        if isinstance(value, list | tuple | dict):
            return json.loads(json.dumps(value, default=str))
        return str(value)
    except Exception:
        return "<unavailable>"


def configure_json_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


async def run_proxy(settings: Settings, host: str, port: int, upstream_url: str | None) -> None:
    """Serve until SIGINT/SIGTERM, then close every session and flush the producer and spool."""
    from voxledger.ingest.proxy import start_proxy

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    proxy = await start_proxy(settings, host=host, port=port, upstream_url=upstream_url)
    # What start-up made lives for good; frozen, the collector no longer rescans it, and its
    # full collections stop pausing every relay for tens of milliseconds.
    gc.collect()
    gc.freeze()
    click.echo(
        f"proxy listening on {proxy.url}/realtime (metrics {proxy.metrics_url}, "
        f"raw topic {proxy.publisher.topic}); Ctrl-C to stop",
        err=True,
    )
    try:
        await stop.wait()
    finally:
        logging.getLogger(__name__).info("shutting down", extra={"event": "proxy.stopping"})
        await proxy.close()


@click.command("proxy")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port."
)
@click.option(
    "--upstream-url",
    metavar="URL",
    help="Send every session here (e.g. the simulator's ws://127.0.0.1:PORT/v1) "
    "instead of each tenant's OpenAI endpoint.",
)
def command(host: str, port: int, upstream_url: str | None) -> None:
    """Relay Realtime sessions to OpenAI and publish every frame to Kafka.

    Clients connect to ws://HOST:PORT/v1/realtime with their VoxLedger key, e.g. the
    openai SDK with websocket_base_url="ws://HOST:PORT/v1". Prometheus metrics are at
    http://HOST:PORT/metrics and a health check at /healthz, on the same port.
    """
    settings = load_settings()
    configure_json_logging()
    try:
        asyncio.run(run_proxy(settings, host, port, upstream_url))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is in use; pick another with --port") from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
