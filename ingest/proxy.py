"""The capture proxy: relays Realtime WebSocket sessions to OpenAI and captures every frame."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import itertools
import json
import logging
import pickle
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import BINARY, DATA_OPCODES, EXTERNAL_CLOSE_CODES, TEXT, Close, Frame
from websockets.http11 import Request, Response
from websockets.protocol import Event, State

from voxledger.config import ProxySettings, Settings, Tenant
from voxledger.envelope import Direction
from voxledger.errors import ConfigError
from voxledger.ingest.capture import (
    CLOSE,
    FRAME_CLIENT,
    FRAME_SERVER,
    MESSAGE,
    OPEN,
    RECORD,
    SESSION_CLOSED,
    SESSION_OPENED,
    SessionContext,
    message,
)
from voxledger.ingest.metrics import ProxyMetrics
from voxledger.ingest.publisher import PublisherStatus
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
HELD_FRAMES_MAX = 16  # websockets' max_queue: frames held before the relay starts
CAPTURE_MAIN = "from voxledger.ingest.capture import serve_captures; serve_captures()"
CAPTURE_START_TIMEOUT_S = 60.0
CAPTURE_CLOSE_TIMEOUT_S = 60.0  # the producer's flush and the spool's close take up to ~25 s
CAPTURE_PIPE_BYTES = 1024 * 1024  # Linux's default limit for an unprivileged pipe
# Frames go down the pipe in batches: a write wakes the capture process, and per loop turn
# those writes were a tenth of the relay's CPU. Capture runs this much behind, at most.
CAPTURE_FLUSH_INTERVAL_S = 0.005
CAPTURE_FLUSH_BYTES = 256 * 1024  # a batch this large goes at once
# Frames the capture process has not taken yet, in memory: beyond this, new sessions wait.
CAPTURE_BACKLOG_MAX_BYTES = 256 * 1024 * 1024
# A capture process that died is started again after this (doubling while starts fail, up to
# the maximum): a crash loop must not eat the relay's CPU.
CAPTURE_RESTART_DELAY_S = 1.0
CAPTURE_RESTART_DELAY_MAX_S = 30.0
# Sessions in flight when capture dies are closed with this, so clients reconnect to a
# session that is captured in full (RFC 6455 1012: service restart).
CAPTURE_LOST_CLOSE = (1012, "capture restarted: reconnect")
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# asyncio reads sockets 256 KiB at a time: a buffer that size is mmap'd, shrunk and unmapped
# for every read, a sixth of the relay's CPU. Realtime frames are a few KiB; bigger ones
# just take a few reads.
SOCKET_READ_BYTES = 64 * 1024

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


def _read_in_small_chunks(connection: ServerConnection | ClientConnection) -> None:
    transport = connection.transport
    if hasattr(transport, "max_size"):  # asyncio's selector transports
        transport.max_size = SOCKET_READ_BYTES


class _Forwarding:
    """A websockets connection that hands data frames to its relay as soon as they are parsed.

    websockets queues each data frame for recv(), wakes the task awaiting it, and sends it
    from there through a context manager: an event-loop turn and a fifth of the relay's CPU
    per frame. Handed over here, a frame goes out before the next socket is read. Control
    frames (close, ping, pong) still go websockets' way, and so do its limits (max_size).
    """

    relay: _Relay | None = None
    held: list[Frame] | None = None  # data frames that came before the relay started
    on_writable: Callable[[], None] | None = None

    def process_event(self, event: Event) -> None:
        if isinstance(event, Frame) and event.opcode in DATA_OPCODES:
            if self.relay is not None:
                self.relay.forward(event)
            else:
                self._hold(event)
        else:
            super().process_event(event)  # type: ignore[misc]

    def resume_writing(self) -> None:
        super().resume_writing()  # type: ignore[misc]
        if self.on_writable is not None:
            self.on_writable()

    def _hold(self, frame: Frame) -> None:
        # A client may speak before the upstream connection is open; websockets would queue
        # its frames for recv() and stop reading at max_queue: so do we.
        if self.held is None:
            self.held = []
        self.held.append(frame)
        if len(self.held) >= HELD_FRAMES_MAX:
            self.transport.pause_reading()  # type: ignore[attr-defined]

    def start_relay(self, relay: _Relay) -> None:
        """Forward every held frame, then each one as it comes."""
        held, self.held = self.held or [], None
        for frame in held:
            relay.forward(frame)
        self.relay = relay
        self.transport.resume_reading()  # type: ignore[attr-defined]

    def drop_held(self) -> None:
        """No relay will start: read on, so that a closing handshake can complete."""
        self.held = None
        self.transport.resume_reading()  # type: ignore[attr-defined]


class _ForwardingServerConnection(_Forwarding, ServerConnection):
    pass


class _ForwardingClientConnection(_Forwarding, ClientConnection):
    pass


class _Relay:
    """One direction of a session: forwards each data frame, then hands it to capture."""

    def __init__(
        self,
        session: RelayedSession,
        source: _ForwardingServerConnection | _ForwardingClientConnection,
        target: _ForwardingServerConnection | _ForwardingClientConnection,
        direction: Direction,
    ) -> None:
        self.session = session
        self.source = source
        self.target = target
        self.direction = direction
        self.kind = FRAME_CLIENT if direction == "client" else FRAME_SERVER
        self.capture = session.captures.frame
        self.relayed = session.proxy.metrics.relayed
        self.clock = asyncio.get_running_loop().time
        self.fragments: list[bytes] = []
        target.on_writable = self._resume_reading

    def forward(self, frame: Frame) -> None:
        target = self.target
        protocol = target.protocol
        if protocol.state is not State.OPEN:
            return  # the target is closing; its close reaches the source, like send() would
        try:
            if frame.opcode is TEXT:
                protocol.send_text(frame.data, frame.fin)
            elif frame.opcode is BINARY:
                protocol.send_binary(frame.data, frame.fin)
            else:
                protocol.send_continuation(frame.data, frame.fin)
        except Exception as exc:  # what send() does when writing fails: drop the connection
            self._drop(target, exc)
            return
        # Out first, captured right after: capture never delays a frame. The capture pipe is
        # written once per loop turn, so a kill -9 of the proxy can lose the frames of the
        # turn it interrupts (and whatever capture had not yet taken: see the README).
        self._send(target)
        if not frame.fin:
            self.fragments.append(frame.data)
        elif self.fragments:
            self._captured(b"".join([*self.fragments, frame.data]))
            self.fragments.clear()
        else:
            self._captured(frame.data)

    def _send(self, target: _ForwardingServerConnection | _ForwardingClientConnection) -> None:
        try:
            target.send_data()
        except Exception as exc:
            self._drop(target, exc)
            return
        if target.paused:  # its write buffer is full: stop reading until it drains
            self.source.transport.pause_reading()

    @staticmethod
    def _drop(
        target: _ForwardingServerConnection | _ForwardingClientConnection, exc: Exception
    ) -> None:
        # What send() does when writing fails: drop the connection.
        target.set_connection_exc(exc)
        target.transport.abort()

    def _captured(self, message: bytes) -> None:
        # The message as a whole, as recv() would have returned it.
        session, direction, size = self.session, self.direction, len(message)
        session.last_activity = self.clock()
        session.frames[direction] += 1
        session.bytes[direction] += size
        self.relayed.frames[direction] += 1
        self.relayed.bytes[direction] += size
        self.capture(session.number, self.kind, message, time.time_ns())
        if session.realtime_id is None and direction == "server":
            session.learn_realtime_id(message)

    def _resume_reading(self) -> None:
        if not self.source.transport.is_closing():
            self.source.transport.resume_reading()


class CaptureProcess:
    """The process that captures what the relays forward: envelopes, Kafka, spool.

    A relayed frame costs the relay a timestamp and a copy into a buffer that goes down a
    pipe every few milliseconds. Parsing, scrubbing, audio elision, envelope building and
    the Kafka producer run in the capture process (voxledger.ingest.capture.serve_captures),
    so neither their CPU, their GC pauses nor the GIL delay a frame. It reports publisher
    state, publisher metrics, log records and each session's end back here.
    """

    def __init__(
        self, process: asyncio.subprocess.Process, settings: Settings, metrics: ProxyMetrics
    ) -> None:
        self.process = process
        self.metrics = metrics
        self.publisher = PublisherStatus(settings)
        self._stdin = process.stdin
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._flush_scheduled = False
        self._closing = False
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._on_closed: dict[int, Callable[[dict[str, Any]], None]] = {}
        # Closes handed over but not yet reported back: if the process dies, a new one
        # publishes them (see ProxyServer._restart_capture).
        self.unconfirmed: dict[int, tuple[dict[str, Any], dict[str, Any], Callable]] = {}
        self.on_exit: Callable[[CaptureProcess], None] | None = None
        self._reader = asyncio.create_task(self._read_reports())
        metrics.capture_backlog.set_function(lambda: self.backlog_bytes)

    @classmethod
    async def start(cls, settings: Settings, metrics: ProxyMetrics) -> CaptureProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CAPTURE_MAIN,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        captures = cls(process, settings, metrics)
        pipe = process.stdin.transport.get_extra_info("pipe")
        with contextlib.suppress(OSError):  # a bigger pipe means fewer writes; not required
            fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, CAPTURE_PIPE_BYTES)
        init = {"settings": settings, "log_level": logging.getLogger().getEffectiveLevel()}
        process.stdin.write(message("init", init))
        try:
            await asyncio.wait_for(asyncio.shield(captures._ready), CAPTURE_START_TIMEOUT_S)
        except BaseException:
            await captures.close()
            raise
        return captures

    @property
    def backlog_bytes(self) -> int:
        transport = self._stdin.transport
        pending = 0 if transport.is_closing() else transport.get_write_buffer_size()
        return len(self._buffer) + pending

    @property
    def accepting_sessions(self) -> bool:
        return self.publisher.accepting_sessions and self.backlog_bytes < CAPTURE_BACKLOG_MAX_BYTES

    # -- what the relays call (never blocks, never awaits) ----------------------------------

    def open(self, number: int, context: SessionContext, fallback_id: str, event: dict) -> None:
        body = {
            "context": dataclasses.asdict(context),
            "fallback_session_id": fallback_id,
            "event": event,
        }
        self._put(OPEN, number, time.time_ns(), pickle.dumps(body, pickle.HIGHEST_PROTOCOL))

    def frame(self, number: int, kind: int, data: str | bytes, observed_ns: int) -> None:
        self._put(kind, number, observed_ns, data.encode() if type(data) is str else data)

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and not self._reader.done()

    def close_session(
        self,
        number: int,
        event: dict[str, Any],
        on_captured: Callable[[dict[str, Any]], None],
        resume: dict[str, Any] | None = None,
    ) -> None:
        """Capture the session's last event; `on_captured` gets its session id and spool count.

        `resume` (the session's context, ids and next seq) lets another capture process
        publish the event if this one dies first.
        """
        if not self.alive:
            on_captured({"session_id": None, "spooled": None})
            return
        self._on_closed[number] = on_captured
        if resume is not None:
            self.unconfirmed[number] = (event, resume, on_captured)
        self._put(CLOSE, number, time.time_ns(), pickle.dumps(event, pickle.HIGHEST_PROTOCOL))

    def resume_and_close(
        self,
        number: int,
        resume: dict[str, Any],
        event: dict[str, Any],
        on_captured: Callable[[dict[str, Any]], None],
    ) -> None:
        """The end of a session another (dead) capture process had: its closed marker only."""
        body = {
            "context": resume["context"],
            "fallback_session_id": resume["fallback_session_id"],
            "event": None,
            "resume": {"session_id": resume["session_id"], "next_seq": resume["next_seq"]},
        }
        self._put(OPEN, number, time.time_ns(), pickle.dumps(body, pickle.HIGHEST_PROTOCOL))
        self.close_session(number, event, on_captured, resume)

    def _put(self, kind: int, number: int, observed_ns: int, data: bytes) -> None:
        buffer = self._buffer
        buffer += RECORD.pack(kind, number, observed_ns, len(data))
        buffer += data
        if len(buffer) >= CAPTURE_FLUSH_BYTES:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_later(CAPTURE_FLUSH_INTERVAL_S, self._flush)

    def _flush(self) -> None:
        # The transport keeps what the pipe cannot take yet.
        self._flush_scheduled = False
        data, self._buffer = self._buffer, bytearray()
        if data and not self._stdin.transport.is_closing():  # closing: the process is gone
            self._stdin.write(data)

    # -- reports from the capture process ---------------------------------------------------

    async def _read_reports(self) -> None:
        reader = self.process.stdout
        try:
            while True:
                (length,) = MESSAGE.unpack(await reader.readexactly(MESSAGE.size))
                kind, value = pickle.loads(await reader.readexactly(length))
                self._on_report(kind, value)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the process ended
        finally:
            dying = not self._closing
            for number, on_captured in self._on_closed.items():
                if not (dying and number in self.unconfirmed):  # else: the next process's
                    on_captured({"session_id": None, "spooled": None})
            self._on_closed.clear()
            if dying:
                self.publisher.unavailable = "the capture process exited"
                log.error(
                    "the capture process exited (code %s): relayed frames are no longer "
                    "captured; refusing new sessions until it is restarted",
                    self.process.returncode,
                )
                if self.on_exit is not None and self._ready.done():
                    self.on_exit(self)
            if not self._ready.done():
                self._ready.set_exception(
                    RuntimeError("the capture process did not start; its error is logged above")
                )

    def _on_report(self, kind: str, value: Any) -> None:
        if kind == "closed":
            number, info = value
            self.unconfirmed.pop(number, None)
            on_captured = self._on_closed.pop(number, None)
            if on_captured is not None:
                on_captured(info)
        elif kind == "log":
            record = logging.makeLogRecord(value)
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)
        else:  # ready, status, bye: the publisher's state and metrics
            status, rendered = value
            self.publisher.update(status)
            self.metrics.publishing = rendered
            if kind == "ready" and not self._ready.done():
                self._ready.set_result(None)

    async def close(self) -> None:
        """Capture everything handed over, let the process flush Kafka and the spool, stop."""
        self._closing = True
        self._flush()
        self._stdin.close()  # end of input: the process finishes and exits
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), CAPTURE_CLOSE_TIMEOUT_S)
            await asyncio.wait_for(self.process.wait(), CAPTURE_CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.error("the capture process did not finish in time; killing it")
            self.process.kill()
            await self.process.wait()
        finally:
            if self._ready.done() and not self._ready.cancelled():
                self._ready.exception()  # retrieved: a failed start was raised already


class StartBucket:
    """A tenant's allowance of new sessions: `per_minute` at once, refilled evenly."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.tokens = float(per_minute)
        self.refill_per_s = per_minute / 60.0
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.refill_per_s)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class ProxyServer:
    """A running proxy: WebSocket sessions at /v1/realtime, plus /metrics and /healthz over HTTP."""

    def __init__(
        self,
        settings: Settings,
        captures: CaptureProcess,
        metrics: ProxyMetrics,
        upstream_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.limits: ProxySettings = settings.proxy
        self.captures = captures
        captures.on_exit = self._capture_exited
        self.metrics = metrics
        self.upstream_url = upstream_url
        self.host = "127.0.0.1"
        self.port = 0
        self.sessions: set[RelayedSession] = set()
        self._open_by_tenant: Counter[str] = Counter()
        per_minute = self.limits.session_starts_per_minute
        self._starts: defaultdict[str, StartBucket] = defaultdict(lambda: StartBucket(per_minute))
        self._server: Server | None = None
        self._closing = False
        self._numbers = itertools.count()  # names each session to the capture process
        self._restarting: asyncio.Task[None] | None = None
        # Session ends waiting for a live capture process (see _restart_capture).
        self._orphans: list[Callable[[CaptureProcess], None]] = []

    @property
    def publisher(self) -> PublisherStatus:
        return self.captures.publisher

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
            create_connection=_ForwardingServerConnection,
        )
        self.host = host
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Close every session (1001, both sides), then flush the producer and the spool."""
        self._closing = True
        if self._server is not None:
            self._server.close(code=1001, reason="proxy shutting down")
            await self._server.wait_closed()
        if self._restarting is not None:
            self._restarting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restarting
        await self.captures.close()

    # -- supervision of the capture process -----------------------------------------------------

    def _capture_exited(self, dead: CaptureProcess) -> None:
        if not self._closing and self._restarting is None:
            self._restarting = asyncio.create_task(self._restart_capture(dead))

    async def _restart_capture(self, dead: CaptureProcess) -> None:
        """Close the sessions whose capture died, start a new capture process, and have it
        publish the closed marker of every session the dead one had not finished.

        What the dead process held in memory (frames read but not yet published, the
        producer's queue, spool records not yet fsync'd) is lost: each such session's marker
        counts every frame relayed, so `voxledger reconcile` names the missing seqs.
        """
        in_flight = [s for s in self.sessions if s.captures is dead]
        code, reason = CAPTURE_LOST_CLOSE
        log.error(
            "capture process died: closing %d session(s) in flight with %d (%s); "
            "their frames from here on are not captured; restarting capture",
            len(in_flight),
            code,
            reason,
            extra={"event": "capture.died", "sessions": len(in_flight)},
        )
        for session in in_flight:
            session.capture_lost()
        for number, (event, resume, on_captured) in list(dead.unconfirmed.items()):
            self._orphans.append(
                lambda live, n=number, r=resume, e=event, c=on_captured: live.resume_and_close(
                    n, r, _marked_lost(e), c
                )
            )
        dead.unconfirmed.clear()
        delay = CAPTURE_RESTART_DELAY_S
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                live = await CaptureProcess.start(self.settings, self.metrics)
                break
            except Exception:
                log.exception("restarting the capture process failed; retrying in %.0f s", delay)
                delay = min(delay * 2, CAPTURE_RESTART_DELAY_MAX_S)
        else:
            return
        live.on_exit = self._capture_exited
        self.captures = live
        self.metrics.capture_restarts.inc()
        orphans, self._orphans = self._orphans, []
        for finish in orphans:
            finish(live)
        log.warning(
            "capture process restarted; accepting sessions again (%d session end(s) handed over)",
            len(orphans),
            extra={"event": "capture.restarted", "orphans": len(orphans)},
        )
        self._restarting = None
        with contextlib.suppress(ProcessLookupError):
            await dead.close()  # reaps it

    def finish_orphan(self, finish: Callable[[CaptureProcess], None]) -> None:
        """Run `finish` with a live capture process: now, or once the restart is done."""
        if self.captures.alive:
            finish(self.captures)
        else:
            self._orphans.append(finish)

    # -- plain HTTP: metrics, health, wrong paths -----------------------------------------------

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/metrics":
            return self._respond(connection, 200, self.metrics.render(), self.metrics.content_type)
        if path == "/healthz":
            ok = self.captures.accepting_sessions and not self._closing
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
        if not self.captures.accepting_sessions:
            if self.publisher.unavailable is not None:
                reason = "try again later: capture is restarting"
                return await self._reject(client, 1013, reason, "capture_down", tenant)
            reason = "try again later: the capture spool is full"
            return await self._reject(client, 1013, reason, "spool_full", tenant)
        if self._open_by_tenant[tenant.name] >= self.limits.max_sessions_per_tenant:
            reason = f"try again later: {self.limits.max_sessions_per_tenant} sessions already open"
            return await self._reject(client, 1013, reason, "tenant_limit", tenant)
        if not self._starts[tenant.name].take():
            rate = self.limits.session_starts_per_minute
            reason = f"try again later: more than {rate} new sessions a minute"
            return await self._reject(client, 1013, reason, "tenant_rate", tenant)
        _read_in_small_chunks(client)
        session = RelayedSession(self, client, tenant, key, next(self._numbers) % 2**32)
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
        client.drop_held()
        await client.close(code, reason)


class RelayedSession:
    """One client connection, its upstream connection, and the capture of both directions."""

    def __init__(
        self, proxy: ProxyServer, client: ServerConnection, tenant: Tenant, key: str, number: int
    ) -> None:
        self.proxy = proxy
        self.captures = proxy.captures
        self.number = number
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
        self.context = SessionContext(
            source="proxy",
            tenant=tenant.name,
            app=tenant.app,
            region=tenant.region,
            upstream_host=self.upstream_host,
            model=dict(self.query).get("model"),
        )
        self.frames: dict[Direction, int] = {"client": 0, "server": 0}
        self.bytes: dict[Direction, int] = {"client": 0, "server": 0}
        self.closed_first: str | None = None
        self.upstream_error: str | None = None
        self.realtime_id: str | None = None  # the upstream session.created id, once seen
        self.lost_capture = False
        self.started = self.ended = time.monotonic()
        self.last_activity = self.started

    async def run(self) -> None:
        self.captures.open(self.number, self.context, self.id, self._opened())
        self._log_opened()
        try:
            try:
                self.upstream = await self._connect_upstream()
            except UpstreamError as exc:
                self.closed_first, self.upstream_error = "proxy", str(exc)
                log.error("session %s: %s", self.id, exc, extra={"session": self.id})
                self.client.drop_held()
                await self.client.close(1011, _short(str(exc)))
                return
            _read_in_small_chunks(self.upstream)
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
                create_connection=_ForwardingClientConnection,
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
        client = self.client
        client.start_relay(_Relay(self, client, upstream, "client"))
        upstream.start_relay(_Relay(self, upstream, client, "server"))
        closes = [
            asyncio.create_task(self._when_closed(client, upstream)),
            asyncio.create_task(self._when_closed(upstream, client)),
        ]
        watchdog = asyncio.create_task(self._watch_idle())
        try:
            await asyncio.gather(*closes)
        except Exception:
            log.exception("session %s: relay failed", self.id, extra={"session": self.id})
            self.closed_first = self.closed_first or "proxy"
            await self._close_both(1011, 1011, "proxy internal error")
        finally:
            watchdog.cancel()
            for task in closes:
                task.cancel()
            for connection in (client, upstream):  # no cycle through the session to collect
                connection.relay = connection.on_writable = None

    async def _when_closed(
        self,
        source: ServerConnection | ClientConnection,
        target: ServerConnection | ClientConnection,
    ) -> None:
        """Frames go over in _Relay.forward as they arrive; here, the close follows them."""
        await source.wait_closed()
        # Reading from the target may have paused for the source's sake: the closing
        # handshake needs it.
        target.transport.resume_reading()
        await self._propagate_close(source, target, source.close_exc)

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
            "model": self.context.model,
            "upstream_host": self.upstream_host,
            "query": dict(parse_qsl(scrub_query(urlsplit(request.path).query))),
            "headers": scrub_headers(dict(request.headers.raw_items())),
            "subprotocol": self.client.subprotocol,
            "client_address": _address(self.client),
        }

    def _finish(self) -> None:
        self.ended = time.monotonic()
        # After every frame of the session; logged once its envelope is published.
        event, resume = self._closed(), self._resume()
        if self.captures.alive and not self.lost_capture:
            self.captures.close_session(self.number, event, self._log_closed, resume)
            return
        self.proxy.finish_orphan(
            lambda live: live.resume_and_close(
                self.number, resume, _marked_lost(event), self._log_closed
            )
        )

    def capture_lost(self) -> None:
        """Its capture process died: close both sides so the client reconnects."""
        self.lost_capture = True
        self.closed_first = self.closed_first or "proxy"
        code, reason = CAPTURE_LOST_CLOSE
        asyncio.get_running_loop().create_task(self._close_both(code, 1001, reason))

    def learn_realtime_id(self, message: bytes | str) -> None:
        """The id capture stamps envelopes with (see SessionCapture), so that another capture
        process can publish this session's end under it."""
        head = message[:200]
        head = head.encode() if isinstance(head, str) else bytes(head)
        if b"session.created" not in head:
            return
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            event = json.loads(message)
            if event.get("type") == "session.created":
                session = event.get("session")
                found = session.get("id") if isinstance(session, dict) else None
                self.realtime_id = str(found or self.id)

    def _resume(self) -> dict[str, Any]:
        return {
            "context": dataclasses.asdict(self.context),
            "fallback_session_id": self.id,
            "session_id": self.realtime_id or self.id,
            # seq 0 is the opened marker; every relayed frame took the next one.
            "next_seq": 1 + self.frames["client"] + self.frames["server"],
        }

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
            "publish_failures": None,  # the capture process fills in these two
            "spooled": None,
            "duration_s": round(self.ended - self.started, 6),
        }

    def _log_opened(self) -> None:
        fields = {
            "event": "session.opened",
            "session": self.id,
            "tenant": self.tenant.name,
            "model": self.context.model,
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

    def _log_closed(self, captured: dict[str, Any]) -> None:
        fields = {
            "event": "session.closed",
            "session": self.id,
            "realtime_session": captured["session_id"],
            "tenant": self.tenant.name,
            "closed_first": self.closed_first,
            "frames_client": self.frames["client"],
            "frames_server": self.frames["server"],
            "spooled": captured["spooled"],
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


def _marked_lost(event: dict[str, Any]) -> dict[str, Any]:
    """The closed marker of a session whose capture process died: flagged, keys in order."""
    out = {k: v for k, v in event.items() if k not in ("publish_failures", "spooled")}
    out["capture_lost"] = True
    return {**out, "publish_failures": event.get("publish_failures"), "spooled": None}


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
    captures = await CaptureProcess.start(settings, metrics)
    proxy = ProxyServer(settings, captures, metrics, upstream_url)
    try:
        await proxy.listen(host, port)
    except BaseException:
        await captures.close()
        raise
    return proxy
