"""The capture proxy under bad client frames: it stays up, serves the next session, and every
frame it relayed is in the raw topic (unparsed ones as voxledger.unparsed with parse_error)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from typing import Any

import pytest
from badinput import corpus_bytes, corpus_lines, huge_frames
from helpers import read_topic
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voxledger.config import ProxySettings, Settings
from voxledger.envelope import MAX_MESSAGE_BYTES, UNPARSED_TYPE, parse_frame
from voxledger.ingest.capture import SESSION_CLOSED, SESSION_OPENED
from voxledger.ingest.proxy import ProxyServer, start_proxy
from voxledger.ingest.scenario_client import run_scenario
from voxledger.ingest.simulator import start_simulator

CLIENT_KEY = "vx-demo-us"  # tenant acme-us in examples/voxledger.toml
MAX_FRAME_BYTES = 4 * 1024 * 1024  # the 2 MiB corpus frames pass; a 5 MiB one does not
DEADLINE_S = 60.0
SENT_AS_TEXT = (
    "malformed_json.jsonl",
    "deep_nesting.jsonl",
    "wrong_types.jsonl",
    "unknown_types.jsonl",
    "lone_surrogates.jsonl",
    "envelopes_v2.jsonl",
    "truncated_log.jsonl",
)


def bad_frames() -> list[str | bytes]:
    """The corpus as a client can send it: invalid UTF-8 only fits in binary frames."""
    frames: list[str | bytes] = []
    for name in SENT_AS_TEXT:
        frames += [line.decode() for line in corpus_lines(name)]
    frames += corpus_lines("invalid_utf8.jsonl")
    binary = corpus_bytes("binary_frames.bin")
    frames += [binary, binary[:1], b"", binary[100:300]]
    frames += [frame.decode() for frame in huge_frames()]
    return frames


async def drain(ws: ClientConnection) -> None:
    """Read what the upstream answers (errors, mostly), so its socket never backs up."""
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


async def bad_session(url: str, frames: list[str | bytes]) -> None:
    async with connect(url, additional_headers=auth(), max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        reader = asyncio.create_task(drain(ws))
        for frame in frames:
            await ws.send(frame)
        await ws.close(1000, "done")
        await reader


async def oversized_session(url: str) -> Any:
    """A frame beyond proxy.max_frame_bytes: the proxy closes the session with 1009."""
    ws = await connect(url, additional_headers=auth(), max_size=None)
    await ws.recv()
    with contextlib.suppress(ConnectionClosed):  # the close may come while still sending
        await ws.send("x" * (MAX_FRAME_BYTES + 1))
    await ws.wait_closed()
    return ws.protocol.close_rcvd


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {CLIENT_KEY}"}


def healthz(proxy: ProxyServer) -> dict[str, Any]:
    url = f"http://{proxy.host}:{proxy.port}/healthz"
    return json.loads(urllib.request.urlopen(url, timeout=10).read())


async def until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.fixture
def limited(pipeline_settings: Settings) -> Settings:
    return pipeline_settings.model_copy(
        update={"proxy": ProxySettings(max_frame_bytes=MAX_FRAME_BYTES)}
    )


def test_bad_frames_are_relayed_captured_and_the_proxy_goes_on(limited: Settings) -> None:
    frames = bad_frames()

    async def scenario() -> tuple[Any, Any, dict[str, Any]]:
        simulator = await start_simulator(fast=True)
        proxy = await start_proxy(limited, upstream_url=simulator.url)
        try:
            url = f"{proxy.url}/realtime?model=gpt-realtime"
            await bad_session(url, frames)
            close = await oversized_session(url)
            await until(lambda: not proxy.sessions, "the bad sessions to end")
            normal = await run_scenario(
                "support_disclosure_en", base_url=proxy.url, api_key=CLIENT_KEY
            )
            await until(lambda: not proxy.sessions, "the normal session to end")
            return normal, close, await asyncio.to_thread(healthz, proxy)
        finally:
            await proxy.close()
            await simulator.close()

    normal, close, health = asyncio.run(asyncio.wait_for(scenario(), DEADLINE_S * 3))
    assert normal.completed, normal.errors  # a normal session after the bad ones
    assert close.code == 1009  # too big: refused with the WebSocket code for it
    assert health["status"] == "ok" and not health["spooling"]  # no poison message stuck

    envelopes = read_topic(
        limited,
        limited.topics.raw.name,
        lambda found: sum(e["type"] == SESSION_CLOSED for e in found) >= 3,
    )
    sessions: dict[str, list[dict]] = {}
    for envelope in envelopes:
        sessions.setdefault(envelope["session_id"], []).append(envelope)
    assert len(sessions) == 3
    for session in sessions.values():
        assert_complete(session)
    bad, oversized, good = sorted(sessions.values(), key=lambda s: s[0]["observed_at"])
    assert_bad_frames_captured(bad, frames)
    assert oversized[-1]["payload"]["frames"]["client"] == 0  # the oversized frame was not relayed
    assert good[-1]["payload"]["closed_first"] == "client"


def assert_complete(session: list[dict]) -> None:
    """Every relayed frame is an envelope: seq gap-free, counts as the close marker says."""
    session.sort(key=lambda e: e["seq"])
    assert [e["seq"] for e in session] == list(range(len(session)))
    assert session[0]["type"] == SESSION_OPENED and session[-1]["type"] == SESSION_CLOSED
    counts = session[-1]["payload"]["frames"]
    relayed = session[1:-1]
    assert sum(e["direction"] == "client" for e in relayed) == counts["client"]
    assert sum(e["direction"] == "server" for e in relayed) == counts["server"]
    for envelope in relayed:
        if envelope["type"] == UNPARSED_TYPE:
            assert envelope["payload"]["parse_error"]


def assert_bad_frames_captured(session: list[dict], frames: list[str | bytes]) -> None:
    client = [e for e in session[1:-1] if e["direction"] == "client"]
    assert len(client) == len(frames)
    for envelope, frame in zip(client, frames, strict=True):
        expected, _ = parse_frame(frame)
        if len(frame) > MAX_MESSAGE_BYTES and expected == "input_audio_buffer.append":
            assert envelope["type"] == expected  # 2 MiB of audio, elided to its summary
            assert envelope["payload"]["audio"]["bytes"] == 2 * 1024 * 1024
        elif len(frame) > MAX_MESSAGE_BYTES:  # too big for a Kafka message: a flagged excerpt
            assert envelope["type"] == UNPARSED_TYPE
            assert envelope["payload"]["event_bytes"] >= len(frame)
            assert "exceeds" in envelope["payload"]["parse_error"]
        else:
            assert envelope["type"] == expected, (envelope["type"], str(frame)[:80])
        if isinstance(frame, bytes) and envelope["type"] == UNPARSED_TYPE:
            assert "raw_b64" in envelope["payload"] or "raw_text" in envelope["payload"]
