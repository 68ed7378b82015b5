"""Plays the caller's side of scripted scenarios against any Realtime endpoint, via the SDK."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from openai import AsyncOpenAI

from voxledger.ingest.simulator.audio import bytes_per_ms, silence, tone
from voxledger.ingest.simulator.scenarios import AssistantTurn, Scenario, UserTurn, load_scenario

CHUNK_MS = 20
EVENT_TIMEOUT_S = 30.0  # longest quiet gap tolerated between two server events
VAD_TAIL_MS = 300  # silence beyond silence_duration_ms, so server VAD surely ends the turn
AUDIO_DELTAS = ("response.output_audio.delta", "response.audio.delta")


class ScenarioAborted(Exception):
    """The server stopped the script early (an error instead of a response, or a timeout)."""


@dataclass
class ScenarioResult:
    """What one scripted call did, as seen by the caller."""

    scenario: str
    model: str
    session_id: str | None = None
    event_counts: Counter[str] = field(default_factory=Counter)
    client_events_sent: int = 0
    responses: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] | None = None
    completed: bool = False
    aborted: str | None = None

    @property
    def events_received(self) -> int:
        return sum(self.event_counts.values())


@cache
def _speech_chunks() -> tuple[str, ...]:
    """One second of caller voice as 20 ms base64 chunks, cycled for any turn length."""
    second = tone(1000)
    size = CHUNK_MS * bytes_per_ms("audio/pcm")
    return tuple(
        base64.b64encode(second[i : i + size]).decode("ascii") for i in range(0, len(second), size)
    )


@cache
def _silence_chunk() -> str:
    return base64.b64encode(silence(CHUNK_MS)).decode("ascii")


def session_config(scenario: Scenario) -> dict[str, Any]:
    """The `session.update` body a real app would send for this scenario (GA or beta shape)."""
    transcription = (
        {"model": scenario.transcription_model, "language": scenario.language}
        if scenario.transcription_model
        else None
    )
    detection = _turn_detection(scenario)
    if scenario.is_beta:
        return {
            "instructions": scenario.instructions,
            "modalities": ["text", "audio"] if "audio" in scenario.output_modalities else ["text"],
            "voice": scenario.voice,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "input_audio_transcription": transcription,
            "turn_detection": detection,
            "tools": scenario.tools_json(),
        }
    pcm = {"type": "audio/pcm", "rate": 24000}
    truncation = scenario.truncation
    return {
        "type": "realtime",
        "instructions": scenario.instructions,
        "output_modalities": list(scenario.output_modalities),
        "audio": {
            "input": {"format": pcm, "transcription": transcription, "turn_detection": detection},
            "output": {"format": pcm, "voice": scenario.voice},
        },
        "tools": scenario.tools_json(),
        "truncation": truncation
        if isinstance(truncation, str)
        else truncation.model_dump(exclude_none=True),
    }


def _turn_detection(scenario: Scenario) -> dict[str, Any] | None:
    if scenario.turn_detection == "none":
        return None
    if scenario.turn_detection == "semantic_vad":
        return {"type": "semantic_vad", "create_response": True, "interrupt_response": True}
    return {
        "type": "server_vad",
        "silence_duration_ms": scenario.silence_duration_ms,
        "create_response": True,
        "interrupt_response": True,
    }


class _Caller:
    """Drives one connection: streams the user's turns and follows the assistant's replies."""

    def __init__(
        self, connection: Any, scenario: Scenario, result: ScenarioResult, fast: bool
    ) -> None:
        self.connection = connection
        self.scenario = scenario
        self.result = result
        self.fast = fast
        self._inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())
        self._started: list[str] = []  # response ids, in response.created order
        self._claimed = 0
        self._done: dict[str, dict[str, Any]] = {}
        self._audio_ms: Counter[str] = Counter()
        self._audio_item: dict[str, str] = {}
        self._first_audio_at: dict[str, float] = {}
        self._interrupted: tuple[str, int] | None = None  # (item_id, ms heard) awaiting truncate
        self._truncate_due = False

    # -- receiving -------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            while True:
                self._inbox.put_nowait(json.loads(await self.connection.recv_bytes()))
        except Exception:  # closed, by either side: the driver sees the end marker
            self._inbox.put_nowait(None)

    async def _next(self, waiting_for: str) -> dict[str, Any]:
        try:
            event = await asyncio.wait_for(self._inbox.get(), EVENT_TIMEOUT_S)
        except TimeoutError:
            raise ScenarioAborted(f"timed out waiting for {waiting_for}") from None
        if event is None:
            self._inbox.put_nowait(None)
            raise ScenarioAborted(f"connection closed while waiting for {waiting_for}")
        self._note(event)
        await self._send_due_truncate()
        return event

    async def _drain(self) -> None:
        """Handle whatever already arrived, without waiting."""
        while not self._inbox.empty():
            event = self._inbox.get_nowait()
            if event is None:
                self._inbox.put_nowait(None)
                return
            self._note(event)
        await self._send_due_truncate()

    def _note(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "?")
        self.result.event_counts[kind] += 1
        if self.result.events is not None:
            self.result.events.append(event)
        if kind == "session.created":
            self.result.session_id = event["session"].get("id")
        elif kind == "error":
            self.result.errors.append(event["error"])
        elif kind == "response.created":
            self._started.append(event["response"]["id"])
        elif kind == "response.done":
            self._done[event["response"]["id"]] = event["response"]
            self.result.responses.append(event["response"])
        elif kind in AUDIO_DELTAS:
            self._heard_audio(event)
        elif kind == "input_audio_buffer.speech_started" and self._interrupted:
            self._truncate_due = True

    def _heard_audio(self, event: dict[str, Any]) -> None:
        delta = event["delta"]
        raw_bytes = len(delta) * 3 // 4 - delta[-2:].count("=")
        response_id = event["response_id"]
        self._audio_ms[response_id] += raw_bytes / bytes_per_ms("audio/pcm")
        self._audio_item[response_id] = event["item_id"]
        self._first_audio_at.setdefault(response_id, time.monotonic())

    # -- sending ---------------------------------------------------------------------------

    async def _count(self, sent: Any) -> None:
        await sent
        self.result.client_events_sent += 1

    async def _send_due_truncate(self) -> None:
        """Tell the server how much of the interrupted reply the caller actually heard."""
        if self._truncate_due and self._interrupted:
            item_id, heard_ms = self._interrupted
            self._interrupted, self._truncate_due = None, False
            truncate = self.connection.conversation.item.truncate
            await self._count(truncate(item_id=item_id, content_index=0, audio_end_ms=heard_ms))

    # -- the script ------------------------------------------------------------------------

    async def play(self) -> None:
        await self._expect("session.created")
        await self._count(self.connection.session.update(session=session_config(self.scenario)))
        await self._expect("session.updated")
        turns = self.scenario.turns
        reply_requested = False  # whether the server will answer without a response.create
        for index, turn in enumerate(turns):
            following = turns[index + 1] if index + 1 < len(turns) else None
            another_reply = following is not None and following.assistant is not None
            if turn.user:
                await self._speak(turn.user, replied=another_reply)
                reply_requested = True
            elif turn.assistant:
                if not reply_requested:
                    await self._count(self.connection.response.create())
                reply_requested = await self._follow(turn.assistant, another_reply)
        await self._expect("rate_limits.updated", required=False)
        self.result.completed = True

    async def _expect(self, kind: str, required: bool = True) -> dict[str, Any] | None:
        while True:
            try:
                event = await self._next(kind)
            except ScenarioAborted:
                if required:
                    raise
                return None
            if event["type"] == kind:
                return event
            if event["type"] == "error" and required and kind.startswith("session."):
                raise ScenarioAborted(f"server error: {event['error'].get('message')}")

    async def _speak(self, turn: UserTurn, replied: bool) -> None:
        if turn.mode == "text":
            item = {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": turn.text}],
            }
            await self._count(self.connection.conversation.item.create(item=item))
            if replied:
                await self._count(self.connection.response.create())
            return
        speech = _speech_chunks()
        chunks = [speech[n % len(speech)] for n in range(max(1, turn.speech_ms() // CHUNK_MS))]
        if self.scenario.turn_detection != "none":
            tail = (self.scenario.silence_duration_ms + VAD_TAIL_MS) // CHUNK_MS
            chunks += [_silence_chunk()] * tail
        await self._stream(chunks)
        if self.scenario.turn_detection == "none":
            await self._count(self.connection.input_audio_buffer.commit())
            if replied:
                await self._count(self.connection.response.create())

    async def _stream(self, chunks: Sequence[str]) -> None:
        started = time.monotonic()
        for n, chunk in enumerate(chunks):
            await self._count(self.connection.input_audio_buffer.append(audio=chunk))
            if not self.fast:
                await asyncio.sleep(
                    max(0.0, started + (n + 1) * CHUNK_MS / 1000 - time.monotonic())
                )
            await self._drain()

    async def _follow(self, reply: AssistantTurn, another_reply_follows: bool) -> bool:
        """Wait out one scripted reply: barge in on it, or answer its function call.

        Returns True when it already asked for the next reply (after a function call output).
        """
        response_id = await self._claim_response()
        if reply.barge_in_after_ms and await self._heard_enough(
            response_id, reply.barge_in_after_ms
        ):
            self._interrupted = (self._audio_item[response_id], self._heard_ms(response_id))
            return False  # the next user turn talks over it; its response.done comes meanwhile
        response = await self._finished(response_id)
        call = next(
            (item for item in response.get("output", []) if item.get("type") == "function_call"),
            None,
        )
        if reply.function_call and call:
            output = {
                "type": "function_call_output",
                "call_id": call["call_id"],
                "output": reply.function_call.output_json(),
            }
            await self._count(self.connection.conversation.item.create(item=output))
            if another_reply_follows:
                await self._count(self.connection.response.create())
                return True
        return False

    async def _claim_response(self) -> str:
        """The id of the next response the server starts; an error instead means it never will."""
        while len(self._started) <= self._claimed:
            event = await self._next("response.created")
            if event["type"] == "error":
                raise ScenarioAborted(
                    f"server error instead of a response: {event['error'].get('message')}"
                )
        self._claimed += 1
        return self._started[self._claimed - 1]

    async def _heard_enough(self, response_id: str, ms: int) -> bool:
        while self._audio_ms[response_id] < ms:
            if response_id in self._done:
                return False
            await self._next("assistant audio")
        return True

    def _heard_ms(self, response_id: str) -> int:
        received = self._audio_ms[response_id]
        if self.fast:
            return int(received)
        played = (time.monotonic() - self._first_audio_at[response_id]) * 1000
        return int(min(received, played))

    async def _finished(self, response_id: str) -> dict[str, Any]:
        while response_id not in self._done:
            await self._next("response.done")
        return self._done[response_id]

    async def close(self) -> None:
        await self._drain()
        self._reader.cancel()


async def run_scenario(
    scenario: Scenario | str,
    *,
    base_url: str,
    api_key: str,
    fast: bool = True,
    extra_query: dict[str, str] | None = None,
    record_events: bool = False,
) -> ScenarioResult:
    """Play a scenario's caller side over `base_url` (a simulator, a proxy, or OpenAI itself)."""
    if isinstance(scenario, str):
        scenario = load_scenario(scenario)
    client = AsyncOpenAI(api_key=api_key, websocket_base_url=base_url)
    result = ScenarioResult(scenario.name, scenario.model, events=[] if record_events else None)
    # Preview models go through the beta SDK surface, which adds `OpenAI-Beta: realtime=v1`.
    realtime: Any = client.beta.realtime if scenario.is_beta else client.realtime
    query = {"scenario": scenario.name, **(extra_query or {})}
    async with realtime.connect(model=scenario.model, extra_query=query) as connection:
        caller = _Caller(connection, scenario, result, fast)
        try:
            await caller.play()
        except ScenarioAborted as exc:
            result.aborted = str(exc)
        finally:
            await caller.close()
    await client.close()
    return result


async def run_scenarios(
    names_or_scenarios: Iterable[Scenario | str],
    concurrency: int,
    *,
    base_url: str,
    api_key: str,
    fast: bool = True,
    extra_query: dict[str, str] | None = None,
    record_events: bool = False,
) -> list[ScenarioResult]:
    """Load generation: play many scenarios, at most `concurrency` at once; results in order."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(scenario: Scenario | str) -> ScenarioResult:
        async with gate:
            return await run_scenario(
                scenario,
                base_url=base_url,
                api_key=api_key,
                fast=fast,
                extra_query=extra_query,
                record_events=record_events,
            )

    return list(await asyncio.gather(*(one(s) for s in names_or_scenarios)))
