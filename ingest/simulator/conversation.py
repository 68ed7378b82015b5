"""The conversation a session holds, and how many tokens it costs the model to read it."""

from __future__ import annotations

import json
import math
import secrets
import string
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from voxledger.ingest.simulator.exceptions import ClientEventError

CACHE_MIN_TOKENS = 1024
CACHE_BLOCK_TOKENS = 64
USER_AUDIO_MS_PER_TOKEN = 100
ASSISTANT_AUDIO_MS_PER_TOKEN = 50

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 22) -> str:
    """OpenAI-style ids: `event_`, `item_`, `resp_`, `sess_`, `conv_`, `call_` + random."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def text_tokens(text: str | None) -> int:
    """About four characters per token, as OpenAI's rule of thumb."""
    return math.ceil(len(text) / 4) if text else 0


@dataclass(frozen=True)
class Tokens:
    text: int = 0
    audio: int = 0

    @property
    def total(self) -> int:
        return self.text + self.audio

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.text + other.text, self.audio + other.audio)


@dataclass
class Part:
    """One content part; `kind` uses GA names (input_audio, output_audio, input_text, ...)."""

    kind: str
    text: str | None = None
    audio_ms: float = 0.0
    audio: bytes | None = None

    def tokens(self) -> Tokens:
        if self.kind == "input_audio":
            return Tokens(audio=math.ceil(self.audio_ms / USER_AUDIO_MS_PER_TOKEN))
        if self.kind == "output_audio":
            return Tokens(audio=math.ceil(self.audio_ms / ASSISTANT_AUDIO_MS_PER_TOKEN))
        return Tokens(text=text_tokens(self.text))


@dataclass
class Item:
    """A conversation item; type-specific fields (name, call_id, output...) live in `fields`."""

    id: str
    type: str
    role: str | None = None
    status: str = "completed"
    parts: list[Part] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    version: int = 0  # bumped on edits so the prompt cache notices changed history

    def tokens(self) -> Tokens:
        if self.type == "message":
            total = Tokens()
            for part in self.parts:
                total = total + part.tokens()
            return total
        if self.type == "mcp_list_tools":
            return Tokens(text=text_tokens(json.dumps(self.fields.get("tools", []))))
        words = [self.fields.get(k) for k in ("name", "arguments", "output")]
        return Tokens(text=sum(text_tokens(w) for w in words if isinstance(w, str)))


class Conversation:
    """Items in order, plus which of them server-side truncation has pushed out of context."""

    def __init__(self) -> None:
        self.id = new_id("conv")
        self.items: list[Item] = []
        self._out_of_context: set[str] = set()

    def get(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        raise ClientEventError(
            "item_not_found", f"Item with item_id not found: {item_id}", "item_id"
        )

    def add(self, item: Item, previous_item_id: str | None = None) -> str | None:
        """Insert after `previous_item_id` (`root`: first, None: last); returns the predecessor."""
        if any(existing.id == item.id for existing in self.items):
            raise ClientEventError(
                "item_already_exists", f"Item with id '{item.id}' already exists.", "item.id"
            )
        if previous_item_id is None:
            index = len(self.items)
        elif previous_item_id == "root":
            index = 0
        else:
            index = self.items.index(self.get(previous_item_id)) + 1
        self.items.insert(index, item)
        return self.items[index - 1].id if index else None

    def delete(self, item_id: str) -> None:
        self.items.remove(self.get(item_id))
        self._out_of_context.discard(item_id)

    def in_context(self) -> list[Item]:
        return [item for item in self.items if item.id not in self._out_of_context]

    def drop_oldest(self, target_tokens: int) -> int:
        """Push the oldest items out of context until the rest fit; keeps the newest item."""
        live = self.in_context()
        remaining = sum(item.tokens().total for item in live)
        dropped = 0
        for item in live[:-1]:
            if remaining <= target_tokens:
                break
            self._out_of_context.add(item.id)
            remaining -= item.tokens().total
            dropped += 1
        return dropped


@dataclass(frozen=True)
class InputUsage:
    """Tokens the model read for one response; cached ones are a subset, per modality."""

    tokens: Tokens
    cached: Tokens


class PromptCache:
    """Remembers the previous prompt, so a response reports the prefix it shares with it."""

    def __init__(self) -> None:
        self._previous: list[tuple[Hashable, Tokens]] = []

    def measure(self, segments: Sequence[tuple[Hashable, Tokens]]) -> InputUsage:
        total, shared = Tokens(), []
        for segment in segments:
            total = total + segment[1]
        for mine, theirs in zip(segments, self._previous, strict=False):
            if mine != theirs:
                break
            shared.append(mine[1])
        self._previous = list(segments)
        return InputUsage(total, _cached_blocks(shared))


def _cached_blocks(shared: list[Tokens]) -> Tokens:
    """Cache hits come in 64-token blocks, and only once the prefix reaches 1024 tokens."""
    prefix = sum(t.total for t in shared)
    budget = prefix // CACHE_BLOCK_TOKENS * CACHE_BLOCK_TOKENS if prefix >= CACHE_MIN_TOKENS else 0
    text = audio = 0
    for segment in shared:
        take_text = min(segment.text, budget)
        budget -= take_text
        take_audio = min(segment.audio, budget)
        budget -= take_audio
        text, audio = text + take_text, audio + take_audio
    return Tokens(text, audio)


@dataclass(frozen=True)
class Truncation:
    """Parsed `session.truncation`: auto, disabled, or a retention ratio with optional limit."""

    mode: str = "auto"
    retention_ratio: float = 1.0
    post_instructions_limit: int | None = None

    @classmethod
    def parse(cls, value: Any) -> Truncation:
        if value in (None, "auto"):
            return cls()
        if value == "disabled":
            return cls(mode="disabled")
        if isinstance(value, dict) and value.get("type") == "retention_ratio":
            limits = value.get("token_limits") or {}
            return cls(
                "retention_ratio", float(value["retention_ratio"]), limits.get("post_instructions")
            )
        raise ClientEventError(
            "invalid_value",
            "Invalid value for 'session.truncation': expected 'auto', 'disabled' or a "
            "retention_ratio object.",
            "session.truncation",
        )


def fit_context(
    conversation: Conversation, instructions_tokens: int, input_limit: int, truncation: Truncation
) -> bool:
    """Drop the oldest items when the prompt overflows; False when truncation is disabled."""
    post_limit = max(0, input_limit - instructions_tokens)
    if truncation.post_instructions_limit is not None:
        post_limit = min(post_limit, truncation.post_instructions_limit)
    used = sum(item.tokens().total for item in conversation.in_context())
    if used <= post_limit:
        return True
    if truncation.mode == "disabled":
        return False
    conversation.drop_oldest(int(post_limit * truncation.retention_ratio))
    return True
