"""Dead letters: input a component could not process, kept with the reason and where it came from.

Input read from the raw topic holds PII, which must not land outside that topic: its dead
letter points at the raw record (topic, partition, offset, sha256) and carries a redacted
rendering instead of the bytes. Input from any other topic is kept byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from voxledger.envelope import utc_now

DEAD_LETTER_NAMESPACE = uuid.UUID("6f2d8f8e-1c1b-4c55-9a55-6b1f0f4f7d11")
MAX_ERROR_CHARS = 2000
# The redacted rendering is for a reader; the offset and sha256 point at the whole input.
# Bounded: NER time grows faster than the text (30 KB of brackets took spaCy 4 minutes).
MAX_RENDERED_CHARS = 2000


class DeadLetter(BaseModel):
    """One rejected input: who rejected it, why, where it is, and what it was."""

    model_config = ConfigDict(frozen=True)

    dead_letter_id: str
    agent: str
    error: str
    topic: str
    partition: int
    offset: int
    key: str | None = None
    session_id: str | None = None
    original_bytes: int
    original_sha256: str
    original_b64: str | None = None  # absent when the input held raw PII
    original_redacted: str | None = None  # a redacted text rendering, for raw input
    failed_at: datetime = Field(default_factory=utc_now)

    @classmethod
    def of(
        cls,
        *,
        agent: str,
        error: str,
        topic: str,
        partition: int,
        offset: int,
        original: bytes,
        key: bytes | None = None,
        session_id: str | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> DeadLetter:
        """A dead letter; pass `redact` when `original` may hold PII (it is then not kept)."""
        # The same input rejected again (a replay) gets the same id, so sinks can dedupe.
        name = f"{agent}/{topic}/{partition}/{offset}"
        return cls(
            dead_letter_id=str(uuid.uuid5(DEAD_LETTER_NAMESPACE, name)),
            agent=agent,
            error=error[:MAX_ERROR_CHARS],
            topic=topic,
            partition=partition,
            offset=offset,
            key=key.decode(errors="replace") if key is not None else None,
            session_id=session_id,
            original_bytes=len(original),
            original_sha256=hashlib.sha256(original).hexdigest(),
            original_b64=None if redact else base64.b64encode(original).decode(),
            original_redacted=_rendering(original, redact) if redact else None,
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


def _rendering(original: bytes, redact: Callable[[str], str]) -> str:
    """The input as text, redacted; a long one only up to a token boundary near the limit
    (never mid-value, where a cut-off number might no longer read as one)."""
    text = original.decode(errors="replace")
    if len(text) <= MAX_RENDERED_CHARS:
        return redact(text)
    head = text[:MAX_RENDERED_CHARS]
    cut = max(head.rfind(c) for c in ' \n\t",:{}[]')
    return redact(head[: max(cut, 0)]) + f" […cut: {len(original)} bytes in all]"
