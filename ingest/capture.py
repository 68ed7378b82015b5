"""One session's frames → gap-free Envelope v1s, in order, with secrets and audio removed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from voxledger.envelope import (
    Direction,
    Envelope,
    Source,
    audio_bytes_per_ms,
    elide_audio,
    new_envelope_id,
    parse_frame,
    utc_now,
)
from voxledger.ingest.scrub import scrub_event

SESSION_OPENED = "voxledger.session.opened"
SESSION_CLOSED = "voxledger.session.closed"


@dataclass
class _Held:
    seq: int
    direction: Direction
    type: str
    payload: dict[str, Any]
    observed_at: datetime
    envelope_id: str = field(default_factory=new_envelope_id)


@dataclass
class SessionContext:
    """What every envelope of a session carries besides the event."""

    source: Source
    tenant: str | None = None
    app: str | None = None
    region: str | None = None
    upstream_host: str | None = None
    model: str | None = None


class SessionCapture:
    """Numbers frames over both directions and publishes them once the session id is known.

    The session id is the upstream `session.created` id; frames before it are held in order
    and stamped when it arrives, or with the capture's own id when it never comes.
    """

    def __init__(
        self,
        context: SessionContext,
        publish: Callable[[Envelope], None],
        fallback_session_id: str,
        session_id: str | None = None,
    ) -> None:
        self.context = context
        self.publish = publish
        self.fallback_session_id = fallback_session_id
        self.session_id = session_id
        self.next_seq = 0
        self._held: list[_Held] = []
        self._input_bytes_per_ms = audio_bytes_per_ms(None)
        self._output_bytes_per_ms = audio_bytes_per_ms(None)

    def frame(
        self, direction: Direction, data: str | bytes, observed_at: datetime | None = None
    ) -> None:
        """Capture one relayed WebSocket frame."""
        event_type, payload = parse_frame(data)
        self._learn(event_type, payload)
        self.event(direction, event_type, self._clean(payload), observed_at)

    def event(
        self,
        direction: Direction,
        event_type: str,
        payload: dict[str, Any],
        observed_at: datetime | None = None,
    ) -> None:
        """Capture an already parsed (and cleaned) event, e.g. VoxLedger's own session events."""
        held = _Held(self.next_seq, direction, event_type, payload, observed_at or utc_now())
        self.next_seq += 1
        if self.session_id is None:
            self._held.append(held)
        else:
            self.publish(self._envelope(held))

    def flush(self) -> None:
        """Publish held frames under the fallback id (the session id never came)."""
        if self.session_id is None:
            self._set_session_id(self.fallback_session_id)

    def _learn(self, event_type: str, payload: dict[str, Any]) -> None:
        session = payload.get("session") if isinstance(payload.get("session"), dict) else {}
        if event_type in ("session.created", "session.updated"):
            if isinstance(session.get("model"), str):
                self.context.model = session["model"]
            self._learn_audio_formats(session)
        if event_type == "session.created" and self.session_id is None:
            self._set_session_id(str(session.get("id") or self.fallback_session_id))

    def _learn_audio_formats(self, session: dict[str, Any]) -> None:
        audio = session.get("audio") if isinstance(session.get("audio"), dict) else {}
        for direction, beta_key in (
            ("input", "input_audio_format"),
            ("output", "output_audio_format"),
        ):
            side = audio.get(direction) if isinstance(audio.get(direction), dict) else {}
            fmt = side.get("format")
            fmt = fmt.get("type") if isinstance(fmt, dict) else fmt or session.get(beta_key)
            if isinstance(fmt, str):
                setattr(self, f"_{direction}_bytes_per_ms", audio_bytes_per_ms(fmt))

    def _clean(self, payload: dict[str, Any]) -> dict[str, Any]:
        is_input = payload.get("type") == "input_audio_buffer.append"
        rate = self._input_bytes_per_ms if is_input else self._output_bytes_per_ms
        return elide_audio(scrub_event(payload), rate)

    def _set_session_id(self, session_id: str) -> None:
        self.session_id = session_id
        held, self._held = self._held, []
        for item in held:
            self.publish(self._envelope(item))

    def _envelope(self, held: _Held) -> Envelope:
        return Envelope(
            envelope_id=held.envelope_id,
            session_id=self.session_id,
            seq=held.seq,
            direction=held.direction,
            type=held.type,
            observed_at=held.observed_at,
            payload=held.payload,
            source=self.context.source,
            tenant=self.context.tenant,
            app=self.context.app,
            region=self.context.region,
            upstream_host=self.context.upstream_host,
            model=self.context.model,
        )
