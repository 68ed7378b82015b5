"""One Realtime session (a call): client events in, server events out to every attached socket."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from voxledger.ingest.simulator.audio import bytes_per_ms
from voxledger.ingest.simulator.conversation import (
    Conversation,
    Item,
    Part,
    PromptCache,
    Tokens,
    fit_context,
    new_id,
    text_tokens,
)
from voxledger.ingest.simulator.dialect import Dialect
from voxledger.ingest.simulator.exceptions import ClientEventError
from voxledger.ingest.simulator.input_audio import MIN_COMMIT_MS, InputAudio, Segment
from voxledger.ingest.simulator.limits import ContextLimits, context_limits
from voxledger.ingest.simulator.responses import ResponseRun, plan_reply
from voxledger.ingest.simulator.scenarios import AssistantTurn, Scenario

log = logging.getLogger(__name__)

GENERIC_USER_TRANSCRIPT = "Hello, can you help me?"
RATE_LIMIT_REQUESTS = 5000
RATE_LIMIT_TOKENS = 800_000
DURATION_BILLED_TRANSCRIBERS = ("whisper-1", "gpt-realtime-whisper")

Listener = Callable[[str], None]


class Script:
    """The scenario's side of the talk: assistant replies, and what each spoken user turn said."""

    def __init__(self, scenario: Scenario | None) -> None:
        self.scenario = scenario
        self._replies: deque[AssistantTurn] = deque(scenario.assistant_turns() if scenario else [])
        self._heard: deque[str] = (
            deque(t.text for t in scenario.spoken_user_turns()) if scenario else deque()
        )

    def next_reply(self) -> AssistantTurn | None:
        """The next scripted reply; None once the script is spent (a generic reply follows)."""
        return self._replies.popleft() if self._replies else None

    def next_heard(self) -> str:
        return self._heard.popleft() if self._heard else GENERIC_USER_TRANSCRIPT

    def mcp_tools(self, server_label: str) -> list[dict[str, Any]]:
        """What an MCP server lists: the tools the script calls there, typed by their arguments."""
        calls = (
            [t.mcp_call for t in self.scenario.assistant_turns() if t.mcp_call]
            if self.scenario
            else []
        )
        tools: dict[str, dict[str, Any]] = {}
        for call in calls:
            if call.server_label == server_label:
                properties = {k: {"type": _json_type(v)} for k, v in call.arguments.items()}
                tools[call.name] = {
                    "name": call.name,
                    "description": f"{call.name.replace('_', ' ')} on {server_label}",
                    "input_schema": {"type": "object", "properties": properties},
                    "annotations": None,
                }
        return list(tools.values()) or [
            {
                "name": "search",
                "description": "Search the knowledge base",
                "annotations": None,
                "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
            }
        ]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "number", list: "array", dict: "object"}.get(
        type(value), "string"
    )


class RealtimeSession:
    """Server state for one session; `receive` handles a client frame, `emit` fans events out."""

    def __init__(
        self,
        *,
        model: str,
        dialect: Dialect,
        scenario: Scenario | None,
        fast: bool,
        call_id: str | None = None,
    ) -> None:
        self.id = new_id("sess")
        self.model = model
        self.dialect = dialect
        self.fast = fast
        self.call_id = call_id
        self.script = Script(scenario)
        self.config = dialect.default_session(self.id, model)
        self.conversation = Conversation()
        self.cache = PromptCache()
        self.audio_in = InputAudio()
        self.active: ResponseRun | None = None
        self.limits = self._limits(model, scenario)
        self._listeners: list[Listener] = []
        self._pending_user_item: str | None = None
        self._voice_locked = False
        self._listed_mcp: set[str] = set()
        self._spent_tokens: deque[tuple[float, int]] = deque()
        self._requests = 0
        self._last_response_id: str | None = None

    @property
    def is_call(self) -> bool:
        """WebRTC/SIP calls (joined by `call_id`) also get `output_audio_buffer.*` events."""
        return self.call_id is not None

    @staticmethod
    def _limits(model: str, scenario: Scenario | None) -> ContextLimits:
        limits = context_limits(model)
        if scenario and scenario.context_window:
            return limits.with_window(scenario.context_window)
        return limits

    # -- wiring ----------------------------------------------------------------------------

    def attach(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def detach(self, listener: Listener) -> bool:
        """Returns True when nobody is left on the call."""
        self._listeners.remove(listener)
        return not self._listeners

    def start(self) -> None:
        self.emit("session.created", session=self.config)
        if self.dialect.announces_conversation:
            self.emit(
                "conversation.created",
                conversation={"id": self.conversation.id, "object": "realtime.conversation"},
            )

    def close(self) -> None:
        if self.active:
            self.active.abandon()
            self.active = None

    def emit(self, event_type: str, *, only: Listener | None = None, **fields: Any) -> None:
        frame = json.dumps({"type": event_type, "event_id": new_id("event"), **fields})
        for listener in [only] if only else list(self._listeners):
            listener(frame)

    # -- client events ---------------------------------------------------------------------

    def receive(self, frame: str | bytes, sender: Listener) -> None:
        """Handle one client frame; a bad one gets an `error` event and the socket stays open."""
        client_event_id = None
        try:
            event = _parse(frame)
            client_event_id = (
                event.get("event_id") if isinstance(event.get("event_id"), str) else None
            )
            handler = self._handlers().get(event["type"])
            if handler is None:
                raise ClientEventError(
                    "invalid_value",
                    f"Invalid value: '{event['type']}'. Supported values are: "
                    + ", ".join(f"'{name}'" for name in self._handlers())
                    + ".",
                    "type",
                )
            handler(event, sender)
        except ClientEventError as exc:
            error = {
                "type": "invalid_request_error",
                "code": exc.code,
                "message": exc.message,
                "param": exc.param,
                "event_id": client_event_id,
            }
            self.emit("error", only=sender, error=error)

    def _handlers(self) -> dict[str, Callable[[dict[str, Any], Listener], None]]:
        return {
            "session.update": self._update_session,
            "input_audio_buffer.append": self._append_audio,
            "input_audio_buffer.commit": self._commit_audio,
            "input_audio_buffer.clear": self._clear_audio,
            "output_audio_buffer.clear": self._clear_output_audio,
            "conversation.item.create": self._create_item,
            "conversation.item.retrieve": self._retrieve_item,
            "conversation.item.truncate": self._truncate_item,
            "conversation.item.delete": self._delete_item,
            "response.create": self._create_response,
            "response.cancel": self._cancel_response,
        }

    def _update_session(self, event: dict[str, Any], sender: Listener) -> None:
        update = _required(event, "session")
        self.config = self.dialect.merge_session(self.config, update, self._voice_locked)
        self.emit("session.updated", session=self.config)
        if self.dialect.has_mcp:
            self._list_mcp_tools()

    def _list_mcp_tools(self) -> None:
        """A newly configured MCP server gets its tools listed, as an `mcp_list_tools` item."""
        for tool in self.dialect.tools(self.config):
            label = tool.get("server_label")
            if tool.get("type") != "mcp" or label in self._listed_mcp:
                continue
            self._listed_mcp.add(label)
            item = Item(
                new_id("mcpl"), "mcp_list_tools", fields={"server_label": label, "tools": []}
            )
            previous = self.conversation.add(item)
            self.emit(
                self.dialect.item_added,
                previous_item_id=previous,
                item=self.dialect.render_item(item),
            )
            self.emit("mcp_list_tools.in_progress", item_id=item.id)
            if tool.get("server_url") or tool.get("connector_id") or tool.get("tunnel_id"):
                allowed = tool.get("allowed_tools")
                listed = self.script.mcp_tools(label)
                if isinstance(allowed, list):
                    listed = [t for t in listed if t["name"] in allowed]
                item.fields["tools"] = listed
                item.version += 1
                self.emit("mcp_list_tools.completed", item_id=item.id)
            else:
                self.emit("mcp_list_tools.failed", item_id=item.id)
            self.emit(
                "conversation.item.done",
                previous_item_id=previous,
                item=self.dialect.render_item(item),
            )

    # -- input audio -----------------------------------------------------------------------

    def _append_audio(self, event: dict[str, Any], sender: Listener) -> None:
        audio = _required(event, "audio")
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise ClientEventError(
                "invalid_value", "Invalid 'audio': expected base64-encoded audio bytes.", "audio"
            ) from None
        vad = self.dialect.turn_detection(self.config)
        for edge in self.audio_in.append(data, self._input_format(), vad):
            if edge.kind == "speech_started":
                self._speech_started(edge.at_ms, vad or {})
            else:
                self._speech_stopped(edge.at_ms, vad or {})

    def _input_format(self) -> str:
        return self.dialect.input_format(self.config)

    def _speech_started(self, at_ms: int, vad: dict[str, Any]) -> None:
        self._pending_user_item = new_id("item")
        self.emit(
            "input_audio_buffer.speech_started",
            audio_start_ms=at_ms,
            item_id=self._pending_user_item,
        )
        if (
            self.active
            and vad.get("interrupt_response", True)
            and not self.active.options.out_of_band
        ):
            if self.is_call and self.active.audio_started:
                self.emit("output_audio_buffer.cleared", response_id=self.active.id)
            self.active.finish("cancelled", "turn_detected")

    def _speech_stopped(self, at_ms: int, vad: dict[str, Any]) -> None:
        item_id = self._pending_user_item or new_id("item")
        self.emit("input_audio_buffer.speech_stopped", audio_end_ms=at_ms, item_id=item_id)
        segment = self.audio_in.take_speech(at_ms, self._input_format())
        self._add_user_audio(item_id, segment)
        if vad.get("create_response", True) and self.active is None:
            self._respond({}, None)

    def _commit_audio(self, event: dict[str, Any], sender: Listener) -> None:
        buffered = self.audio_in.buffered_ms(self._input_format())
        if buffered < MIN_COMMIT_MS:
            raise ClientEventError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least 100ms "
                f"of audio, but buffer only has {buffered:.2f}ms of audio.",
            )
        item_id = (self._pending_user_item if self.audio_in.speaking else None) or new_id("item")
        self._add_user_audio(item_id, self.audio_in.take_all(self._input_format()))

    def _clear_audio(self, event: dict[str, Any], sender: Listener) -> None:
        self.audio_in.clear()
        self._pending_user_item = None
        self.emit("input_audio_buffer.cleared")

    def _add_user_audio(self, item_id: str, segment: Segment) -> None:
        self._pending_user_item = None
        part = Part("input_audio", text=None, audio_ms=segment.duration_ms, audio=segment.audio)
        item = Item(item_id, "message", role="user", parts=[part])
        previous = self.conversation.add(item)
        self.emit("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id)
        self._announce_item(item, previous)
        self._transcribe(item, part)

    def _transcribe(self, item: Item, part: Part) -> None:
        model = self.dialect.transcription_model(self.config)
        if not model:
            return
        heard = self.script.next_heard()
        by_duration = model in DURATION_BILLED_TRANSCRIBERS
        # whisper-1 sends the whole transcript as one delta; gpt-4o-*transcribe streams words.
        for delta in [heard] if by_duration else _words(heard):
            self.emit(
                "conversation.item.input_audio_transcription.delta",
                item_id=item.id,
                content_index=0,
                delta=delta,
            )
        part.text = heard
        item.version += 1
        self.emit(
            "conversation.item.input_audio_transcription.completed",
            item_id=item.id,
            content_index=0,
            transcript=heard,
            usage=_transcription_usage(by_duration, part.audio_ms, heard),
        )

    def _clear_output_audio(self, event: dict[str, Any], sender: Listener) -> None:
        if not self.is_call:
            raise ClientEventError(
                "unsupported_event",
                "output_audio_buffer.clear is only supported for WebRTC and SIP calls.",
                "type",
            )
        if self.active:
            self.active.finish("cancelled", "client_cancelled")
        self.emit("output_audio_buffer.cleared", response_id=self._last_response_id or "")

    # -- conversation items ----------------------------------------------------------------

    def _announce_item(self, item: Item, previous: str | None) -> None:
        rendered = self.dialect.render_item(item)
        self.emit(self.dialect.item_added, previous_item_id=previous, item=rendered)
        if self.dialect.item_done:
            self.emit(self.dialect.item_done, previous_item_id=previous, item=rendered)

    def previous_item_id(self, item: Item) -> str | None:
        items = self.conversation.items
        index = items.index(item) if item in items else 0
        return items[index - 1].id if index else None

    def _create_item(self, event: dict[str, Any], sender: Listener) -> None:
        item = _item_from_client(_required(event, "item"), bytes_per_ms(self._input_format()))
        previous = self.conversation.add(item, event.get("previous_item_id"))
        self._announce_item(item, previous)

    def _retrieve_item(self, event: dict[str, Any], sender: Listener) -> None:
        item = self.conversation.get(_required(event, "item_id"))
        self.emit(
            "conversation.item.retrieved",
            only=sender,
            item=self.dialect.render_item(item, with_audio=True),
        )

    def _delete_item(self, event: dict[str, Any], sender: Listener) -> None:
        item_id = _required(event, "item_id")
        self.conversation.delete(item_id)
        self.emit("conversation.item.deleted", item_id=item_id)

    def _truncate_item(self, event: dict[str, Any], sender: Listener) -> None:
        item = self.conversation.get(_required(event, "item_id"))
        content_index, audio_end_ms = (
            _required(event, "content_index"),
            _required(event, "audio_end_ms"),
        )
        if item.role != "assistant":
            raise ClientEventError(
                "invalid_value", "Only assistant messages can be truncated.", "item_id"
            )
        if not isinstance(content_index, int) or not 0 <= content_index < len(item.parts):
            raise ClientEventError(
                "invalid_value", f"Invalid content_index: {content_index}.", "content_index"
            )
        part = item.parts[content_index]
        if part.kind != "output_audio" or not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            raise ClientEventError(
                "invalid_value", "Only audio content can be truncated.", "audio_end_ms"
            )
        if audio_end_ms > part.audio_ms:
            raise ClientEventError(
                "invalid_value",
                f"Audio content of {int(part.audio_ms)}ms is already shorter than {audio_end_ms}ms",
                "audio_end_ms",
            )
        # The server drops the transcript so no unheard text stays in the model's context.
        part.audio_ms, part.text = float(audio_end_ms), ""
        item.version += 1
        self.emit(
            "conversation.item.truncated",
            item_id=item.id,
            content_index=content_index,
            audio_end_ms=audio_end_ms,
        )

    # -- responses -------------------------------------------------------------------------

    def _create_response(self, event: dict[str, Any], sender: Listener) -> None:
        params = event.get("response") or {}
        if not isinstance(params, dict):
            raise ClientEventError(
                "invalid_type", "Invalid type for 'response': expected an object.", "response"
            )
        self._respond(params, sender)

    def _cancel_response(self, event: dict[str, Any], sender: Listener) -> None:
        wanted = event.get("response_id")
        if self.active is None or (wanted and wanted != self.active.id):
            raise ClientEventError(
                "response_cancel_not_active", "Cancellation failed: no active response found."
            )
        self.active.finish("cancelled", "client_cancelled")

    def _respond(self, params: dict[str, Any], sender: Listener | None) -> None:
        if self.active:
            if sender is None:
                return  # VAD asked while the model is still talking; nothing to do
            raise ClientEventError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        options = self.dialect.response_options(self.config, params)
        instructions = text_tokens(options.instructions) + text_tokens(
            json.dumps(self.dialect.tools(self.config))
        )
        truncation = self.dialect.truncation(self.config)
        limit = self.limits.input_token_limit
        if not options.out_of_band and not fit_context(
            self.conversation, instructions, limit, truncation
        ):
            self._context_overflow(instructions)
            return
        turn = None if options.out_of_band else self.script.next_reply()
        prompt_key = (
            "instructions",
            options.instructions,
            json.dumps(self.dialect.tools(self.config)),
        )
        segments = [(prompt_key, Tokens(text=instructions))]
        segments += [
            ((item.id, item.version), item.tokens()) for item in self.conversation.in_context()
        ]
        run = ResponseRun(self, plan_reply(turn), options, self.cache.measure(segments))
        self.active = run
        self._last_response_id = run.id
        run.start()

    def _context_overflow(self, instructions: int) -> None:
        used = instructions + sum(item.tokens().total for item in self.conversation.in_context())
        error = {
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
            "message": (
                f"The conversation has {used} tokens, more than this model's input limit of "
                f"{self.limits.input_token_limit}, and session.truncation is 'disabled'."
            ),
            "param": None,
            "event_id": None,
        }
        self.emit("error", error=error)

    def response_finished(self, run: ResponseRun) -> None:
        if self.active is run:
            self.active = None
        if run.audio_started:
            self._voice_locked = True
        self._requests += 1
        now = time.monotonic()
        self._spent_tokens.append((now, run.read.tokens.total + run.wrote.total))
        while self._spent_tokens and now - self._spent_tokens[0][0] > 60:
            self._spent_tokens.popleft()
        spent = sum(tokens for _, tokens in self._spent_tokens)
        self.emit(
            "rate_limits.updated",
            rate_limits=[
                {
                    "name": "requests",
                    "limit": RATE_LIMIT_REQUESTS,
                    "remaining": max(0, RATE_LIMIT_REQUESTS - self._requests),
                    "reset_seconds": 0.012,
                },
                {
                    "name": "tokens",
                    "limit": RATE_LIMIT_TOKENS,
                    "remaining": max(0, RATE_LIMIT_TOKENS - spent),
                    "reset_seconds": round(spent * 60 / RATE_LIMIT_TOKENS, 3),
                },
            ],
        )


def _parse(frame: str | bytes) -> dict[str, Any]:
    try:
        event = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClientEventError("invalid_json", f"Invalid JSON in client event: {exc}.") from None
    except RecursionError:  # json.loads gives up near 1,000 levels: the socket stays open
        problem = "Invalid JSON in client event: nested too deeply."
        raise ClientEventError("invalid_json", problem) from None
    if not isinstance(event, dict):
        raise ClientEventError("invalid_json", "A client event must be a JSON object.")
    if not isinstance(event.get("type"), str):
        raise ClientEventError(
            "missing_required_parameter", "Missing required parameter: 'type'.", "type"
        )
    return event


def _required(event: dict[str, Any], key: str) -> Any:
    if event.get(key) is None:
        raise ClientEventError(
            "missing_required_parameter", f"Missing required parameter: '{key}'.", key
        )
    return event[key]


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


def _transcription_usage(by_duration: bool, audio_ms: float, transcript: str) -> dict[str, Any]:
    if by_duration:
        return {"type": "duration", "seconds": round(audio_ms / 1000, 2)}
    audio_tokens, output = math.ceil(audio_ms / 100), text_tokens(transcript)
    return {
        "type": "tokens",
        "input_tokens": audio_tokens,
        "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
        "output_tokens": output,
        "total_tokens": audio_tokens + output,
    }


_USER_PARTS = {"input_text", "input_audio", "input_image"}
_ASSISTANT_PARTS = {"output_text", "text"}


def _item_from_client(raw: Any, audio_bytes_per_ms: int) -> Item:
    """Validate a `conversation.item.create` item (assistant audio cannot be created)."""
    if not isinstance(raw, dict):
        raise ClientEventError(
            "invalid_type", "Invalid type for 'item': expected an object.", "item"
        )
    kind = _required(raw, "type") if "type" in raw else "message"
    item_id = raw.get("id") or new_id("item")
    if kind == "message":
        role = _required(raw, "role")
        if role not in ("user", "assistant", "system"):
            raise ClientEventError("invalid_value", f"Invalid value: '{role}'.", "item.role")
        content = _required(raw, "content")
        if not isinstance(content, list):
            raise ClientEventError(
                "invalid_type",
                "Invalid type for 'item.content': expected an array.",
                "item.content",
            )
        parts = [_part_from_client(role, p, n, audio_bytes_per_ms) for n, p in enumerate(content)]
        return Item(item_id, "message", role=role, parts=parts)
    needed = {
        "function_call_output": ("call_id", "output"),
        "function_call": ("call_id", "name", "arguments"),
        "mcp_approval_response": ("approval_request_id", "approve"),
    }
    if kind not in needed:
        raise ClientEventError("invalid_value", f"Invalid value: '{kind}'.", "item.type")
    fields = {key: raw.get(key) for key in needed[kind]}
    for key, value in fields.items():
        if value is None:
            raise ClientEventError(
                "missing_required_parameter",
                f"Missing required parameter: 'item.{key}'.",
                f"item.{key}",
            )
    return Item(item_id, kind, fields=fields)


def _part_from_client(role: str, raw: Any, index: int, audio_bytes_per_ms: int) -> Part:
    kind = raw.get("type") if isinstance(raw, dict) else None
    allowed = (
        _USER_PARTS
        if role == "user"
        else _ASSISTANT_PARTS
        if role == "assistant"
        else {"input_text"}
    )
    if kind not in allowed:
        raise ClientEventError(
            "invalid_value",
            f"Invalid content type {kind!r} for a {role} message.",
            f"item.content[{index}].type",
        )
    if kind == "input_audio":
        try:
            audio = base64.b64decode(raw.get("audio") or "", validate=True)
        except (binascii.Error, ValueError):
            raise ClientEventError(
                "invalid_value", "Invalid base64 audio.", f"item.content[{index}].audio"
            ) from None
        return Part(
            "input_audio",
            text=raw.get("transcript"),
            audio_ms=len(audio) / audio_bytes_per_ms,
            audio=audio,
        )
    if kind == "input_image":
        return Part("input_image", text=raw.get("image_url"))
    return Part("output_text" if role == "assistant" else "input_text", text=raw.get("text") or "")
