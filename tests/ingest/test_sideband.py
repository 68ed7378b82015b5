"""Sideband: attach to a simulated WebRTC call by call_id and publish its events as sideband."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
from click.testing import CliRunner
from helpers import read_topic

from voxledger.cli import cli
from voxledger.config import Settings
from voxledger.envelope import envelope_schema
from voxledger.ingest.capture import SESSION_CLOSED, SESSION_OPENED
from voxledger.ingest.scenario_client import run_scenario
from voxledger.ingest.sideband import attach_call, sideband_url
from voxledger.ingest.simulator import parse_scenario, start_simulator

VALIDATOR = jsonschema.Draft202012Validator(envelope_schema())
DEADLINE_S = 30.0

# A short call: the caller speaks for 1.5 s in real time, which is when the sideband attaches.
CALL = parse_scenario(
    {
        "name": "sideband_call_test",
        "description": "One spoken question and one answer.",
        "language": "en",
        "instructions": "You are a test assistant.",
        "turns": [
            {"user": {"text": "Where is my parcel?", "audio_ms": 1500}},
            {"assistant": "It is out for delivery today."},
        ],
    }
)


def read_raw(
    settings: Settings, until: Callable[[list[dict[str, Any]]], bool] | int
) -> list[dict[str, Any]]:
    """Raw-topic envelopes from the start until a count or `until(envelopes)` holds, validated."""
    envelopes = read_topic(settings, settings.topics.raw.name, until, deadline_s=DEADLINE_S)
    for envelope in envelopes:
        VALIDATOR.validate(envelope)
    return envelopes


def has_event(event_id: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda found: any(e["payload"].get("event_id") == event_id for e in found)


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)  # polling a condition, not waiting a guessed time


def call_is_open(simulator: Any, call_id: str) -> bool:
    # The simulator keeps its calls by id; a sideband joining before the caller would create
    # the call itself, and the caller would then never get its session.created.
    return call_id in simulator._calls


def run(job: Any) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(job, 2 * 60)

    return asyncio.run(bounded())


async def attach_to_a_running_call(settings: Settings, call_id: str) -> tuple[Any, Any]:
    """A caller plays CALL on call_id; the sideband joins once the call is open."""
    # Both sides at speaking pace, as on a real call: the caller never races ahead of replies.
    simulator = await start_simulator(port=0, fast=False, scenarios=[CALL])
    try:
        caller = asyncio.create_task(
            run_scenario(
                CALL,
                base_url=simulator.url,
                api_key="sk-test",
                fast=False,  # real-time speech keeps the call open while the sideband joins
                extra_query={"call_id": call_id},
                record_events=True,
            )
        )
        await wait_for(lambda: call_is_open(simulator, call_id), "the call to open")
        stop, connected = asyncio.Event(), asyncio.Event()
        attach = asyncio.create_task(
            attach_call(
                settings,
                call_id,
                upstream_url=simulator.url,
                stop=stop,
                connected=connected,
            )
        )
        await asyncio.wait_for(connected.wait(), DEADLINE_S)
        result = await asyncio.wait_for(caller, 60)
        assert result.completed, result.aborted
        last = result.events[-1]["event_id"]
        await asyncio.to_thread(read_raw, settings, has_event(last))
        stop.set()
        summary = await asyncio.wait_for(attach, DEADLINE_S)
    finally:
        await simulator.close()
    return result, summary


def test_attach_publishes_a_running_calls_events(pipeline_settings: Settings) -> None:
    call_id = f"rtc_{uuid.uuid4().hex[:16]}"
    result, summary = run(attach_to_a_running_call(pipeline_settings, call_id))

    assert summary.ended_by == "a stop request"
    assert summary.session_id == call_id  # joined mid-call: no session.created, so the call id
    assert summary.undelivered == 0
    envelopes = read_raw(pipeline_settings, summary.events)
    assert len(envelopes) == summary.events
    assert {(e["source"], e["session_id"]) for e in envelopes} == {("sideband", call_id)}
    assert [e["seq"] for e in envelopes] == list(range(len(envelopes)))
    assert envelopes[0]["type"] == SESSION_OPENED and envelopes[-1]["type"] == SESSION_CLOSED
    assert envelopes[-1]["payload"]["frames"] == {"server": summary.frames}

    # What the sideband saw is exactly the caller's server events from when it joined on.
    seen = [e["payload"]["event_id"] for e in envelopes[1:-1]]
    heard = [event["event_id"] for event in result.events]
    assert seen and seen == heard[len(heard) - len(seen) :]
    assert "response.done" in {e["type"] for e in envelopes}
    assert {e["direction"] for e in envelopes[1:-1]} == {"server"}


async def attach_first(settings: Settings, call_id: str) -> tuple[list[dict[str, Any]], Any]:
    """The sideband opens the call itself, so it gets session.created; then the call ends."""
    simulator = await start_simulator(port=0, fast=True)
    try:
        attach = asyncio.create_task(
            attach_call(settings, call_id, upstream_url=f"{simulator.url}/")
        )
        found = await asyncio.to_thread(
            read_raw,
            settings,
            lambda found: any(e["type"] == "session.created" for e in found),
        )
    finally:
        await simulator.close()  # the call ends for everyone on it
    return found, await asyncio.wait_for(attach, DEADLINE_S)


def test_session_id_comes_from_session_created(pipeline_settings: Settings) -> None:
    call_id = f"rtc_{uuid.uuid4().hex[:16]}"
    found, summary = run(attach_first(pipeline_settings, call_id))

    session_id = next(e for e in found if e["type"] == "session.created")["payload"]["session"][
        "id"
    ]
    assert summary.session_id == session_id
    assert summary.ended_by == "the call closing"
    assert {e["session_id"] for e in found} == {session_id}


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_unreachable_upstream_is_a_clear_error(pipeline_settings: Settings) -> None:
    result = invoke("attach", "--call-id", "rtc_1", "--upstream-url", "ws://127.0.0.1:9/v1")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].startswith(
        "Error: cannot reach ws://127.0.0.1:9/v1/realtime to attach to call rtc_1"
    )


def test_a_tenant_or_an_upstream_is_needed(demo_env: Path) -> None:
    result = invoke("attach", "--call-id", "rtc_1")
    assert result.exit_code == 2
    assert "Error: name the call's tenant with --tenant, or give --upstream-url" in result.output


def test_sideband_url() -> None:
    assert sideband_url("wss://api.openai.com/v1", "rtc_a b") == (
        "wss://api.openai.com/v1/realtime?call_id=rtc_a%20b"
    )
    assert sideband_url("ws://h/v1/realtime/", "c") == "ws://h/v1/realtime?call_id=c"
