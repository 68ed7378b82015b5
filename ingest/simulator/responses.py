"""One model response as the server streams it: output items, deltas, then `response.done`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voxledger.ingest.simulator.audio import output_chunk_b64
from voxledger.ingest.simulator.conversation import (
    ASSISTANT_AUDIO_MS_PER_TOKEN,
    InputUsage,
    Item,
    Part,
    Tokens,
    new_id,
    text_tokens,
)
from voxledger.ingest.simulator.dialect import ResponseOptions
from voxledger.ingest.simulator.scenarios import ASSISTANT_MS_PER_CHAR, AssistantTurn

if TYPE_CHECKING:
    from voxledger.ingest.simulator.session import RealtimeSession

log = logging.getLogger(__name__)

GENERIC_REPLY = "I'm an AI assistant. How can I help?"
AUDIO_CHUNK_MS = 100
FIRST_AUDIO_DELAY_S = 0.3
MCP_CALL_S = 0.25
TEXT_DELTA_S = 0.03
BARGE_IN_WAIT_S = 10.0  # ample for a busy event loop; stalls only a caller that never barges in
CONTENT_FILTER_CUT = 0.4  # share of the reply spoken before the filter stops it


@dataclass(frozen=True)
class SpokenReply:
    transcript: str
    audio_ms: int
    content_filter: bool = False
    barge_in_after_ms: int | None = None


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str


@dataclass(frozen=True)
class McpToolCall:
    server_label: str
    name: str
    arguments: str
    outcome: str
    output: str | None
    error: str | None


Output = SpokenReply | ToolCall | McpToolCall


def plan_reply(turn: AssistantTurn | None) -> list[Output]:
    """What the model produces for a scripted turn; MCP results come before the words about them."""
    if turn is None:
        return [SpokenReply(GENERIC_REPLY, ASSISTANT_MS_PER_CHAR * len(GENERIC_REPLY))]
    plan: list[Output] = []
    if turn.mcp_call:
        call = turn.mcp_call
        output = call.output if call.output is not None else '{"ok": true}'
        plan.append(
            McpToolCall(
                call.server_label,
                call.name,
                call.arguments_json(),
                call.outcome,
                output,
                call.error,
            )
        )
    if turn.transcript:
        plan.append(
            SpokenReply(
                turn.transcript, turn.speech_ms(), turn.content_filter, turn.barge_in_after_ms
            )
        )
    if turn.function_call:
        plan.append(ToolCall(turn.function_call.name, turn.function_call.arguments_json()))
    return plan


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class ResponseRun:
    """A response in flight; `finish` may be called from outside (cancel, barge-in) at any point."""

    def __init__(
        self,
        session: RealtimeSession,
        plan: list[Output],
        options: ResponseOptions,
        read: InputUsage,
    ) -> None:
        self.id = new_id("resp")
        self.session = session
        self.dialect = session.dialect
        self.plan = plan
        self.options = options
        self.read = read
        self.output: list[Item] = []
        self.wrote = Tokens()
        self.closed = False
        self.audio_started = False
        self._open: tuple[int, Item] | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._emit("response.created", response=self._response_object("in_progress", None, None))
        self._task = asyncio.create_task(self._run(), name=f"realtime-{self.id}")

    def abandon(self) -> None:
        """The session ended: stop silently, nobody is listening."""
        self.closed = True
        self._stop.set()
        if self._task:
            self._task.cancel()

    def finish(self, status: str, reason: str | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        if self._open:
            self._close_open("incomplete")
        details = None if status == "completed" else {"type": status, "reason": reason}
        usage = self.dialect.usage(self.read, self.wrote)
        self._emit("response.done", response=self._response_object(status, details, usage))
        if self.session.is_call and self.audio_started and status == "completed":
            self._emit("output_audio_buffer.stopped", response_id=self.id)
        self.session.response_finished(self)

    async def _run(self) -> None:
        try:
            if not self.session.fast:
                await self._wait_stop(FIRST_AUDIO_DELAY_S)
            for index, output in enumerate(self.plan):
                if self.closed:
                    return
                stopped_by = await self._produce(index, output)
                if stopped_by:
                    self.finish("incomplete", stopped_by)
                    return
            self.finish("completed")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("simulated response %s failed", self.id)
            self.finish("failed")

    async def _produce(self, index: int, output: Output) -> str | None:
        if isinstance(output, SpokenReply):
            return await self._speak(index, output)
        if isinstance(output, ToolCall):
            await self._call_function(index, output)
        else:
            await self._call_mcp(index, output)
        return None

    # -- pacing ----------------------------------------------------------------------------

    async def _wait_stop(self, seconds: float) -> None:
        """Sleep that a cancel or barge-in cuts short."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _pace_until(self, deadline: float) -> None:
        if self.session.fast:
            await asyncio.sleep(0)  # let readers and writers run between chunks
        else:
            await self._wait_stop(deadline - asyncio.get_running_loop().time())

    # -- speech ----------------------------------------------------------------------------

    async def _speak(self, index: int, reply: SpokenReply) -> str | None:
        item = Item(new_id("item"), "message", role="assistant", status="in_progress")
        self._add(index, item)
        part = Part("output_audio" if self.options.speaks else "output_text", text="")
        item.parts.append(part)
        self._emit(
            "response.content_part.added",
            item_id=item.id,
            output_index=index,
            content_index=0,
            part=self.dialect.content_part(part),
            response_id=self.id,
        )
        words = re.findall(r"\S+\s*", reply.transcript)
        audio_ms, stopped_by = reply.audio_ms, None
        if reply.content_filter:
            words, audio_ms = (
                words[: math.ceil(len(words) * CONTENT_FILTER_CUT)],
                audio_ms * CONTENT_FILTER_CUT,
            )
            stopped_by = "content_filter"
        share = self._share_within_budget(reply)
        if share < 1:
            words, audio_ms = words[: int(len(words) * share)], audio_ms * share
            stopped_by = "max_output_tokens"
        if self.options.speaks:
            await self._stream_audio(
                index, item, part, words, int(audio_ms), reply.barge_in_after_ms
            )
        else:
            await self._stream_text(index, item, part, words)
        if self.closed:
            return None
        self._close_open("incomplete" if stopped_by else "completed")
        return stopped_by

    def _share_within_budget(self, reply: SpokenReply) -> float:
        """Fraction of the reply that fits `max_output_tokens` (1.0 when it all fits)."""
        limit = self.options.max_output_tokens
        if not isinstance(limit, int):
            limit = self.session.limits.max_output_tokens  # "inf" means the model's own maximum
        needed = text_tokens(reply.transcript)
        if self.options.speaks:
            needed += math.ceil(reply.audio_ms / ASSISTANT_AUDIO_MS_PER_TOKEN)
        available = max(0, limit - self.wrote.total)
        return 1.0 if needed <= available else available / needed

    async def _stream_audio(
        self,
        index: int,
        item: Item,
        part: Part,
        words: list[str],
        audio_ms: int,
        barge_in_after: int | None,
    ) -> None:
        fmt = self.options.format_name
        chunks = max(1, math.ceil(audio_ms / AUDIO_CHUNK_MS))
        start = asyncio.get_running_loop().time()
        said = 0
        for n in range(chunks):
            chunk_ms = min(AUDIO_CHUNK_MS, audio_ms - n * AUDIO_CHUNK_MS) or AUDIO_CHUNK_MS
            while said < math.ceil(len(words) * (n + 1) / chunks):
                self._say_word(self.dialect.transcript_delta, index, item, part, words[said])
                said += 1
            self._emit(
                self.dialect.audio_delta,
                item_id=item.id,
                output_index=index,
                content_index=0,
                delta=output_chunk_b64(fmt, chunk_ms),
                response_id=self.id,
            )
            self._note_audio_started()
            part.audio_ms += chunk_ms
            if barge_in_after and part.audio_ms >= barge_in_after > part.audio_ms - chunk_ms:
                # Hold the reply here so the scripted interruption lands mid-speech, in any mode.
                await self._wait_stop(BARGE_IN_WAIT_S)
            await self._pace_until(start + (n + 1) * AUDIO_CHUNK_MS / 1000)
            if self.closed:
                return

    async def _stream_text(self, index: int, item: Item, part: Part, words: list[str]) -> None:
        start = asyncio.get_running_loop().time()
        for n, word in enumerate(words):
            self._say_word(self.dialect.text_delta, index, item, part, word)
            await self._pace_until(start + (n + 1) * TEXT_DELTA_S)
            if self.closed:
                return

    def _say_word(self, event: str, index: int, item: Item, part: Part, word: str) -> None:
        part.text = (part.text or "") + word
        self._emit(
            event,
            item_id=item.id,
            output_index=index,
            content_index=0,
            delta=word,
            response_id=self.id,
        )

    def _note_audio_started(self) -> None:
        if not self.audio_started:
            self.audio_started = True
            if self.session.is_call:
                self._emit("output_audio_buffer.started", response_id=self.id)

    # -- tool calls ------------------------------------------------------------------------

    async def _call_function(self, index: int, call: ToolCall) -> None:
        call_id = new_id("call", 16)
        fields = {"name": call.name, "call_id": call_id, "arguments": ""}
        item = Item(new_id("item"), "function_call", status="in_progress", fields=fields)
        self._add(index, item)
        for piece in _pieces(call.arguments, 12):
            fields["arguments"] += piece
            self._emit(
                "response.function_call_arguments.delta",
                item_id=item.id,
                output_index=index,
                call_id=call_id,
                delta=piece,
                response_id=self.id,
            )
            await self._pace_until(asyncio.get_running_loop().time() + TEXT_DELTA_S)
            if self.closed:
                return
        self._close_open("completed")

    async def _call_mcp(self, index: int, call: McpToolCall) -> None:
        fields: dict[str, Any] = {
            "server_label": call.server_label,
            "name": call.name,
            "arguments": "",
            "approval_request_id": None,
            "output": None,
            "error": None,
        }
        item = Item(new_id("mcp"), "mcp_call", status="in_progress", fields=fields)
        self._add(index, item)
        for piece in _pieces(call.arguments, 12):
            fields["arguments"] += piece
            self._emit(
                "response.mcp_call_arguments.delta",
                item_id=item.id,
                output_index=index,
                delta=piece,
                response_id=self.id,
            )
        self._emit(
            "response.mcp_call_arguments.done",
            item_id=item.id,
            output_index=index,
            arguments=fields["arguments"],
            response_id=self.id,
        )
        self._emit("response.mcp_call.in_progress", item_id=item.id, output_index=index)
        await self._wait_stop(0 if self.session.fast else MCP_CALL_S)
        if self.closed:
            return
        if call.outcome == "completed":
            fields["output"] = call.output
            self._emit("response.mcp_call.completed", item_id=item.id, output_index=index)
        else:
            message = call.error or "MCP tool call failed"
            fields["error"] = {"type": "tool_execution_error", "message": message}
            self._emit("response.mcp_call.failed", item_id=item.id, output_index=index)
        self._close_open("completed" if call.outcome == "completed" else "failed")

    # -- items -----------------------------------------------------------------------------

    def _add(self, index: int, item: Item) -> None:
        self.output.append(item)
        self._open = (index, item)
        rendered = self.dialect.render_item(item)
        self._emit(
            "response.output_item.added", output_index=index, item=rendered, response_id=self.id
        )
        if not self.options.out_of_band:
            previous = self.session.conversation.add(item)
            self._emit(self.dialect.item_added, previous_item_id=previous, item=rendered)

    def _close_open(self, status: str) -> None:
        """Emit the `.done` events of the item being produced; partial content is kept."""
        assert self._open is not None
        index, item = self._open
        self._open = None
        item.status = status
        item.version += 1
        if item.type == "message":
            self._close_message(index, item)
        elif item.type == "function_call":
            self._close_function_call(index, item)
        else:
            self.wrote += Tokens(text=text_tokens(item.fields["arguments"]))
        rendered = self.dialect.render_item(item)
        self._emit(
            "response.output_item.done", output_index=index, item=rendered, response_id=self.id
        )
        if self.dialect.item_done and not self.options.out_of_band:
            self._emit(
                self.dialect.item_done,
                previous_item_id=self.session.previous_item_id(item),
                item=rendered,
            )

    def _close_message(self, index: int, item: Item) -> None:
        part = item.parts[0]
        where = {
            "item_id": item.id,
            "output_index": index,
            "content_index": 0,
            "response_id": self.id,
        }
        if part.kind == "output_audio":
            self._emit(self.dialect.audio_done, **where)
            self._emit(self.dialect.transcript_done, transcript=part.text or "", **where)
            audio_tokens = math.ceil(part.audio_ms / ASSISTANT_AUDIO_MS_PER_TOKEN)
            self.wrote += Tokens(text=text_tokens(part.text), audio=audio_tokens)
        else:
            self._emit(self.dialect.text_done, text=part.text or "", **where)
            self.wrote += Tokens(text=text_tokens(part.text))
        self._emit("response.content_part.done", part=self.dialect.content_part(part), **where)

    def _close_function_call(self, index: int, item: Item) -> None:
        fields = item.fields
        done: dict[str, Any] = {
            "item_id": item.id,
            "output_index": index,
            "call_id": fields["call_id"],
            "arguments": fields["arguments"],
            "response_id": self.id,
        }
        if self.dialect.names_function_in_done:
            done["name"] = fields["name"]
        self._emit("response.function_call_arguments.done", **done)
        self.wrote += Tokens(text=text_tokens(fields["name"]) + text_tokens(fields["arguments"]))

    # -- wire ------------------------------------------------------------------------------

    def _response_object(
        self, status: str, details: dict[str, Any] | None, usage: dict[str, Any] | None
    ) -> dict[str, Any]:
        conversation_id = None if self.options.out_of_band else self.session.conversation.id
        output = (
            [self.dialect.render_item(item) for item in self.output]
            if status != "in_progress"
            else []
        )
        return self.dialect.response_object(
            self.id, conversation_id, self.options, status, details, output, usage
        )

    def _emit(self, event_type: str, **fields: Any) -> None:
        self.session.emit(event_type, **fields)
