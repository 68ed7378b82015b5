"""Prometheus metrics of the capture proxy and its publisher, in registries of their own."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily

# Delivery reports arrive within milliseconds on a healthy broker; the tail shows trouble.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PublisherMetrics:
    """What a Publisher counts; one registry each, so tests can run many."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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


class ProxyMetrics:
    """Every metric the proxy exposes at /metrics; one registry per proxy, so tests can run many.

    The relay's own metrics live here; the publisher's are counted in the capture process,
    which reports them rendered (`publishing`, at most a second old), and /metrics shows both.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.publishing = b""  # the capture process's PublisherMetrics, as last reported
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
        self.relayed = RelayedTotals()
        r.register(self.relayed)
        self.capture_restarts = Counter(
            "voxledger_proxy_capture_restarts",
            "Capture processes started again after one died.",
            registry=r,
        )
        self.capture_backlog = Gauge(
            "voxledger_proxy_capture_backlog_bytes",
            "Relayed frames not yet taken by the capture process.",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry) + self.publishing


class RelayedTotals:
    """Frames and bytes relayed, by direction: plain counts, read when /metrics is scraped.

    The relay bumps them for every frame on the event loop's thread, so they need neither
    the lock nor the label lookup of a prometheus_client Counter.
    """

    def __init__(self) -> None:
        self.frames = {"client": 0, "server": 0}
        self.bytes = {"client": 0, "server": 0}

    def collect(self) -> Iterator[CounterMetricFamily]:
        frames = CounterMetricFamily(
            "voxledger_proxy_frames", "Frames relayed, by direction.", labels=["direction"]
        )
        sizes = CounterMetricFamily(
            "voxledger_proxy_frame_bytes", "Bytes relayed, by direction.", labels=["direction"]
        )
        for direction in ("client", "server"):
            frames.add_metric([direction], self.frames[direction])
            sizes.add_metric([direction], self.bytes[direction])
        yield frames
        yield sizes
