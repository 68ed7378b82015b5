"""The capture proxy end to end: real sockets, a real broker, a scripted upstream and the SDK."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import voxledger.broker
from voxledger.broker import start_broker, stop_broker
from voxledger.config import ProxySettings, Settings
from voxledger.envelope import envelope_schema
from voxledger.ingest.capture import SESSION_CLOSED, SESSION_OPENED
from voxledger.ingest.proxy import ProxyServer, start_proxy
from voxledger.ingest.proxy_cli import JsonLogFormatter, command
from voxledger.ingest.scrub import SECRET
from voxledger.kafka import client_config

CLIENT_KEY = "vx-demo-us"  # tenant acme-us in examples/voxledger.toml
UPSTREAM_KEY = "sk-upstream-real-key"
DEADLINE_S = 30.0


# -- a scripted Realtime upstream ---------------------------------------------------------------


class ScriptedUpstream:
    """Speaks just enough Realtime: session.created first, scripted replies, echoes the rest."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.received: list[str | bytes] = []
        self.closes: list[tuple[Any, Any]] = []  # (close received, close sent) per connection
        self.closed = asyncio.Event()
        self.url = ""

    async def __aenter__(self) -> ScriptedUpstream:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        self.requests.append(ws.request)
        session = {"id": f"sess_{uuid.uuid4().hex[:12]}", "object": "realtime.session"}
        await ws.send(event("session.created", session={**session, "model": "gpt-realtime"}))
        try:
            async for message in ws:
                self.received.append(message)
                await self._reply(ws, message, session)
        except ConnectionClosed:
            pass
        self.closes.append((ws.protocol.close_rcvd, ws.protocol.close_sent))
        self.closed.set()

    async def _reply(self, ws: ServerConnection, message: str | bytes, session: dict) -> None:
        try:
            data = json.loads(message)
        except ValueError:
            data = None
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "test.close":
            await ws.close(data["code"], data["reason"])
        elif kind == "session.update":
            await ws.send(event("session.updated", session={**session, **data["session"]}))
        elif kind == "response.create":
            response = {"id": "resp_1", "object": "realtime.response", "status": "completed"}
            await ws.send(event("response.created", response={**response, "status": "in_progress"}))
            await ws.send(
                event(
                    "response.output_text.delta",
                    response_id="resp_1",
                    item_id="item_1",
                    output_index=0,
                    content_index=0,
                    delta="Hello!",
                )
            )
            await ws.send(event("response.done", response=response))
        else:
            await ws.send(message)  # echo, text as text and binary as binary


def event(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, "event_id": f"evt_{uuid.uuid4().hex[:8]}", **fields})


# -- helpers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(scenario: Awaitable[Any]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(scenario, DEADLINE_S * 2)

    return asyncio.run(bounded())


async def until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Wait for a condition to hold, checking often, failing after a bounded deadline."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def read_raw(
    settings: Settings, count: int | None = None, deadline_s: float = DEADLINE_S
) -> list[dict]:
    """Envelopes from the raw topic in offset order, until `count` (or a session.closed)."""
    topic = settings.topics.raw.name
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "enable.auto.commit": False,
            },
        )
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out: list[dict] = []
    deadline = time.monotonic() + deadline_s
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                out.append(json.loads(message.value()))
                if len(out) == count or (count is None and out[-1]["type"] == SESSION_CLOSED):
                    break
    finally:
        consumer.close()
    return out


def check_session(envelopes: list[dict]) -> list[dict]:
    """One session's envelopes: schema-valid, unique, seq gap-free and in order, opened..closed."""
    validator = jsonschema.Draft202012Validator(envelope_schema())
    for envelope in envelopes:
        validator.validate(envelope)
    assert len({e["envelope_id"] for e in envelopes}) == len(envelopes)
    assert [e["seq"] for e in envelopes] == list(range(len(envelopes)))
    assert len({e["session_id"] for e in envelopes}) == 1
    assert envelopes[0]["type"] == SESSION_OPENED
    assert envelopes[-1]["type"] == SESSION_CLOSED
    return envelopes


@pytest.fixture
def settings(pipeline_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("OPENAI_API_KEY", UPSTREAM_KEY)  # acme-us reads its real key from here
    return pipeline_settings


def with_limits(settings: Settings, **limits: Any) -> Settings:
    return settings.model_copy(update={"proxy": ProxySettings(**limits)})


def bearer(key: str = CLIENT_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def start(settings: Settings, upstream: ScriptedUpstream) -> ProxyServer:
    return await start_proxy(settings, upstream_url=upstream.url)


# -- relay fidelity and the captured envelopes --------------------------------------------------


def test_frames_relay_both_ways_and_each_is_captured_once(settings: Settings) -> None:
    sent: list[str | bytes] = [
        event("conversation.item.create", item={"type": "message", "role": "user"}),
        event("input_audio_buffer.append", audio="AAAAAAAA"),
        b"\x00\x01\xfe\xff",  # binary, not UTF-8
        b'{"type": "response.cancel"}',  # binary JSON
        "not json at all",
    ]

    async def scenario() -> dict:
        async with ScriptedUpstream() as upstream:
            proxy = await start(settings, upstream)
            try:
                url = f"{proxy.url}/realtime?model=gpt-realtime"
                async with connect(url, additional_headers=bearer()) as ws:
                    created = json.loads(await ws.recv())
                    assert created["type"] == "session.created"
                    for frame in sent:
                        await ws.send(frame)
                        assert await ws.recv() == frame  # same bytes, same frame type
                    await ws.close(4000, "client bye")
                await asyncio.wait_for(upstream.closed.wait(), DEADLINE_S)
            finally:
                await proxy.close()
            assert upstream.received == sent
            received, _ = upstream.closes[0]
            assert (received.code, received.reason) == (4000, "client bye")
            return created

    created = run(scenario())
    envelopes = check_session(read_raw(settings, 2 + 1 + 2 * len(sent)))
    assert len(envelopes) == 2 + 1 + 2 * len(sent)
    assert {e["session_id"] for e in envelopes} == {created["session"]["id"]}
    relayed = envelopes[1:-1]
    assert relayed[0]["type"] == "session.created" and relayed[0]["direction"] == "server"
    assert [e["direction"] for e in relayed[1:]] == ["client", "server"] * len(sent)
    for e in envelopes:
        assert (e["tenant"], e["app"], e["region"], e["source"]) == (
            "acme-us",
            "support-bot",
            "us",
            "proxy",
        )
        assert e["model"] == "gpt-realtime"
        assert e["upstream_host"].startswith("127.0.0.1:")
    client_side = [e for e in relayed if e["direction"] == "client"]
    assert client_side[1]["payload"]["audio"]["bytes"] == 6  # audio elided to its summary
    assert "raw_b64" in client_side[2]["payload"]
    assert client_side[3]["type"] == "response.cancel"
    assert client_side[4]["payload"]["raw_text"] == "not json at all"

    closed = envelopes[-1]["payload"]
    assert closed["closed_first"] == "client"
    assert closed["client_close"]["received"] == {"code": 4000, "reason": "client bye"}
    assert closed["upstream_close"]["sent"] == {"code": 4000, "reason": "client bye"}
    assert closed["frames"] == {"client": len(sent), "server": len(sent) + 1}
    assert closed["bytes"]["client"] == sum(len(f) for f in sent)
    assert closed["spooled"] == 0
    opened = envelopes[0]["payload"]
    assert opened["tenant"] == "acme-us" and opened["model"] == "gpt-realtime"
    assert opened["proxy_session_id"].startswith("vxp_")


def test_upstream_close_code_and_reason_reach_the_client(settings: Settings) -> None:
    async def scenario() -> tuple[Any, dict]:
        async with ScriptedUpstream() as upstream:
            proxy = await start(settings, upstream)
            try:
                url = f"{proxy.url}/realtime?model=gpt-realtime"
                async with connect(url, additional_headers=bearer()) as ws:
                    await ws.recv()
                    await ws.send(json.dumps({"type": "test.close", "code": 4001, "reason": "bye"}))
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.recv()
                await until(lambda: not proxy.sessions, "the session to end")
            finally:
                await proxy.close()
            return closed.value.rcvd, upstream.requests[0]

    received, request = run(scenario())
    assert (received.code, received.reason) == (4001, "bye")
    assert request.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    envelopes = check_session(read_raw(settings))
    closed = envelopes[-1]["payload"]
    assert closed["closed_first"] == "upstream"
    assert closed["upstream_close"]["received"] == {"code": 4001, "reason": "bye"}
    assert closed["client_close"]["sent"] == {"code": 4001, "reason": "bye"}


# -- authentication and secrets -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "reason"),
    [(bearer("vx-not-a-tenant"), "unknown API key"), ({}, "missing API key")],
)
def test_unknown_or_missing_key_is_refused_with_1008(
    settings: Settings, headers: dict, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> tuple[Any, ProxyServer, ScriptedUpstream]:
        async with ScriptedUpstream() as upstream:
            proxy = await start(settings, upstream)
            try:
                url = f"{proxy.url}/realtime?model=gpt-realtime"
                async with connect(url, additional_headers=headers) as ws:
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.recv()
            finally:
                await proxy.close()
            return closed.value.rcvd, proxy, upstream

    received, proxy, upstream = run(scenario())
    assert (received.code, received.reason) == (1008, reason)
    assert upstream.requests == []
    assert proxy.publisher.published == 0 and proxy.publisher.spool.depth == 0
    assert "session rejected" in caplog.text
    assert "vx-not-a-tenant" not in caplog.text


def test_secrets_are_masked_in_every_envelope_and_log_but_reach_upstream(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [CLIENT_KEY, UPSTREAM_KEY, "sk-query-secret", "mcp-token-secret", "mcp-hdr-secret"]
    update = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "tools": [
                {
                    "type": "mcp",
                    "server_label": "crm",
                    "server_url": "https://crm.example/mcp",
                    "authorization": "mcp-token-secret",
                    "headers": {"X-Api-Key": "mcp-hdr-secret"},
                }
            ],
        },
    }

    async def scenario() -> ScriptedUpstream:
        async with ScriptedUpstream() as upstream:
            proxy = await start(settings, upstream)
            try:
                url = f"{proxy.url}/realtime?model=gpt-realtime&api_key=sk-query-secret"
                headers = {**bearer(), "OpenAI-Beta": "realtime=v1", "OpenAI-Project": "proj_1"}
                async with connect(url, additional_headers=headers) as ws:
                    await ws.recv()
                    await ws.send(json.dumps(update))
                    assert json.loads(await ws.recv())["type"] == "session.updated"
                await until(lambda: not proxy.sessions, "the session to end")
            finally:
                await proxy.close()
            return upstream

    upstream = run(scenario())
    request = upstream.requests[0]
    assert request.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert request.headers["OpenAI-Beta"] == "realtime=v1"
    assert request.headers["OpenAI-Project"] == "proj_1"
    assert "api_key=sk-query-secret" in request.path  # not the client's key: passed on
    assert CLIENT_KEY not in request.path and CLIENT_KEY not in str(request.headers)
    assert json.loads(upstream.received[0]) == update  # the upstream gets the MCP credentials

    envelopes = check_session(read_raw(settings))
    raw = json.dumps(envelopes)
    for secret in secrets:
        assert secret not in raw
    opened = envelopes[0]["payload"]
    assert opened["headers"]["Authorization"] == SECRET
    assert opened["query"] == {"model": "gpt-realtime", "api_key": SECRET}
    for envelope in envelopes[2:4]:  # session.update and the echoed session.updated
        tool = envelope["payload"]["session"]["tools"][0]
        assert tool["authorization"] == SECRET and tool["headers"] == {"X-Api-Key": SECRET}

    # The proxy's own lines (its websockets traffic included); the test's client and upstream
    # log their own headers at debug level.
    formatter = JsonLogFormatter()
    lines = [formatter.format(r) for r in caplog.records if r.name.startswith("voxledger.")]
    assert any('"event": "session.opened"' in line for line in lines)
    assert any('"event": "session.closed"' in line for line in lines)
    for secret in secrets:
        assert not [line for line in lines if secret in line]


def test_a_tenant_without_its_openai_key(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")

    async def scenario() -> tuple[Any, Any]:
        # Against OpenAI: a clear error at session open, before any connection is tried.
        proxy = await start_proxy(settings)
        try:
            url = f"{proxy.url}/realtime?model=gpt-realtime"
            async with connect(url, additional_headers=bearer()) as ws:
                with pytest.raises(ConnectionClosed) as refused:
                    await ws.recv()
        finally:
            await proxy.close()
        # Against an explicit upstream (the simulator): the session opens without a key.
        async with ScriptedUpstream() as upstream:
            proxy = await start(settings, upstream)
            try:
                url = f"{proxy.url}/realtime?model=gpt-realtime"
                async with connect(url, additional_headers=bearer()) as ws:
                    assert json.loads(await ws.recv())["type"] == "session.created"
            finally:
                await proxy.close()
        return refused.value.rcvd, upstream

    refused, upstream = run(scenario())
    assert refused.code == 1011 and "OPENAI_API_KEY is not set" in refused.reason
    assert "OPENAI_API_KEY is not set" in caplog.text
    assert "Authorization" not in upstream.requests[0].headers
    envelopes = read_raw(settings, 2 + 3)
    failed = [e for e in envelopes if e["session_id"].startswith("vxp_")]  # no session.created
    check_session(failed)
    assert "OPENAI_API_KEY" in failed[-1]["payload"]["upstream_error"]
    assert failed[-1]["payload"]["upstream_close"] is None


def test_browser_subprotocol_key_is_accepted_and_realtime_echoed(settings: Settings) -> None:
    protocols = ["realtime", f"openai-insecure-api-key.{CLIENT_KEY}", "openai-beta.realtime-v1"]

    async def scenario() -> tuple[str | None, Any]:
        async with ScriptedUpstream() as upstream:
            proxy = await start(settings, upstream)
            try:
                url = f"{proxy.url}/realtime?model=gpt-realtime"
                async with connect(url, subprotocols=protocols) as ws:
                    assert json.loads(await ws.recv())["type"] == "session.created"
                    chosen = ws.subprotocol
            finally:
                await proxy.close()
            return chosen, upstream.requests[0]

    chosen, request = run(scenario())
    assert chosen == "realtime"
    assert request.headers["OpenAI-Beta"] == "realtime=v1"
    assert "Sec-WebSocket-Protocol" not in request.headers  # the key-carrying list stays here


# -- limits -------------------------------------------------------------------------------------


def test_limits_close_with_clear_codes(settings: Settings) -> None:
    limited = with_limits(
        settings, max_frame_bytes=2048, max_sessions_per_tenant=1, idle_timeout_s=0.3
    )

    async def scenario() -> dict[str, Any]:
        results: dict[str, Any] = {}
        async with ScriptedUpstream() as upstream:
            proxy = await start(limited, upstream)
            url = f"{proxy.url}/realtime?model=gpt-realtime"
            try:
                async with connect(url, additional_headers=bearer()) as first:
                    await first.recv()
                    async with connect(url, additional_headers=bearer()) as second:
                        with pytest.raises(ConnectionClosed) as refused:
                            await second.recv()
                        results["tenant_limit"] = refused.value.rcvd
                    await first.send("x" * 4096)
                    with pytest.raises(ConnectionClosed) as too_big:
                        await first.recv()
                    results["too_big"] = too_big.value.sent
                await until(lambda: not proxy.sessions, "the first session to end")
                async with connect(url, additional_headers=bearer()) as idle:
                    await idle.recv()
                    with pytest.raises(ConnectionClosed) as idled:
                        await idle.recv()  # nothing sent: the idle timeout closes it
                    results["idle"] = idled.value.rcvd
                await asyncio.wait_for(upstream.closed.wait(), DEADLINE_S)
                await until(lambda: len(upstream.closes) == 2, "both upstream closes")
                results["upstream_idle"] = upstream.closes[1][0]
            finally:
                await proxy.close()
        return results

    results = run(scenario())
    assert results["tenant_limit"].code == 1013
    assert "try again later" in results["tenant_limit"].reason
    assert results["too_big"].code == 1009
    assert results["idle"].code == 1001 and "idle" in results["idle"].reason
    assert results["upstream_idle"].code == 1000


def test_a_tenant_opening_sessions_too_fast_is_refused(settings: Settings) -> None:
    limited = with_limits(settings, session_starts_per_minute=2)

    async def scenario() -> list[Any]:
        outcomes: list[Any] = []
        async with ScriptedUpstream() as upstream:
            proxy = await start(limited, upstream)
            url = f"{proxy.url}/realtime?model=gpt-realtime"
            try:
                for _ in range(3):  # within a minute: two fit the allowance, the third does not
                    async with connect(url, additional_headers=bearer()) as client:
                        try:
                            outcomes.append(json.loads(await client.recv())["type"])
                        except ConnectionClosed as closed:
                            outcomes.append(closed.rcvd)
            finally:
                await proxy.close()
        return outcomes

    first, second, third = run(scenario())
    assert first == second == "session.created"
    assert third.code == 1013 and "new sessions a minute" in third.reason


def test_full_spool_refuses_new_sessions_with_1013(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    no_broker = settings.model_copy(
        update={
            "bootstrap_servers": f"127.0.0.1:{free_port()}",
            "data_dir": tmp_path / "no-broker",
            "proxy": ProxySettings(spool_max_bytes=1),
        }
    )

    async def scenario() -> Any:
        async with ScriptedUpstream() as upstream:
            proxy = await start(no_broker, upstream)
            try:
                url = f"{proxy.url}/realtime?model=gpt-realtime"
                async with connect(url, additional_headers=bearer()) as ws:
                    await ws.recv()
                await until(lambda: not proxy.sessions, "the first session to end")
                await until(lambda: proxy.publisher.spool.full, "the spool to fill")
                async with connect(url, additional_headers=bearer()) as ws:
                    with pytest.raises(ConnectionClosed) as refused:
                        await ws.recv()
            finally:
                await proxy.close()
            return refused.value.rcvd

    refused = run(scenario())
    assert refused.code == 1013 and "spool is full" in refused.reason
    assert "refusing new sessions" in caplog.text


# -- metrics, health, CLI -----------------------------------------------------------------------


def test_metrics_and_health_on_the_proxy_port(settings: Settings) -> None:
    def get(url: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    async def scenario() -> tuple[tuple[int, str], ...]:
        async with ScriptedUpstream() as upstream:
            proxy = await start(settings, upstream)
            try:
                url = f"{proxy.url}/realtime?model=gpt-realtime"
                async with connect(url, additional_headers=bearer()) as ws:
                    await ws.recv()
                    await ws.send(event("response.cancel"))
                    await ws.recv()
                base = proxy.metrics_url.removesuffix("/metrics")
                return (
                    await asyncio.to_thread(get, proxy.metrics_url),
                    await asyncio.to_thread(get, f"{base}/healthz"),
                    await asyncio.to_thread(get, f"{base}/elsewhere"),
                )
            finally:
                await proxy.close()

    metrics, health, elsewhere = run(scenario())
    assert metrics[0] == 200
    assert 'voxledger_proxy_frames_total{direction="client"} 1.0' in metrics[1]
    assert 'voxledger_proxy_frames_total{direction="server"} 2.0' in metrics[1]
    for name in ("sessions_open", "publish_latency_seconds", "spool_depth", "delivery_failures"):
        assert name in metrics[1]
    assert health[0] == 200 and json.loads(health[1])["status"] == "ok"
    assert elsewhere[0] == 404


def test_cli_help_names_the_options() -> None:
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--upstream-url", "/metrics"):
        assert option in result.output


# -- the official SDK ---------------------------------------------------------------------------


async def sdk_conversation(proxy: ProxyServer) -> list[str]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=CLIENT_KEY, websocket_base_url=proxy.url)
    types: list[str] = []
    async with client.realtime.connect(model="gpt-realtime") as connection:
        await connection.session.update(session={"type": "realtime", "instructions": "Be brief."})
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hello"}],
            }
        )
        await connection.response.create()
        async for server_event in connection:
            types.append(server_event.type)
            if server_event.type == "response.done":
                break
    return types


def test_openai_sdk_through_the_proxy(settings: Settings) -> None:
    async def scenario() -> tuple[list[str], Any]:
        async with ScriptedUpstream() as upstream:
            proxy = await start(settings, upstream)
            try:
                types = await sdk_conversation(proxy)
                await until(lambda: not proxy.sessions, "the session to end")
            finally:
                await proxy.close()
            return types, upstream.requests[0]

    types, request = run(scenario())
    assert types[0] == "session.created" and types[-1] == "response.done"
    assert "model=gpt-realtime" in request.path
    assert request.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    envelopes = check_session(read_raw(settings))
    assert [e["type"] for e in envelopes if e["direction"] == "server"] == types
    assert envelopes[-1]["payload"]["frames"] == {"client": 3, "server": len(types)}


def test_openai_sdk_through_the_proxy_to_the_simulator(settings: Settings) -> None:
    simulator = pytest.importorskip("voxledger.ingest.simulator")

    async def scenario() -> list[str]:
        upstream = await simulator.start_simulator(port=0, fast=True)
        try:
            proxy = await start_proxy(settings, upstream_url=upstream.url)
            try:
                types = await sdk_conversation(proxy)
                await until(lambda: not proxy.sessions, "the session to end")
            finally:
                await proxy.close()
        finally:
            await upstream.close()
        return types

    types = run(scenario())
    assert types[0] == "session.created" and types[-1] == "response.done"
    envelopes = check_session(read_raw(settings))
    server = [e["type"] for e in envelopes if e["direction"] == "server"]
    assert server[: len(types)] == types  # and what the simulator sent before the client left
    assert envelopes[-1]["payload"]["frames"] == {"client": 3, "server": len(server)}


# -- a broker outage mid-session ----------------------------------------------------------------


def test_broker_outage_mid_session_spools_then_drains_without_loss(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    own = settings.model_copy(
        update={"bootstrap_servers": f"127.0.0.1:{port}", "data_dir": tmp_path / "outage"}
    )
    start_broker(own, port)  # a broker of our own: tansu keeps topics in memory only
    # Restarting on the same port: tansu binds with SO_REUSEADDR, the free-port probe does not.
    monkeypatch.setattr(voxledger.broker, "_check_port_free", lambda host, port: None)

    async def exchange(ws: Any, n: int) -> None:
        frame = event("conversation.item.create", item={"n": n})
        await ws.send(frame)
        assert await ws.recv() == frame

    async def scenario() -> int:
        async with ScriptedUpstream() as upstream:
            proxy = await start(own, upstream)
            publisher = proxy.publisher
            try:
                url = f"{proxy.url}/realtime?model=gpt-realtime"
                async with connect(url, additional_headers=bearer()) as ws:
                    await ws.recv()
                    for n in range(3):
                        await exchange(ws, n)
                    await until(lambda: publisher.delivered == 8, "delivery to the first broker")
                    await asyncio.to_thread(stop_broker, own)
                    await until(lambda: publisher.spooling, "the publisher to spool")
                    for n in range(3, 8):
                        await exchange(ws, n)  # the relay goes on while the broker is down
                    await until(lambda: publisher.spool.depth >= 10, "the spool to hold them")
                    await asyncio.to_thread(start_broker, own, port)
                    await until(lambda: publisher.settled, "the spool to drain")
                    for n in range(8, 10):
                        await exchange(ws, n)
                await until(lambda: not proxy.sessions, "the session to end")
            finally:
                await proxy.close()
            return publisher.published

    try:
        published = run(scenario())
        assert published == 1 + 1 + 2 * 10 + 1  # opened, session.created, 10 exchanges, closed
        after_restart = read_raw(own, published - 8)
    finally:
        stop_broker(own)
    # The first broker (and its 8 envelopes) is gone; the new one holds every later envelope.
    assert [e["seq"] for e in after_restart] == list(range(8, published))
    assert len({e["envelope_id"] for e in after_restart}) == len(after_restart)
    closed = after_restart[-1]["payload"]
    assert after_restart[-1]["type"] == SESSION_CLOSED
    assert closed["spooled"] >= 10
    assert closed["frames"] == {"client": 10, "server": 11}


# -- the capture process ------------------------------------------------------------------------


def test_relay_goes_on_while_the_capture_process_is_stopped(settings: Settings) -> None:
    # 2.6 MB both ways: more than the pipe to the capture process holds.
    frames = [
        event("conversation.item.create", item={"n": n, "pad": "x" * 65536}) for n in range(20)
    ]

    async def scenario() -> str:
        async with ScriptedUpstream() as upstream:
            proxy = await start(settings, upstream)
            capture = proxy.captures.process
            try:
                url = f"{proxy.url}/realtime?model=gpt-realtime"
                async with connect(url, additional_headers=bearer()) as ws:
                    created = json.loads(await ws.recv())
                    os.kill(capture.pid, signal.SIGSTOP)  # capture can't take a single frame
                    try:
                        for frame in frames:
                            await ws.send(frame)
                            assert await asyncio.wait_for(ws.recv(), DEADLINE_S) == frame
                        assert proxy.captures.backlog_bytes > 0  # kept here meanwhile
                    finally:
                        os.kill(capture.pid, signal.SIGCONT)
                await until(lambda: not proxy.sessions, "the session to end")
            finally:
                await proxy.close()
            return created["session"]["id"]

    session_id = run(scenario())
    envelopes = check_session(read_raw(settings, 3 + 2 * len(frames)))
    assert {e["session_id"] for e in envelopes} == {session_id}
    relayed = [e for e in envelopes if e["type"] == "conversation.item.create"]
    assert [(e["direction"], e["payload"]["item"]["n"]) for e in relayed] == [
        (direction, n) for n in range(len(frames)) for direction in ("client", "server")
    ]


def test_without_its_capture_process_the_proxy_refuses_sessions(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> tuple[Any, int]:
        async with ScriptedUpstream() as upstream:
            proxy = await start(settings, upstream)
            try:
                proxy.captures.process.kill()
                await until(lambda: proxy.publisher.unavailable is not None, "the proxy to notice")
                health = await asyncio.to_thread(_status, proxy.metrics_url, "/healthz")
                url = f"{proxy.url}/realtime?model=gpt-realtime"
                async with connect(url, additional_headers=bearer()) as ws:
                    with pytest.raises(ConnectionClosed) as refused:
                        await ws.recv()
            finally:
                await proxy.close()
            return refused.value.rcvd, health

    refused, health = run(scenario())
    assert refused.code == 1013
    assert health == 503
    assert "the capture process exited" in caplog.text


def _status(metrics_url: str, path: str) -> int:
    try:
        with urllib.request.urlopen(metrics_url.removesuffix("/metrics") + path, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_fragmented_messages_are_relayed_as_sent_and_captured_whole(settings: Settings) -> None:
    parts = ['{"type": "conversation.item.create", ', '"item": {"type": "message"}, ', '"n": 1}']

    async def scenario() -> list[str | bytes]:
        async with ScriptedUpstream() as upstream:
            proxy = await start(settings, upstream)
            try:
                url = f"{proxy.url}/realtime?model=gpt-realtime"
                async with connect(url, additional_headers=bearer()) as ws:
                    await ws.recv()
                    await ws.send(parts)  # three frames: text, continuation, continuation
                    assert await ws.recv() == "".join(parts)
                await until(lambda: not proxy.sessions, "the session to end")
            finally:
                await proxy.close()
            return upstream.received

    assert run(scenario()) == ["".join(parts)]
    envelopes = check_session(read_raw(settings))
    relayed = [e for e in envelopes if e["type"] == "conversation.item.create"]
    assert [(e["direction"], e["payload"]["n"]) for e in relayed] == [("client", 1), ("server", 1)]
    assert envelopes[-1]["payload"]["bytes"]["client"] == len("".join(parts))


class SlowToOpenUpstream(ScriptedUpstream):
    """Takes its time to accept the WebSocket handshake."""

    async def __aenter__(self) -> ScriptedUpstream:
        async def slowly(connection: ServerConnection, request: Any) -> None:
            await asyncio.sleep(0.5)

        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=slowly)
        self.url = f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"
        return self


def test_frames_sent_before_the_upstream_opens_are_relayed_in_order(settings: Settings) -> None:
    frames = [event("input_audio_buffer.append", audio="AAAA", n=n) for n in range(40)]

    async def scenario() -> list[str | bytes]:
        async with SlowToOpenUpstream() as upstream:
            proxy = await start(settings, upstream)
            try:
                url = f"{proxy.url}/realtime?model=gpt-realtime"
                async with connect(url, additional_headers=bearer()) as ws:
                    for frame in frames:  # the proxy is still opening the upstream connection
                        await ws.send(frame)
                    assert json.loads(await ws.recv())["type"] == "session.created"
                    for frame in frames:
                        assert await ws.recv() == frame
                await until(lambda: not proxy.sessions, "the session to end")
            finally:
                await proxy.close()
            return upstream.received

    assert run(scenario()) == frames
    envelopes = check_session(read_raw(settings, 3 + 2 * len(frames)))
    for direction in ("client", "server"):
        relayed = [e for e in envelopes[1:-1] if e["direction"] == direction]
        numbers = [e["payload"]["n"] for e in relayed if e["type"] == "input_audio_buffer.append"]
        assert numbers == list(range(len(frames)))
