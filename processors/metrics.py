"""Prometheus metrics of the stream processors, served at /metrics by each worker."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, start_http_server

from voxledger.errors import VoxLedgerError

EVENTS = Counter("voxledger_processor_events", "Envelopes processed", ["agent"])
DEAD_LETTERS = Counter("voxledger_processor_dead_letters", "Inputs sent to dead letters", ["agent"])
HELD = Gauge(
    "voxledger_processor_held_events", "Inputs held until their text is complete", ["agent"]
)
LAG = Gauge("voxledger_processor_lag", "Messages not yet processed", ["topic", "partition"])
EVENT_RATE = Gauge("voxledger_processor_events_per_second", "Recent throughput", ["agent"])


def serve_metrics(host: str, port: int) -> None:
    """Serve /metrics on host:port (port 0: do not serve)."""
    if not port:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise VoxLedgerError(
            f"cannot serve processor metrics on {host}:{port} ({exc.strerror}); "
            "set VOXLEDGER_PROCESSORS__METRICS_PORT to a free port, or 0 for none"
        ) from None
