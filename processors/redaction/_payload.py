"""Where speech and user data sit in a Realtime event: the text fields the redactor rewrites."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any, Literal

import regex

from voxledger.envelope import MAX_EVENT_DEPTH

Kind = Literal["text", "json"]
Path = tuple[str | int, ...]
_SURROGATE = regex.compile(r"[\ud800-\udfff]")  # in a str, every surrogate is a lone one

# Streamed text: delta event → (final event, the final event's field, how to read the text).
STREAMS: dict[str, tuple[str, str, Kind]] = {
    "conversation.item.input_audio_transcription.delta": (
        "conversation.item.input_audio_transcription.completed",
        "transcript",
        "text",
    ),
    "response.output_audio_transcript.delta": (
        "response.output_audio_transcript.done",
        "transcript",
        "text",
    ),
    "response.audio_transcript.delta": ("response.audio_transcript.done", "transcript", "text"),
    "response.output_text.delta": ("response.output_text.done", "text", "text"),
    "response.text.delta": ("response.text.done", "text", "text"),
    "response.function_call_arguments.delta": (
        "response.function_call_arguments.done",
        "arguments",
        "json",
    ),
    "response.mcp_call_arguments.delta": ("response.mcp_call_arguments.done", "arguments", "json"),
}
FINALS: dict[str, str] = {final: delta for delta, (final, _, _) in STREAMS.items()}


def stream_key(delta_type: str, payload: dict[str, Any]) -> str:
    """Which stream a delta or its final event belongs to: one per item and content part."""
    index = payload.get("content_index", payload.get("output_index", 0))
    return f"{delta_type}|{payload.get('item_id') or payload.get('call_id')}|{index}"


def text_fields(event_type: str, payload: dict[str, Any]) -> list[tuple[Path, Kind]]:
    """Every string field of the payload that can carry speech or user data."""
    found: list[tuple[Path, Kind]] = []

    def add(path: Path, kind: Kind = "text") -> None:
        if isinstance(get_path(payload, path), str) and get_path(payload, path):
            found.append((path, kind))

    if event_type in STREAMS:
        add(("delta",), STREAMS[event_type][2])
    elif isinstance(payload.get("delta"), str) and not event_type.endswith("audio.delta"):
        add(("delta",))  # a text stream we do not know yet: redact it rather than keep it
    add(("transcript",))
    add(("text",))
    add(("arguments",), "json")
    add(("raw_text",))
    if isinstance(payload.get("item"), dict):
        found += _item_fields(payload, ("item",))
    for key in ("text", "transcript"):
        add(("part", key))
    response = payload.get("response")
    if isinstance(response, dict):
        add(("response", "instructions"))
        for list_key in ("output", "input"):
            for i, item in enumerate(response.get(list_key) or []):
                if isinstance(item, dict):
                    found += _item_fields(payload, ("response", list_key, i))
    if isinstance(payload.get("session"), dict):
        found += _session_fields(payload)
    error = payload.get("error")
    if isinstance(error, dict):
        add(("error", "message"))
    return found


_ASSISTANT_PREFIXES = (
    "response.output_audio_transcript.",
    "response.audio_transcript.",
    "response.output_text.",
    "response.text.",
)


def speaker(event_type: str, payload: dict[str, Any], path: Path) -> str | None:
    """Who says the text at `path`: "user", "assistant", or None when the event cannot tell."""
    if event_type.startswith(_ASSISTANT_PREFIXES):
        return "assistant"
    if event_type.startswith("conversation.item.input_audio_transcription."):
        return "user"
    if path[:2] in (("response", "output"),):
        return "assistant"
    if path[:1] == ("item",) and isinstance(payload.get("item"), dict):
        role = payload["item"].get("role")
        return role if role in ("user", "assistant") else None
    return None


def instructions(payload: dict[str, Any]) -> str | None:
    """The operator's instructions a session or response event carries, if any."""
    for path in (("session", "instructions"), ("response", "instructions")):
        value = get_path(payload, path)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _item_fields(payload: dict[str, Any], at: Path) -> list[tuple[Path, Kind]]:
    item = get_path(payload, at)
    found: list[tuple[Path, Kind]] = []
    for i, part in enumerate(item.get("content") or []):
        if isinstance(part, dict):
            for key in ("text", "transcript"):
                if isinstance(part.get(key), str) and part[key]:
                    found.append(((*at, "content", i, key), "text"))
    for key in ("arguments", "output"):
        if isinstance(item.get(key), str) and item[key]:
            found.append(((*at, key), "json"))
    error = item.get("error")
    if isinstance(error, str) and error:
        found.append(((*at, "error"), "text"))
    elif isinstance(error, dict) and isinstance(error.get("message"), str):
        found.append(((*at, "error", "message"), "text"))
    return found


def _session_fields(payload: dict[str, Any]) -> list[tuple[Path, Kind]]:
    candidates: list[Path] = [
        ("session", "instructions"),
        ("session", "input_audio_transcription", "prompt"),
        ("session", "audio", "input", "transcription", "prompt"),
    ]
    variables = get_path(payload, ("session", "prompt", "variables"))
    if isinstance(variables, dict):
        candidates += [("session", "prompt", "variables", k) for k in sorted(variables)]
    return [(p, "text") for p in candidates if isinstance(get_path(payload, p), str)]


def session_language(payload: dict[str, Any]) -> str | None:
    """The input transcription language a session.* event configures, if any."""
    for path in (
        ("session", "audio", "input", "transcription", "language"),
        ("session", "input_audio_transcription", "language"),
    ):
        value = get_path(payload, path)
        if isinstance(value, str) and value:
            return value.split("-")[0].lower()
    return None


def get_path(data: Any, path: Path) -> Any:
    for key in path:
        if isinstance(key, int):
            if not isinstance(data, list) or key >= len(data):
                return None
        elif not isinstance(data, dict):
            return None
        data = data[key] if isinstance(key, int) else data.get(key)
    return data


def set_path(data: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def path_name(path: Path) -> str:
    """A field's JSON path as findings name it: payload.item.content[0].transcript."""
    out = "payload"
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else f".{key}"
    return out


def strip_logprobs(payload: dict[str, Any]) -> bool:
    """Drop the tokens of transcription logprobs (they spell the transcript); keep the numbers."""
    logprobs = payload.get("logprobs")
    if not isinstance(logprobs, list):
        return False
    payload["logprobs"] = [
        {"logprob": lp.get("logprob")} if isinstance(lp, dict) else None for lp in logprobs
    ]
    return True


def summarise_binary(payload: dict[str, Any]) -> bool:
    """An unparsed binary frame cannot be scanned: keep only its length and SHA-256."""
    raw = payload.get("raw_b64")
    if not isinstance(raw, str):
        return False
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        data = raw.encode()
    payload["raw_b64"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return True


def not_text(data: Any, max_depth: int = MAX_EVENT_DEPTH) -> str | None:
    """Why decoded JSON cannot be redacted as an event, or None: nested beyond max_depth (a
    copy of it would exhaust the recursion limit) or a string holding a lone surrogate
    (JSON allows "\\ud800"; it cannot be encoded). Iterative: no recursion limit to hit."""
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return "JSON string holds a lone surrogate escape (not Unicode text)"
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > max_depth:
            return f"JSON nested more than {max_depth} levels deep"
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return None
