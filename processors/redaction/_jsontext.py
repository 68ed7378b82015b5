"""The string and number values inside a JSON document's text, with their raw positions."""

from __future__ import annotations

import json
from dataclasses import dataclass

import regex

_TOKEN = regex.compile(
    r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+\-]?\d+)?|[{}\[\]:,]|true|false|null|\s+'
)
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_CAMEL = regex.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass(frozen=True)
class JsonValue:
    """A value's decoded text and where each of its characters sits in the raw JSON."""

    key: str | None
    text: str
    offsets: tuple[int, ...]  # raw position of each decoded character
    end: int  # raw position just after the value's content
    is_number: bool

    def raw_span(self, start: int, end: int) -> tuple[int, int]:
        raw_start = self.offsets[start] if start < len(self.offsets) else self.end
        raw_end = self.offsets[end] if end < len(self.offsets) else self.end
        return raw_start, raw_end


def snake_key(key: str) -> str:
    """`phoneNumber`, `phone-number` and `Phone Number` all read as `phone_number`."""
    return regex.sub(r"[\s\-]+", "_", _CAMEL.sub("_", key.strip())).lower()


def json_values(raw: str) -> list[JsonValue] | None:
    """Every string and number value of a JSON document, or None when it is not JSON."""
    try:
        json.loads(raw)
    except (ValueError, RecursionError):
        return None
    values: list[JsonValue] = []
    stack: list[list] = []  # per open container: [kind, key, expecting_key]
    for m in _TOKEN.finditer(raw):
        tok = m.group(0)
        if tok.isspace():
            continue
        top = stack[-1] if stack else None
        if tok in "{[":
            stack.append(["obj" if tok == "{" else "arr", top[1] if top else None, tok == "{"])
        elif tok in "}]":
            stack.pop()
        elif tok == ":":
            top[2] = False
        elif tok == ",":
            top[2] = top[0] == "obj"
        elif tok.startswith('"'):
            text, offsets = _decode(raw, m.start() + 1, m.end() - 1)
            if top and top[0] == "obj" and top[2]:
                top[1] = text
            else:
                values.append(JsonValue(top[1] if top else None, text, offsets, m.end() - 1, False))
        elif tok[0] in "-0123456789":
            offsets = tuple(range(m.start(), m.end()))
            values.append(JsonValue(top[1] if top else None, tok, offsets, m.end(), True))
    return values


def _decode(raw: str, start: int, end: int) -> tuple[str, tuple[int, ...]]:
    chars: list[str] = []
    offsets: list[int] = []
    i = start
    while i < end:
        offsets.append(i)
        if raw[i] != "\\":
            chars.append(raw[i])
            i += 1
        elif raw[i + 1] != "u":
            chars.append(_ESCAPES[raw[i + 1]])
            i += 2
        else:
            code, i = int(raw[i + 2 : i + 6], 16), i + 6
            if 0xD800 <= code < 0xDC00 and raw[i : i + 2] == "\\u":
                low = int(raw[i + 2 : i + 6], 16)
                code, i = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00), i + 6
            chars.append(chr(code))
    return "".join(chars), tuple(offsets)
