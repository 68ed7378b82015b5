"""The Realtime simulator and scenario client, checked against the openai SDK's own types."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from click.testing import CliRunner
from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.realtime import RealtimeServerEvent as GaServerEvent
from pydantic import TypeAdapter
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from voxledger.ingest.scenario_client import ScenarioResult, run_scenario, run_scenarios
from voxledger.ingest.simulator import (
    Scenario,
    ScenarioError,
    SimulatorServer,
    load_scenario,
    parse_scenario,
    scenario_names,
    start_simulator,
)
from voxledger.ingest.simulator.audio import silence, tone
from voxledger.ingest.simulator.cli import command

API_KEY = "sk-simulated-not-a-real-key"
LONG_CALL = "long_call_overflow_en"
GA_EVENTS = TypeAdapter(GaServerEvent)
BETA_EVENTS = TypeAdapter(BetaServerEvent)


def with_simulator(body: Callable[[SimulatorServer], Awaitable[Any]], *scenarios: Scenario) -> Any:
    """Run `body` against a fresh fast simulator, in its own event loop."""

    async def main() -> Any:
        server = await start_simulator(fast=True, scenarios=scenarios)
        try:
            return await body(server)
        finally:
            await server.close()

    return asyncio.run(main())


def play(scenario: Scenario | str, record: bool = True) -> ScenarioResult:
    extra = [scenario] if isinstance(scenario, Scenario) else []
    return with_simulator(
        lambda server: run_scenario(
            scenario, base_url=server.url, api_key=API_KEY, record_events=record
        ),
        *extra,
    )


@pytest.fixture(scope="module")
def played() -> dict[str, ScenarioResult]:
    """Every shipped scenario, played once through the SDK; the long call without recording."""
    names = [name for name in scenario_names() if name != LONG_CALL]

    async def body(server: SimulatorServer) -> list[ScenarioResult]:
        short = run_scenarios(names, 4, base_url=server.url, api_key=API_KEY, record_events=True)
        long = run_scenario(LONG_CALL, base_url=server.url, api_key=API_KEY)
        results, long_result = await asyncio.gather(short, long)
        return [*results, long_result]

    return {result.scenario: result for result in with_simulator(body)}


def types(result: ScenarioResult) -> list[str]:
    assert result.events is not None
    return [event["type"] for event in result.events]


def usages(result: ScenarioResult) -> list[dict[str, Any]]:
    return [response["usage"] for response in result.responses]


# -- whole scenarios through the SDK ---------------------------------------------------------------


def test_ships_the_promised_scenarios() -> None:
    promised = {
        "support_disclosure_en",
        "denies_ai_en",
        "refund_over_limit_en",
        "pii_heavy_en",
        "pii_heavy_es",
        "pii_heavy_fr",
        "barge_in_en",
        "content_filter_en",
        LONG_CALL,
        "mcp_tools_en",
        "beta_preview_en",
        "eu_wrong_host_en",
        "disclosure_de",
        "disclosure_ja",
    }
    assert promised <= set(scenario_names())


def test_the_sdk_drives_every_shipped_scenario_to_completion(
    played: dict[str, ScenarioResult],
) -> None:
    assert set(played) == set(scenario_names())
    for name, result in played.items():
        assert result.completed, (name, result.aborted)
        assert result.errors == [], name
        assert result.session_id and result.session_id.startswith("sess_")
        assert len(result.responses) == len(load_scenario(name).assistant_turns()), name
        assert result.client_events_sent > 0


def test_every_event_parses_as_the_sdk_types_of_its_generation(
    played: dict[str, ScenarioResult],
) -> None:
    for name, result in played.items():
        if result.events is None:
            continue
        adapter = BETA_EVENTS if load_scenario(name).is_beta else GA_EVENTS
        for event in result.events:
            assert event["event_id"].startswith("event_")
            adapter.validate_python(event)


def test_ga_and_beta_name_events_differently(played: dict[str, ScenarioResult]) -> None:
    ga, beta = set(types(played["refund_over_limit_en"])), set(types(played["beta_preview_en"]))
    assert {
        "response.output_audio.delta",
        "response.output_audio_transcript.done",
        "conversation.item.added",
        "conversation.item.done",
    } <= ga
    assert not ga & {"response.audio.delta", "conversation.item.created", "conversation.created"}
    assert {
        "response.audio.delta",
        "response.audio_transcript.delta",
        "conversation.item.created",
        "conversation.created",
    } <= beta
    assert not beta & {
        "response.output_audio.delta",
        "conversation.item.added",
        "conversation.item.done",
    }


def test_ga_and_beta_sessions_have_their_own_shapes(played: dict[str, ScenarioResult]) -> None:
    ga = played["refund_over_limit_en"].events[0]["session"]  # type: ignore[index]
    beta = played["beta_preview_en"].events[0]["session"]  # type: ignore[index]
    assert ga["type"] == "realtime" and ga["object"] == "realtime.session"
    assert ga["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert ga["audio"]["output"]["voice"] == "alloy" and ga["max_output_tokens"] == "inf"
    assert ga["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert {"output_modalities", "truncation", "tracing", "tools"} <= set(ga)
    assert beta["object"] == "realtime.session" and "type" not in beta
    assert beta["modalities"] == ["text", "audio"] and beta["input_audio_format"] == "pcm16"
    assert {
        "voice",
        "turn_detection",
        "input_audio_transcription",
        "max_response_output_tokens",
    } <= set(beta)


def test_session_update_is_echoed_merged(played: dict[str, ScenarioResult]) -> None:
    result = played["refund_over_limit_en"]
    updated = next(e for e in result.events or [] if e["type"] == "session.updated")["session"]
    scenario = load_scenario("refund_over_limit_en")
    assert updated["instructions"] == scenario.instructions
    assert [tool["name"] for tool in updated["tools"]] == ["issue_refund", "lookup_order"]
    assert updated["audio"]["input"]["transcription"]["model"] == "whisper-1"
    assert (
        updated["audio"]["input"]["turn_detection"]["prefix_padding_ms"] == 300
    )  # kept from default


# -- usage -----------------------------------------------------------------------------------------


def test_usage_details_add_up_and_cached_is_a_subset(played: dict[str, ScenarioResult]) -> None:
    for name, result in played.items():
        for usage in usages(result):
            read, wrote = usage["input_token_details"], usage["output_token_details"]
            cached = read["cached_tokens_details"]
            assert (
                read["text_tokens"] + read["audio_tokens"] + read.get("image_tokens", 0)
                == usage["input_tokens"]
            )
            assert (
                cached["text_tokens"] + cached["audio_tokens"] + cached.get("image_tokens", 0)
                == read["cached_tokens"]
            )
            assert read["cached_tokens"] <= usage["input_tokens"], name
            assert (
                cached["text_tokens"] <= read["text_tokens"]
                and cached["audio_tokens"] <= read["audio_tokens"]
            )
            assert read["cached_tokens"] % 64 == 0
            assert wrote["text_tokens"] + wrote["audio_tokens"] == usage["output_tokens"]
            assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_cached_tokens_grow_turn_by_turn(played: dict[str, ScenarioResult]) -> None:
    cached = [
        u["input_token_details"]["cached_tokens"] for u in usages(played["support_disclosure_en"])
    ]
    inputs = [u["input_tokens"] for u in usages(played["support_disclosure_en"])]
    assert cached[0] == 0 and cached[-1] > 0
    assert cached == sorted(cached) and inputs == sorted(inputs)
    assert all(c < i for c, i in zip(cached, inputs, strict=True))


def test_input_transcription_usage_follows_the_transcription_model(
    played: dict[str, ScenarioResult],
) -> None:
    def completed(name: str) -> list[dict[str, Any]]:
        events = played[name].events or []
        return [
            e
            for e in events
            if e["type"] == "conversation.item.input_audio_transcription.completed"
        ]

    whisper = completed("refund_over_limit_en")
    assert whisper and all(
        e["usage"]["type"] == "duration" and e["usage"]["seconds"] > 0 for e in whisper
    )
    tokens = completed("support_disclosure_en")
    assert tokens and all(e["usage"]["type"] == "tokens" for e in tokens)
    first = tokens[0]["usage"]
    assert first["input_token_details"]["audio_tokens"] == first["input_tokens"] > 0
    assert first["total_tokens"] == first["input_tokens"] + first["output_tokens"]
    said = [t.user.text for t in load_scenario("support_disclosure_en").turns if t.user]
    assert [e["transcript"] for e in tokens] == said


# -- conversation dynamics -------------------------------------------------------------------------


def test_barge_in_cancels_the_reply_and_the_caller_truncates_it(
    played: dict[str, ScenarioResult],
) -> None:
    result = played["barge_in_en"]
    cancelled = [r for r in result.responses if r["status"] == "cancelled"]
    assert [r["status_details"]["reason"] for r in cancelled] == ["turn_detected", "turn_detected"]
    truncated = [e for e in result.events or [] if e["type"] == "conversation.item.truncated"]
    assert [t["item_id"] for t in truncated] == [r["output"][0]["id"] for r in cancelled]
    scripted = [
        t.assistant.barge_in_after_ms for t in load_scenario("barge_in_en").turns if t.assistant
    ]
    assert [t["audio_end_ms"] for t in truncated] == [ms for ms in scripted if ms]
    order = types(result)
    first_cancel = next(
        i
        for i, e in enumerate(result.events or [])
        if e["type"] == "response.done" and e["response"]["status"] == "cancelled"
    )
    speech = max(
        i
        for i, kind in enumerate(order[:first_cancel])
        if kind == "input_audio_buffer.speech_started"
    )
    assert (
        "response.output_audio.delta" not in order[speech:first_cancel]
    )  # audio stops at the barge-in
    assert cancelled[0]["output"][0]["status"] == "incomplete"


def test_function_call_round_trip(played: dict[str, ScenarioResult]) -> None:
    result = played["refund_over_limit_en"]
    refund = next(
        r for r in result.responses if any(o.get("name") == "issue_refund" for o in r["output"])
    )
    said, call = refund["output"]
    assert "four hundred twenty dollars" in said["content"][0]["transcript"]
    assert call["type"] == "function_call" and json.loads(call["arguments"])["amount"] == 420
    outputs = [
        e["item"]
        for e in result.events or []
        if e["type"] == "conversation.item.added" and e["item"]["type"] == "function_call_output"
    ]
    assert call["call_id"] in [o["call_id"] for o in outputs]
    after = result.responses[result.responses.index(refund) + 1]
    assert (
        after["status"] == "completed"
        and "has been issued" in after["output"][0]["content"][0]["transcript"]
    )
    args_done = [
        e for e in result.events or [] if e["type"] == "response.function_call_arguments.done"
    ]
    assert {e["name"] for e in args_done} == {"lookup_order", "issue_refund"}


def test_mcp_tools_are_listed_and_called(played: dict[str, ScenarioResult]) -> None:
    result = played["mcp_tools_en"]
    seen = types(result)
    for kind in (
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
    ):
        assert kind in seen
    assert (
        seen.count("response.mcp_call.completed") == 1
        and seen.count("response.mcp_call.failed") == 1
    )
    listing = next(
        e["item"]
        for e in result.events or []
        if e["type"] == "conversation.item.done" and e["item"]["type"] == "mcp_list_tools"
    )
    assert {t["name"] for t in listing["tools"]} == {"get_order_status", "update_delivery_address"}
    calls = [o for r in result.responses for o in r["output"] if o["type"] == "mcp_call"]
    assert calls[0]["output"] and calls[0]["error"] is None
    assert calls[1]["output"] is None and calls[1]["error"]["type"] == "tool_execution_error"
    tool = next(e for e in result.events or [] if e["type"] == "session.updated")["session"][
        "tools"
    ][0]
    assert tool["require_approval"] == "never" and tool["authorization"] == "Bearer mcp-secret-123"


def test_content_filter_stops_the_reply_incomplete(played: dict[str, ScenarioResult]) -> None:
    result = played["content_filter_en"]
    filtered = next(r for r in result.responses if r["status"] != "completed")
    assert filtered["status"] == "incomplete"
    assert filtered["status_details"] == {"type": "incomplete", "reason": "content_filter"}
    scripted = next(
        t.assistant
        for t in load_scenario("content_filter_en").turns
        if t.assistant and t.assistant.content_filter
    )
    heard = filtered["output"][0]["content"][0]["transcript"]
    assert heard and scripted.transcript and scripted.transcript.startswith(heard.strip())
    assert len(heard) < len(scripted.transcript)


def test_long_call_overflows_32k_and_the_server_truncates(
    played: dict[str, ScenarioResult],
) -> None:
    inputs = [u["input_tokens"] for u in usages(played[LONG_CALL])]
    cached = [u["input_token_details"]["cached_tokens"] for u in usages(played[LONG_CALL])]
    assert max(inputs) <= 28_224 < sum(u["output_tokens"] for u in usages(played[LONG_CALL]))
    fall = next(i for i in range(1, len(inputs)) if inputs[i] < inputs[i - 1])
    assert cached[fall - 1] > 0 and cached[fall] == 0
    assert inputs[fall - 1] > 26_000


def test_truncation_disabled_answers_overflow_with_an_error() -> None:
    tight = load_scenario("support_disclosure_en").variant(
        "tight_disabled", truncation="disabled", context_window=2000
    )
    result = play(tight)
    assert not result.completed and result.aborted
    assert [e["code"] for e in result.errors] == ["context_length_exceeded"]
    assert 0 < len(result.responses) < len(tight.assistant_turns())
    assert result.events and result.events[-1]["type"] == "error"


def test_retention_ratio_drops_more_so_the_cache_can_recover() -> None:
    ratio = {"type": "retention_ratio", "retention_ratio": 0.5}
    result = play(
        load_scenario("support_disclosure_en").variant(
            "tight_ratio", context_window=2000, truncation=ratio
        )
    )
    assert result.completed
    inputs = [u["input_tokens"] for u in usages(result)]
    cached = [u["input_token_details"]["cached_tokens"] for u in usages(result)]
    fall = next(i for i in range(1, len(inputs)) if inputs[i] < inputs[i - 1])
    assert cached[fall] == 0 < cached[fall + 1]


def test_text_only_sessions_stream_text() -> None:
    texting = load_scenario("support_disclosure_en").variant("texting", output_modalities=["text"])
    result = play(texting)
    seen = set(types(result))
    assert {"response.output_text.delta", "response.output_text.done"} <= seen
    assert "response.output_audio.delta" not in seen
    assert all(u["output_token_details"]["audio_tokens"] == 0 for u in usages(result))
    assert result.responses[0]["output"][0]["content"][0]["type"] == "output_text"


def test_typed_user_turns_and_manual_commits_work() -> None:
    manual = load_scenario("pii_heavy_en").variant("manual", turn_detection="none")
    result = play(manual)
    assert result.completed and not result.errors
    seen = types(result)
    assert "input_audio_buffer.speech_started" not in seen
    assert seen.count("input_audio_buffer.committed") == len(manual.spoken_user_turns())
    typed = [
        e["item"]
        for e in result.events or []
        if e["type"] == "conversation.item.added"
        and e["item"].get("role") == "user"
        and e["item"]["content"][0]["type"] == "input_text"
    ]
    assert typed and "Mission Street" in typed[0]["content"][0]["text"]


# -- raw protocol ----------------------------------------------------------------------------------


async def next_of(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        event = json.loads(await ws.recv())
        if event["type"] == kind:
            return event


def test_bad_frames_get_error_events_and_the_socket_stays_open() -> None:
    async def body(server: SimulatorServer) -> list[dict[str, Any]]:
        async with connect(f"{server.url}/realtime?model=gpt-realtime") as ws:
            await next_of(ws, "session.created")
            errors = []
            for frame in [
                "{not json",
                json.dumps({"type": "foo.bar", "event_id": "evt_1"}),
                json.dumps({"type": "conversation.item.retrieve"}),
                json.dumps({"type": "response.cancel"}),
                json.dumps({"type": "input_audio_buffer.commit"}),
                json.dumps({"type": "session.update", "session": {"modalities": ["text"]}}),
                json.dumps({"type": "output_audio_buffer.clear"}),
            ]:
                await ws.send(frame)
                errors.append((await next_of(ws, "error"))["error"])
            await ws.send(json.dumps({"type": "response.create"}))
            done = await next_of(ws, "response.done")
            assert done["response"]["status"] == "completed"
            return errors

    errors = with_simulator(body)
    assert [e["code"] for e in errors] == [
        "invalid_json",
        "invalid_value",
        "missing_required_parameter",
        "response_cancel_not_active",
        "input_audio_buffer_commit_empty",
        "missing_required_parameter",
        "unsupported_event",
    ]
    assert all(e["type"] == "invalid_request_error" and e["message"] for e in errors)
    assert errors[1]["param"] == "type" and errors[1]["event_id"] == "evt_1"
    assert errors[2]["param"] == "item_id"


def test_response_cancel_stops_a_reply_mid_speech() -> None:
    # A scripted barge-in point makes the server hold the reply, so the cancel lands mid-speech.
    held = parse_scenario(
        {
            "name": "held_reply",
            "description": "A long reply that pauses after half a second of audio.",
            "language": "en",
            "instructions": "Be helpful.",
            "turns": [
                {
                    "assistant": {
                        "transcript": "A rather long answer. " * 8,
                        "barge_in_after_ms": 500,
                    }
                },
                {"user": "Stop."},
                {"assistant": "Okay."},
            ],
        }
    )

    async def body(server: SimulatorServer) -> tuple[dict[str, Any], dict[str, Any]]:
        async with connect(f"{server.url}/realtime?scenario=held_reply") as ws:
            await next_of(ws, "session.created")
            await ws.send(json.dumps({"type": "response.create"}))
            await next_of(ws, "response.output_audio.delta")
            await ws.send(json.dumps({"type": "response.create"}))
            busy = (await next_of(ws, "error"))["error"]
            await ws.send(json.dumps({"type": "response.cancel"}))
            return busy, (await next_of(ws, "response.done"))["response"]

    busy, done = with_simulator(body, held)
    assert busy["code"] == "conversation_already_has_active_response"
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["usage"]["output_token_details"]["audio_tokens"] == 500 // 50


def test_items_can_be_created_retrieved_truncated_and_deleted() -> None:
    async def body(server: SimulatorServer) -> dict[str, Any]:
        async with connect(f"{server.url}/realtime?model=gpt-realtime") as ws:
            await next_of(ws, "session.created")
            user = {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hi there"}],
            }
            await ws.send(json.dumps({"type": "conversation.item.create", "item": user}))
            created = (await next_of(ws, "conversation.item.done"))["item"]
            await ws.send(
                json.dumps({"type": "response.create", "response": {"metadata": {"topic": "test"}}})
            )
            reply = (await next_of(ws, "response.done"))["response"]
            said = reply["output"][0]
            await ws.send(
                json.dumps(
                    {
                        "type": "conversation.item.truncate",
                        "item_id": said["id"],
                        "content_index": 0,
                        "audio_end_ms": 500,
                    }
                )
            )
            truncated = await next_of(ws, "conversation.item.truncated")
            await ws.send(json.dumps({"type": "conversation.item.retrieve", "item_id": said["id"]}))
            retrieved = (await next_of(ws, "conversation.item.retrieved"))["item"]
            await ws.send(
                json.dumps({"type": "conversation.item.delete", "item_id": created["id"]})
            )
            deleted = await next_of(ws, "conversation.item.deleted")
            await ws.send(
                json.dumps({"type": "conversation.item.retrieve", "item_id": created["id"]})
            )
            missing = (await next_of(ws, "error"))["error"]
            return {
                "reply": reply,
                "truncated": truncated,
                "retrieved": retrieved,
                "deleted": deleted,
                "missing": missing,
                "created": created,
            }

    seen = with_simulator(body)
    assert seen["reply"]["metadata"] == {"topic": "test"}
    assert (
        seen["reply"]["output"][0]["content"][0]["transcript"]
        == "I'm an AI assistant. How can I help?"
    )
    assert seen["truncated"]["audio_end_ms"] == 500
    content = seen["retrieved"]["content"][0]
    assert content["transcript"] == "" and len(base64.b64decode(content["audio"])) == 500 * 48
    assert seen["deleted"]["item_id"] == seen["created"]["id"]
    assert seen["missing"]["code"] == "item_not_found"


def test_server_vad_turns_speech_into_a_user_item_and_a_reply() -> None:
    async def body(server: SimulatorServer) -> list[dict[str, Any]]:
        async with connect(f"{server.url}/realtime") as ws:
            await next_of(ws, "session.created")
            for chunk in (tone(600), silence(700)):
                await ws.send(
                    json.dumps(
                        {
                            "type": "input_audio_buffer.append",
                            "audio": base64.b64encode(chunk).decode(),
                        }
                    )
                )
            events = []
            while not events or events[-1]["type"] != "response.done":
                events.append(json.loads(await ws.recv()))
            return events

    events = with_simulator(body)
    kinds = [e["type"] for e in events]
    assert kinds[:5] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert events[0]["audio_start_ms"] == 0 and events[1]["audio_end_ms"] == 600 + 500
    assert events[0]["item_id"] == events[2]["item_id"] == events[3]["item"]["id"]
    assert events[3]["item"]["content"] == [{"type": "input_audio", "transcript": None}]
    assert (
        "conversation.item.input_audio_transcription.completed" not in kinds
    )  # transcription is off by default
    assert events[-1]["response"]["usage"]["input_token_details"]["audio_tokens"] == 11


def test_sideband_socket_joins_the_call_and_sees_its_events() -> None:
    async def body(server: SimulatorServer) -> tuple[list[str], list[str], dict[str, Any]]:
        url = f"{server.url}/realtime?call_id=rtc_test123&scenario=support_disclosure_en"
        async with connect(url) as primary:
            created = await next_of(primary, "session.created")
            async with connect(f"{server.url}/realtime?call_id=rtc_test123") as sideband:
                await sideband.send(
                    json.dumps(
                        {
                            "type": "session.update",
                            "session": {"type": "realtime", "instructions": "Be brief."},
                        }
                    )
                )
                await next_of(primary, "session.updated")
                await primary.send(json.dumps({"type": "response.create"}))
                seen = {"primary": [], "sideband": []}
                for name, ws in (("primary", primary), ("sideband", sideband)):
                    while not seen[name] or seen[name][-1] != "output_audio_buffer.stopped":
                        seen[name].append(json.loads(await ws.recv())["type"])
            return seen["primary"], seen["sideband"], created

    primary, sideband, created = with_simulator(body)
    assert created["session"]["id"].startswith("sess_")
    assert "session.created" not in sideband and sideband[0] == "session.updated"
    assert sideband[1:] == primary
    assert (
        primary.index("output_audio_buffer.started")
        < primary.index("response.done")
        < primary.index("output_audio_buffer.stopped")
    )


def test_handshake_checks_path_scenario_and_picks_the_realtime_subprotocol() -> None:
    async def body(server: SimulatorServer) -> tuple[int, int, str | None]:
        statuses = []
        for url in (
            f"ws://127.0.0.1:{server.port}/v2/other",
            f"{server.url}/realtime?scenario=nope",
        ):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url):
                    pass
            statuses.append(refused.value.response.status_code)
        offered = ["realtime", "openai-insecure-api-key.sk-abc", "openai-beta.realtime-v1"]
        headers = {"Authorization": "Bearer sk-whatever"}
        async with connect(
            f"{server.url}/realtime?model=gpt-realtime",
            subprotocols=offered,
            additional_headers=headers,
        ) as ws:
            await next_of(ws, "session.created")
            return statuses[0], statuses[1], ws.subprotocol

    assert with_simulator(body) == (404, 400, "realtime")


# -- scenarios and CLI -----------------------------------------------------------------------------


def test_invalid_scenarios_name_the_file_and_field() -> None:
    broken = {
        "name": "broken",
        "description": "x",
        "language": "en",
        "instructions": "x",
        "turns": [{"user": "hi"}, {"assistant": {"function_call": {"name": "missing_tool"}}}],
    }
    with pytest.raises(
        ScenarioError,
        match=r"broken\.yaml: invalid scenario: .*function 'missing_tool' is not in tools",
    ):
        parse_scenario(broken, "broken.yaml")
    with pytest.raises(ScenarioError, match=r"turns\.0\.user\.text"):
        parse_scenario({**broken, "turns": [{"user": {"text": ""}}]}, "broken.yaml")
    with pytest.raises(
        ScenarioError, match="unknown scenario 'nope'; shipped scenarios: barge_in_en"
    ):
        load_scenario("nope")


def test_cli_command_is_the_simulate_upstream_subcommand() -> None:
    assert command.name == "simulate-upstream"
    help_text = CliRunner().invoke(command, ["--help"]).output
    for option in ("--host", "--port", "--fast / --real-time"):
        assert option in help_text


def test_public_api_is_small_and_explicit() -> None:
    import voxledger.ingest.simulator as simulator

    assert sorted(simulator.__all__) == [
        "AssistantTurn",
        "Scenario",
        "ScenarioError",
        "SimulatorError",
        "SimulatorServer",
        "UserTurn",
        "is_beta_model",
        "load_all_scenarios",
        "load_scenario",
        "parse_scenario",
        "run_simulator",
        "scenario_names",
        "start_simulator",
    ]
