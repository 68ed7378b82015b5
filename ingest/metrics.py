"""Prometheus metrics of the capture proxy and its publisher, in a registry of their own."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Delivery reports arrive within milliseconds on a healthy broker; the tail shows trouble.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProxyMetrics:
    """Every metric the proxy exposes at /metrics; one registry per proxy, so tests can run many."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions_open = Gauge(
            "voxledger_proxy_sessions_open", "Sessions being relayed now.", ["tenant"], registry=r
        )
        self.sessions_total = Counter(
            "voxledger_proxy_sessions", "Sessions accepted.", ["tenant"], registry=r
        )
        self.sessions_rejected = Counter(
            "voxledger_proxy_sessions_rejected",
            "Sessions refused, by reason.",
            ["reason"],
            registry=r,
        )
        frames = Counter(
            "voxledger_proxy_frames", "Frames relayed, by direction.", ["direction"], registry=r
        )
        sizes = Counter(
            "voxledger_proxy_frame_bytes", "Bytes relayed, by direction.", ["direction"], registry=r
        )
        # Pre-bound children: the relay path must not look labels up per frame.
        self.frames = {d: frames.labels(d) for d in ("client", "server")}
        self.frame_bytes = {d: sizes.labels(d) for d in ("client", "server")}
        self.publish_latency = Histogram(
            "voxledger_publish_latency_seconds",
            "From handing an envelope to the producer to its delivery report.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.delivered = Counter(
            "voxledger_publish_delivered", "Envelopes the broker acknowledged.", registry=r
        )
        self.delivery_failures = Counter(
            "voxledger_publish_delivery_failures",
            "Delivery reports with an error (the envelope then goes to the spool).",
            registry=r,
        )
        self.spooled = Counter(
            "voxledger_publish_spooled", "Envelopes written to the local spool.", registry=r
        )
        self.spool_depth = Gauge(
            "voxledger_spool_depth", "Envelopes in the spool, not yet in the broker.", registry=r
        )
        self.spool_bytes = Gauge("voxledger_spool_bytes", "Size of the spool.", registry=r)
        self.spooling = Gauge(
            "voxledger_publish_spooling", "1 while envelopes go to the spool.", registry=r
        )

    def watch_spool(self, depth: Callable[[], float], size: Callable[[], float]) -> None:
        self.spool_depth.set_function(depth)
        self.spool_bytes.set_function(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)
