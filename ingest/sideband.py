"""Attach to a WebRTC or SIP call's server-side WebSocket by call_id and publish what it carries."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from voxledger.config import Settings, Tenant
from voxledger.envelope import Envelope
from voxledger.errors import ConfigError, VoxLedgerError
from voxledger.ingest.capture import (
    SESSION_CLOSED,
    SESSION_OPENED,
    SessionCapture,
    SessionContext,
)
from voxledger.ingest.publisher import Publisher
from voxledger.ingest.spool import Spool
from voxledger.topics import list_topic_partitions

__all__ = ["AttachSummary", "SidebandError", "attach_call", "sideband_url"]

CONNECT_TIMEOUT_S = 15.0
# After the call ends, how long the broker may take to acknowledge (or drain) the rest.
SETTLE_TIMEOUT_S = 30.0
# Closes that mean the call ended (normal, going away), not that the connection broke.
_CALL_ENDED_CODES = (1000, 1001)
_UNSAFE_IN_PATH = re.compile(r"[^A-Za-z0-9._-]+")


class SidebandError(VoxLedgerError):
    """The call cannot be attached to (unknown call, refused, wrong key, bad URL)."""


@dataclass
class AttachSummary:
    """What one attached call published."""

    call_id: str
    session_id: str
    topic: str
    events: int = 0  # every envelope, including VoxLedger's opened/closed events
    frames: int = 0  # frames the call sent
    parse_errors: int = 0
    ended_by: str = "the call closing"  # or a stop request, or the connection dropping
    undelivered: int = 0  # envelopes left in the spool when the broker did not take them
    spool_dir: str | None = None

    def count(self, envelope: Envelope) -> None:
        self.events += 1
        self.parse_errors += "parse_error" in envelope.payload

    def text(self) -> str:
        line = (
            f"call {self.call_id}: session {self.session_id}, {self.events} events, "
            f"{self.parse_errors} parse errors → {self.topic} (ended by {self.ended_by})"
        )
        if self.undelivered:
            line += f"; {self.undelivered} not yet in Kafka, kept in {self.spool_dir}"
        return line


def sideband_url(base: str, call_id: str) -> str:
    """`{base}/realtime?call_id=ID`; a base that already ends in /realtime is kept as it is."""
    base = base.rstrip("/")
    if not base.endswith("/realtime"):
        base += "/realtime"
    return f"{base}?call_id={quote(call_id, safe='')}"


async def attach_call(
    settings: Settings,
    call_id: str,
    tenant: str | None = None,
    upstream_url: str | None = None,
    stop: asyncio.Event | None = None,
    *,
    connected: asyncio.Event | None = None,
) -> AttachSummary:
    """Publish every event of call `call_id` as source=sideband until it closes or `stop` is set.

    The upstream is `upstream_url` when given (e.g. the simulator), else the tenant's
    endpoint. The tenant's OpenAI key is required for its own endpoint; an overridden
    upstream gets it when one is available, and no key otherwise. `connected` is set once
    the call's socket is open. Envelopes go through the proxy's Publisher, so a broker outage
    during the call spools them on disk instead of losing them.
    """
    owner = settings.tenant_named(tenant) if tenant else None
    url = sideband_url(_upstream_base(owner, upstream_url), call_id)
    headers = _auth_headers(owner, required=upstream_url is None)
    _check_topic(settings)
    spool_dir = settings.data_dir / "sideband-spool" / _UNSAFE_IN_PATH.sub("_", call_id)
    publisher = await asyncio.to_thread(_start_publisher, settings, spool_dir)
    summary = AttachSummary(call_id, call_id, publisher.topic, spool_dir=str(spool_dir))

    def publish(envelope: Envelope) -> None:
        summary.count(envelope)
        publisher.publish(envelope)

    capture = SessionCapture(_context(owner, url), publish, fallback_session_id=call_id)
    started = time.monotonic()
    try:
        async with _open(url, headers, call_id) as socket:
            capture.event("client", SESSION_OPENED, _opened(call_id, capture.context, url))
            if connected is not None:
                connected.set()
            summary.ended_by = await _listen(socket, capture, summary, stop or asyncio.Event())
            capture.event("client", SESSION_CLOSED, _closed(call_id, socket, summary, started))
    finally:
        capture.flush()
        summary.session_id = capture.session_id or call_id
        summary.undelivered = await asyncio.to_thread(_finish_publishing, publisher, spool_dir)
    return summary


def _upstream_base(owner: Tenant | None, upstream_url: str | None) -> str:
    if upstream_url:
        return upstream_url
    if owner is None:
        raise SidebandError("name the call's tenant with --tenant, or give --upstream-url")
    return owner.upstream_url()


def _auth_headers(owner: Tenant | None, required: bool) -> dict[str, str]:
    key = None
    if owner is not None:
        try:
            key = owner.upstream.api_key()
        except ConfigError:
            if required:
                raise
    if key is None and required:
        name = owner.name if owner else "?"
        raise SidebandError(
            f"tenant {name} has no OpenAI key configured (upstream.api_key_env or api_key_file)"
        )
    return {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}


def _check_topic(settings: Settings) -> None:
    # Fail before attaching: an audit that silently goes nowhere is worse than none.
    topic = settings.topics.raw.name
    if topic not in list_topic_partitions(settings):
        raise SidebandError(
            f"topic {topic} does not exist; create it with `voxledger topics create`"
        )


def _start_publisher(settings: Settings, spool_dir: Path) -> Publisher:
    # A spool per call: two attach processes must never write one spool.
    spool = Spool(spool_dir, settings.proxy.spool_max_bytes)
    return Publisher(settings, spool=spool).start()


def _finish_publishing(publisher: Publisher, spool_dir: Path) -> int:
    """Wait for the broker to take everything, close; how many envelopes stay spooled."""
    publisher.wait_until(lambda p: p.settled, SETTLE_TIMEOUT_S)
    publisher.close()
    left = publisher.spool.depth
    if left == 0:
        shutil.rmtree(spool_dir, ignore_errors=True)
    return left


def _context(owner: Tenant | None, url: str) -> SessionContext:
    return SessionContext(
        source="sideband",
        tenant=owner.name if owner else None,
        app=owner.app if owner else None,
        region=owner.region if owner else None,
        upstream_host=urlsplit(url).netloc,
    )


def _opened(call_id: str, context: SessionContext, url: str) -> dict[str, Any]:
    return {
        "type": SESSION_OPENED,
        "call_id": call_id,
        "tenant": context.tenant,
        "app": context.app,
        "region": context.region,
        "upstream_host": context.upstream_host,
        "endpoint": url.split("?", 1)[0],
    }


def _closed(
    call_id: str, socket: ClientConnection, summary: AttachSummary, started: float
) -> dict[str, Any]:
    return {
        "type": SESSION_CLOSED,
        "call_id": call_id,
        "ended_by": summary.ended_by,
        "close_code": socket.close_code,
        "close_reason": socket.close_reason,
        "frames": {"server": summary.frames},
        "duration_s": round(time.monotonic() - started, 6),
    }


@contextlib.asynccontextmanager
async def _open(url: str, headers: dict[str, str], call_id: str) -> AsyncIterator[ClientConnection]:
    endpoint = url.split("?", 1)[0]
    try:
        socket = await connect(
            url,
            additional_headers=headers,
            max_size=None,  # whatever the call carries is the call's; never cut a frame
            compression=None,  # as the proxy: deflating audio costs more CPU than it saves
            open_timeout=CONNECT_TIMEOUT_S,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise SidebandError(
            f"{endpoint} refused to attach to call {call_id} (HTTP {status})"
        ) from None
    except InvalidURI:
        raise SidebandError(f"{endpoint} is not a WebSocket URL (ws:// or wss://)") from None
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        raise SidebandError(f"cannot reach {endpoint} to attach to call {call_id}: {exc}") from None
    try:
        yield socket
    finally:
        await socket.close()


async def _listen(
    socket: ClientConnection, capture: SessionCapture, summary: AttachSummary, stop: asyncio.Event
) -> str:
    """Capture every frame of the call until it closes or `stop` is set; says which ended it."""
    receiving = asyncio.create_task(_receive(socket, capture, summary))
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for task in (receiving, stopping):
        task.cancel()
    await asyncio.gather(receiving, stopping, return_exceptions=True)
    if receiving not in done:
        return "a stop request"
    receiving.result()  # a failure while receiving is the caller's to see
    code = socket.close_code
    if code is None or code in _CALL_ENDED_CODES:
        return "the call closing"
    return f"the connection dropping (code {code})"


async def _receive(
    socket: ClientConnection, capture: SessionCapture, summary: AttachSummary
) -> None:
    # The sideband socket only listens here: everything on it comes from the server.
    with contextlib.suppress(ConnectionClosed):
        async for frame in socket:
            summary.frames += 1
            capture.frame("server", frame)
            if capture.session_id is None:
                # session.created comes first or not at all (joining a call already under way):
                # publish under the call id now rather than hold the whole call in memory.
                capture.flush()
