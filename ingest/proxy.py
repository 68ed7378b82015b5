"""The capture proxy: relays Realtime WebSocket sessions to OpenAI and captures every frame."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import EXTERNAL_CLOSE_CODES, Close
from websockets.http11 import Request, Response

from voxledger.config import ProxySettings, Settings, Tenant
from voxledger.envelope import Direction, Envelope, utc_now
from voxledger.errors import ConfigError
from voxledger.ingest.capture import SESSION_CLOSED, SESSION_OPENED, SessionCapture, SessionContext
from voxledger.ingest.metrics import ProxyMetrics
from voxledger.ingest.publisher import Publisher
from voxledger.ingest.scrub import scrub_headers, scrub_query

log = logging.getLogger(__name__)

REALTIME_PATH = "/v1/realtime"
# Browsers cannot set headers: they send the key and beta flag as subprotocols with `realtime`.
KEY_SUBPROTOCOL = "openai-insecure-api-key."
BETA_SUBPROTOCOL = "openai-beta."
REALTIME_SUBPROTOCOL = "realtime"
FORWARDED_HEADERS = ("OpenAI-Beta", "OpenAI-Organization", "OpenAI-Project")
UPSTREAM_OPEN_TIMEOUT_S = 10.0
MAX_REASON_BYTES = 123  # a close frame's payload is at most 125 bytes, 2 of them the code
CAPTURE_SLICE_S = 0.0005  # capture work yields to forwarding at least this often

# websockets logs handshake headers (API keys included) at debug level: never let it.
_websockets_log = logging.getLogger(f"{__name__}.websockets")
_websockets_log.setLevel(logging.INFO)


class UpstreamError(Exception):
    """The upstream session could not be opened; the message is safe to show and log."""


def client_key(request: Request) -> str | None:
    """The client's VoxLedger key: `Authorization: Bearer`, the browser subprotocol, or ?api_key."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    for protocol in offered_subprotocols(request):
        if protocol.startswith(KEY_SUBPROTOCOL) and len(protocol) > len(KEY_SUBPROTOCOL):
            return protocol[len(KEY_SUBPROTOCOL) :]
    query = dict(parse_qsl(urlsplit(request.path).query))
    return query.get("api_key") or None


def offered_subprotocols(request: Request) -> list[str]:
    offered = request.headers.get_all("Sec-WebSocket-Protocol")
    return [p.strip() for value in offered for p in value.split(",") if p.strip()]


def _select_subprotocol(connection: ServerConnection, subprotocols: list[str]) -> str | None:
    # Echo `realtime` when offered (browsers require it); never the key-carrying one.
    return REALTIME_SUBPROTOCOL if REALTIME_SUBPROTOCOL in subprotocols else None


def _short(reason: str) -> str:
    data = reason.encode()
    return (
        reason if len(data) <= MAX_REASON_BYTES else data[:MAX_REASON_BYTES].decode(errors="ignore")
    )


def _describe(close: Close | None) -> dict[str, Any] | None:
    return None if close is None else {"code": int(close.code), "reason": close.reason}


def _frame_bytes(message: str | bytes) -> int:
    if isinstance(message, bytes) or message.isascii():  # isascii() is O(1) in CPython
        return len(message)
    return len(message.encode())


class CaptureQueue:
    """Frames already forwarded, captured by one task in relay order.

    Forwarding a frame never waits for envelope building: captures run when the relays have
    nothing to forward, in slices short enough that a frame arriving meanwhile goes out fast.
    """

    def __init__(self) -> None:
        self._items: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.create_task(self._run())

    def put(self, work: Callable[..., None], *args: Any) -> None:
        self._items.append((work, args))
        self._idle.clear()
        self._ready.set()

    async def close(self) -> None:
        """Capture everything queued, then stop."""
        await self._idle.wait()
        self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._ready.wait()
            self._ready.clear()
            yield_at = loop.time() + CAPTURE_SLICE_S
            while self._items:
                work, args = self._items.popleft()
                try:
                    work(*args)
                except Exception:  # a capture bug must not end every session's capture
                    log.exception("capturing a frame failed; it is missing from the raw topic")
                if loop.time() >= yield_at:
                    await asyncio.sleep(0)
                    yield_at = loop.time() + CAPTURE_SLICE_S
            self._idle.set()


class ProxyServer:
    """A running proxy: WebSocket sessions at /v1/realtime, plus /metrics and /healthz over HTTP."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        metrics: ProxyMetrics,
        upstream_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.limits: ProxySettings = settings.proxy
        self.publisher = publisher
        self.metrics = metrics
        self.upstream_url = upstream_url
        self.host = "127.0.0.1"
        self.port = 0
        self.sessions: set[RelayedSession] = set()
        self._open_by_tenant: Counter[str] = Counter()
        self._server: Server | None = None
        self._closing = False
        self.captures: CaptureQueue | None = None

    @property
    def url(self) -> str:
        """The base URL clients use (the SDK's `websocket_base_url`)."""
        return f"ws://{self.host}:{self.port}/v1"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    async def listen(self, host: str, port: int) -> None:
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._http,
            select_subprotocol=_select_subprotocol,
            max_size=self.limits.max_frame_bytes,
            compression=None,  # deflating audio costs more CPU than the relay budget allows
            logger=_websockets_log,
        )
        self.host = host
        self.port = self._server.sockets[0].getsockname()[1]
        self.captures = CaptureQueue()

    async def close(self) -> None:
        """Close every session (1001, both sides), then flush the producer and the spool."""
        self._closing = True
        if self._server is not None:
            self._server.close(code=1001, reason="proxy shutting down")
            await self._server.wait_closed()
        if self.captures is not None:
            await self.captures.close()
        await asyncio.to_thread(self.publisher.close)

    # -- plain HTTP: metrics, health, wrong paths -----------------------------------------------

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/metrics":
            return self._respond(connection, 200, self.metrics.render(), self.metrics.content_type)
        if path == "/healthz":
            ok = self.publisher.accepting_sessions and not self._closing
            body = {
                "status": "ok" if ok else "unavailable",
                "sessions": len(self.sessions),
                "spooling": self.publisher.spooling,
                "spool_depth": self.publisher.spool.depth,
            }
            return self._respond(
                connection, 200 if ok else 503, json.dumps(body).encode(), "application/json"
            )
        if path.rstrip("/") != REALTIME_PATH:
            return connection.respond(404, f"not found: the Realtime endpoint is {REALTIME_PATH}\n")
        return None

    @staticmethod
    def _respond(
        connection: ServerConnection, status: int, body: bytes, content_type: str
    ) -> Response:
        response = connection.respond(status, "")
        response.body = body
        del response.headers["Content-Length"]
        del response.headers["Content-Type"]
        response.headers["Content-Length"] = str(len(body))
        response.headers["Content-Type"] = content_type
        return response

    # -- sessions -------------------------------------------------------------------------------

    async def _handle(self, client: ServerConnection) -> None:
        key = client_key(client.request)
        tenant = self.settings.tenant_for_key(key) if key else None
        if tenant is None:
            reason = "unknown API key" if key else "missing API key"
            return await self._reject(client, 1008, reason, "unauthorized")
        if self._closing:
            return await self._reject(client, 1001, "proxy shutting down", "shutting_down", tenant)
        if not self.publisher.accepting_sessions:
            reason = "try again later: the capture spool is full"
            return await self._reject(client, 1013, reason, "spool_full", tenant)
        if self._open_by_tenant[tenant.name] >= self.limits.max_sessions_per_tenant:
            reason = f"try again later: {self.limits.max_sessions_per_tenant} sessions already open"
            return await self._reject(client, 1013, reason, "tenant_limit", tenant)
        session = RelayedSession(self, client, tenant, key)
        self.sessions.add(session)
        self._open_by_tenant[tenant.name] += 1
        self.metrics.sessions_open.labels(tenant.name).inc()
        self.metrics.sessions_total.labels(tenant.name).inc()
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            self._open_by_tenant[tenant.name] -= 1
            self.metrics.sessions_open.labels(tenant.name).dec()

    async def _reject(
        self,
        client: ServerConnection,
        code: int,
        reason: str,
        label: str,
        tenant: Tenant | None = None,
    ) -> None:
        # Nothing is published for a rejected session; the key itself is never logged.
        self.metrics.sessions_rejected.labels(label).inc()
        log.warning(
            "session rejected: %s (close %d) client=%s tenant=%s",
            reason,
            code,
            _address(client),
            tenant.name if tenant else None,
            extra={
                "event": "session.rejected",
                "reason": reason,
                "close_code": code,
                "client": _address(client),
                "tenant": tenant.name if tenant else None,
            },
        )
        await client.close(code, reason)


class RelayedSession:
    """One client connection, its upstream connection, and the capture of both directions."""

    def __init__(
        self, proxy: ProxyServer, client: ServerConnection, tenant: Tenant, key: str
    ) -> None:
        self.proxy = proxy
        self.captures: CaptureQueue = proxy.captures
        self.client = client
        self.tenant = tenant
        self.upstream: ClientConnection | None = None
        self.id = f"vxp_{uuid.uuid4().hex}"
        url = urlsplit(client.request.path)
        self.query = parse_qsl(url.query, keep_blank_values=True)
        # The client's own key never goes upstream, wherever it was put.
        self.upstream_query = urlencode([(k, v) for k, v in self.query if v != key])
        self.upstream_base = proxy.upstream_url or tenant.upstream_url()
        self.upstream_host = urlsplit(self.upstream_base).netloc
        model = dict(self.query).get("model")
        self.capture = SessionCapture(
            SessionContext(
                source="proxy",
                tenant=tenant.name,
                app=tenant.app,
                region=tenant.region,
                upstream_host=self.upstream_host,
                model=model,
            ),
            publish=self._publish,
            fallback_session_id=self.id,
        )
        self.frames: dict[Direction, int] = {"client": 0, "server": 0}
        self.bytes: dict[Direction, int] = {"client": 0, "server": 0}
        self.spooled = 0
        self.closed_first: str | None = None
        self.upstream_error: str | None = None
        self.started = self.ended = time.monotonic()
        self.last_activity = self.started

    def _publish(self, envelope: Envelope) -> None:
        if self.proxy.publisher.publish(envelope):
            self.spooled += 1

    async def run(self) -> None:
        self.captures.put(self.capture.event, "client", SESSION_OPENED, self._opened())
        self._log_opened()
        try:
            try:
                self.upstream = await self._connect_upstream()
            except UpstreamError as exc:
                self.closed_first, self.upstream_error = "proxy", str(exc)
                log.error("session %s: %s", self.id, exc, extra={"session": self.id})
                await self.client.close(1011, _short(str(exc)))
                return
            await self._relay_both(self.upstream)
        finally:
            self._finish()

    # -- upstream -------------------------------------------------------------------------------

    async def _connect_upstream(self) -> ClientConnection:
        url = f"{self.upstream_base.rstrip('/')}/realtime"
        if self.upstream_query:
            url = f"{url}?{self.upstream_query}"
        headers = self._upstream_headers()
        try:
            return await connect(
                url,
                additional_headers=headers,
                user_agent_header=self.client.request.headers.get("User-Agent"),
                max_size=self.proxy.limits.max_frame_bytes,
                compression=None,
                open_timeout=UPSTREAM_OPEN_TIMEOUT_S,
                logger=_websockets_log,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise UpstreamError(f"upstream {self.upstream_host} refused: HTTP {status}") from None
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            detail = type(exc).__name__ if isinstance(exc, InvalidURI) else str(exc)
            raise UpstreamError(f"upstream {self.upstream_host} unreachable: {detail}") from None

    def _upstream_headers(self) -> list[tuple[str, str]]:
        request_headers = self.client.request.headers
        headers = [(n, request_headers[n]) for n in FORWARDED_HEADERS if n in request_headers]
        if "OpenAI-Beta" not in request_headers:
            for protocol in offered_subprotocols(self.client.request):
                if protocol.startswith(BETA_SUBPROTOCOL):  # openai-beta.realtime-v1
                    headers.append(
                        ("OpenAI-Beta", protocol[len(BETA_SUBPROTOCOL) :].replace("-", "="))
                    )
        api_key = self._upstream_key()
        if api_key:
            headers.append(("Authorization", f"Bearer {api_key}"))
        return headers

    def _upstream_key(self) -> str | None:
        try:
            secret = self.tenant.upstream.api_key()
        except ConfigError as exc:
            if self.proxy.upstream_url is None:
                raise UpstreamError(f"tenant {self.tenant.name}: {exc}") from None
            return None  # an explicit upstream (e.g. the simulator) may not need a key
        if secret is None and self.proxy.upstream_url is None:
            raise UpstreamError(f"tenant {self.tenant.name} has no OpenAI key configured")
        return secret.get_secret_value() if secret else None

    # -- relay ----------------------------------------------------------------------------------

    async def _relay_both(self, upstream: ClientConnection) -> None:
        relays = [
            asyncio.create_task(self._relay(self.client, upstream, "client")),
            asyncio.create_task(self._relay(upstream, self.client, "server")),
        ]
        watchdog = asyncio.create_task(self._watch_idle())
        try:
            await asyncio.gather(*relays)
        except Exception:
            log.exception("session %s: relay failed", self.id, extra={"session": self.id})
            self.closed_first = self.closed_first or "proxy"
            await self._close_both(1011, 1011, "proxy internal error")
        finally:
            watchdog.cancel()
            for task in relays:
                task.cancel()

    async def _relay(
        self,
        source: ServerConnection | ClientConnection,
        target: ServerConnection | ClientConnection,
        direction: Direction,
    ) -> None:
        """Forward every frame as it arrives, then queue its capture (never awaited here)."""
        frames_metric = self.proxy.metrics.frames[direction]
        bytes_metric = self.proxy.metrics.frame_bytes[direction]
        loop = asyncio.get_running_loop()
        while True:
            try:
                message = await source.recv()
            except ConnectionClosed as exc:
                await self._propagate_close(source, target, exc)
                return
            observed_at = utc_now()
            try:
                await target.send(message)
            except ConnectionClosed:
                return  # the other relay propagates the target's close
            self.last_activity = loop.time()
            size = _frame_bytes(message)
            self.frames[direction] += 1
            self.bytes[direction] += size
            frames_metric.inc()
            bytes_metric.inc(size)
            self.captures.put(self.capture.frame, direction, message, observed_at)

    async def _propagate_close(
        self,
        source: ServerConnection | ClientConnection,
        target: ServerConnection | ClientConnection,
        exc: ConnectionClosed,
    ) -> None:
        side = "client" if source is self.client else "upstream"
        peer_first = exc.rcvd is not None and (exc.sent is None or bool(exc.rcvd_then_sent))
        if self.closed_first is None:
            self.closed_first = side if peer_first else "proxy"
        close = exc.rcvd if peer_first else exc.sent
        if close is None:  # the TCP connection dropped without a close frame
            code, reason = (1001 if side == "client" else 1011), f"{side} connection lost"
            await target.close(code, reason)
        elif close.code == 1005:
            await target.close(None)  # type: ignore[arg-type]  # a close frame without a code
        elif close.code in EXTERNAL_CLOSE_CODES or 3000 <= close.code < 5000:
            await target.close(close.code, close.reason)
        else:
            await target.close(1011, _short(f"{side} closed with {close.code} {close.reason}"))

    async def _watch_idle(self) -> None:
        loop = asyncio.get_running_loop()
        idle_s = self.proxy.limits.idle_timeout_s
        self.last_activity = loop.time()
        while (remaining := self.last_activity + idle_s - loop.time()) > 0:
            await asyncio.sleep(remaining)
        self.closed_first = self.closed_first or "proxy"
        await self._close_both(1001, 1000, f"idle for {idle_s:g} s")

    async def _close_both(self, client_code: int, upstream_code: int, reason: str) -> None:
        closes = [self.client.close(client_code, reason)]
        if self.upstream is not None:
            closes.append(self.upstream.close(upstream_code, reason))
        await asyncio.gather(*closes, return_exceptions=True)

    # -- the session's own events ---------------------------------------------------------------

    def _opened(self) -> dict[str, Any]:
        request = self.client.request
        return {
            "type": SESSION_OPENED,
            "proxy_session_id": self.id,
            "tenant": self.tenant.name,
            "app": self.tenant.app,
            "region": self.tenant.region,
            "model": self.capture.context.model,
            "upstream_host": self.upstream_host,
            "query": dict(parse_qsl(scrub_query(urlsplit(request.path).query))),
            "headers": scrub_headers(dict(request.headers.raw_items())),
            "subprotocol": self.client.subprotocol,
            "client_address": _address(self.client),
        }

    def _finish(self) -> None:
        self.ended = time.monotonic()
        self.captures.put(self._capture_closed)  # after every frame of the session

    def _capture_closed(self) -> None:
        self.capture.event("client", SESSION_CLOSED, self._closed())
        self.capture.flush()
        self._log_closed()

    def _closed(self) -> dict[str, Any]:
        upstream = self.upstream
        return {
            "type": SESSION_CLOSED,
            "proxy_session_id": self.id,
            "closed_first": self.closed_first,
            "client_close": {
                "received": _describe(self.client.protocol.close_rcvd),
                "sent": _describe(self.client.protocol.close_sent),
            },
            "upstream_close": None
            if upstream is None
            else {
                "received": _describe(upstream.protocol.close_rcvd),
                "sent": _describe(upstream.protocol.close_sent),
            },
            "upstream_error": self.upstream_error,
            "frames": dict(self.frames),
            "bytes": dict(self.bytes),
            "publish_failures": self.proxy.publisher.delivery_failures,
            "spooled": self.spooled,
            "duration_s": round(self.ended - self.started, 6),
        }

    def _log_opened(self) -> None:
        fields = {
            "event": "session.opened",
            "session": self.id,
            "tenant": self.tenant.name,
            "model": self.capture.context.model,
            "upstream_host": self.upstream_host,
            "client": _address(self.client),
        }
        log.info(
            "session opened: %s tenant=%s model=%s upstream=%s",
            self.id,
            self.tenant.name,
            fields["model"],
            self.upstream_host,
            extra=fields,
        )

    def _log_closed(self) -> None:
        fields = {
            "event": "session.closed",
            "session": self.id,
            "realtime_session": self.capture.session_id,
            "tenant": self.tenant.name,
            "closed_first": self.closed_first,
            "frames_client": self.frames["client"],
            "frames_server": self.frames["server"],
            "spooled": self.spooled,
            "duration_s": round(self.ended - self.started, 3),
        }
        log.info(
            "session closed: %s closed first by %s after %.1f s, %d+%d frames",
            self.id,
            self.closed_first,
            fields["duration_s"],
            self.frames["client"],
            self.frames["server"],
            extra=fields,
        )


def _address(connection: ServerConnection) -> str | None:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else None


async def start_proxy(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    upstream_url: str | None = None,
) -> ProxyServer:
    """Start the proxy in this event loop; `await proxy.close()` stops it cleanly."""
    metrics = ProxyMetrics()
    # Opening the spool reads what an earlier run left: keep that off the event loop.
    publisher = await asyncio.to_thread(lambda: Publisher(settings, metrics).start())
    proxy = ProxyServer(settings, publisher, metrics, upstream_url)
    try:
        await proxy.listen(host, port)
    except BaseException:
        await asyncio.to_thread(publisher.close)
        raise
    return proxy
