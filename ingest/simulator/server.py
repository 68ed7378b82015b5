"""The simulator's WebSocket front: `/v1/realtime` handshakes, the call registry, start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from voxledger.ingest.simulator.dialect import BETA, GA
from voxledger.ingest.simulator.exceptions import ScenarioError, SimulatorError
from voxledger.ingest.simulator.scenarios import Scenario, is_beta_model, load_scenario
from voxledger.ingest.simulator.session import RealtimeSession

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-realtime"
REALTIME_PATH = "/v1/realtime"
MAX_FRAME_BYTES = 16 * 1024 * 1024  # OpenAI accepts client events up to 15 MiB


class Outbox:
    """Frames for one socket, written in emit order by a single writer task."""

    def __init__(self, websocket: ServerConnection) -> None:
        self._websocket = websocket
        self._frames: asyncio.Queue[str] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write())

    def __call__(self, frame: str) -> None:
        self._frames.put_nowait(frame)

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self._websocket.send(await self._frames.get())

    async def close(self) -> None:
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer


def _query(path: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlsplit(path).query).items()}


def _wants_beta(headers: Headers) -> bool:
    return "realtime=v1" in headers.get("OpenAI-Beta", "")


def _pick_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """Browsers offer `realtime` plus `openai-insecure-api-key.*`; keys are never checked here."""
    return Subprotocol("realtime") if "realtime" in offered else None


class SimulatorServer:
    """A running simulator; `url` is what to pass as the SDK's `websocket_base_url`."""

    def __init__(self, host: str, *, fast: bool, scenarios: Iterable[Scenario] = ()) -> None:
        self.host = host
        self.port = 0
        self.fast = fast
        self._extra = {scenario.name: scenario for scenario in scenarios}
        self._calls: dict[str, RealtimeSession] = {}
        self._server: Server | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1"

    @property
    def call_ids(self) -> frozenset[str]:
        """Calls (sessions opened with `call_id`) that still have a socket attached."""
        return frozenset(self._calls)

    async def listen(self, port: int) -> None:
        try:
            self._server = await serve(
                self._handle,
                self.host,
                port,
                process_request=self._check_request,
                select_subprotocol=_pick_subprotocol,
                max_size=MAX_FRAME_BYTES,
            )
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise SimulatorError(f"cannot listen on {self.host}:{port}: {reason}") from None
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    def scenario(self, name: str | None) -> Scenario | None:
        """A scenario registered with this server, else a shipped one; None: generic replies."""
        if not name:
            return None
        return self._extra.get(name) or load_scenario(name)

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path.rstrip("/") != REALTIME_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        try:
            self.scenario(_query(request.path).get("scenario"))
        except ScenarioError as exc:
            return connection.respond(HTTPStatus.BAD_REQUEST, f"{exc}\n")
        return None

    async def _handle(self, websocket: ServerConnection) -> None:
        assert websocket.request is not None
        query = _query(websocket.request.path)
        session, fresh = self._session_for(query, websocket.request.headers)
        outbox = Outbox(websocket)
        session.attach(outbox)
        if fresh:
            session.start()
        try:
            async for frame in websocket:
                session.receive(frame, outbox)
        except ConnectionClosed:
            pass
        finally:
            if session.detach(outbox):
                session.close()
                self._calls.pop(session.call_id or "", None)
            await outbox.close()

    def _session_for(self, query: dict[str, str], headers: Headers) -> tuple[RealtimeSession, bool]:
        """A new session, or the existing call a sideband socket asks to join by `call_id`."""
        call_id = query.get("call_id")
        if call_id and call_id in self._calls:
            return self._calls[call_id], False
        model = query.get("model") or DEFAULT_MODEL
        beta = is_beta_model(model) or _wants_beta(headers)
        session = RealtimeSession(
            model=model,
            dialect=BETA if beta else GA,
            scenario=self.scenario(query.get("scenario")),
            fast=self.fast,
            call_id=call_id,
        )
        if call_id:
            self._calls[call_id] = session
        return session, True


async def start_simulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    fast: bool = False,
    scenarios: Iterable[Scenario] = (),
) -> SimulatorServer:
    """Start serving; `scenarios` adds unshipped ones (e.g. test variants) by name."""
    server = SimulatorServer(host, fast=fast, scenarios=scenarios)
    await server.listen(port)
    return server


def run_simulator(
    host: str = "127.0.0.1",
    port: int = 8765,
    fast: bool = False,
    *,
    on_ready: Callable[[SimulatorServer], None] | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C); `on_ready` runs once the port is bound."""

    async def serve_forever() -> None:
        server = await start_simulator(host, port, fast=fast)
        if on_ready:
            on_ready(server)
        try:
            await asyncio.Future()
        finally:
            await server.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever())
