"""The input audio buffer, and the server VAD that turns loud stretches of it into user turns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voxledger.ingest.simulator.audio import (
    SPEECH_LEVEL_AT_DEFAULT_THRESHOLD,
    bytes_per_ms,
    loudness,
)

FRAME_MS = 20
MIN_COMMIT_MS = 100
# Semantic VAD really judges whether the user finished a thought; silence length stands in.
SEMANTIC_SILENCE_MS = {"low": 1000, "medium": 500, "auto": 500, "high": 300}


@dataclass(frozen=True)
class VadEdge:
    """Where speech started or stopped, in ms since the session's first appended audio."""

    kind: str  # "speech_started" | "speech_stopped"
    at_ms: int


@dataclass(frozen=True)
class Segment:
    """Audio taken out of the buffer for a user item."""

    audio: bytes
    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


class InputAudio:
    """Appended audio not yet committed, positioned on the session-wide audio clock."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._buffer_start_ms = 0.0
        self.position_ms = 0.0
        self.speaking = False
        self._speech_start_ms = 0.0
        self._silence_ms = 0.0

    def buffered_ms(self, audio_format: str) -> float:
        return len(self._buffer) / bytes_per_ms(audio_format)

    def append(self, data: bytes, audio_format: str, vad: dict[str, Any] | None) -> list[VadEdge]:
        """Add audio; with VAD on, report speech edges found in it (20 ms frames)."""
        self._buffer += data
        per_ms = bytes_per_ms(audio_format)
        frame = FRAME_MS * per_ms
        edges: list[VadEdge] = []
        for offset in range(0, len(data), frame):
            chunk = data[offset : offset + frame]
            start = self.position_ms
            self.position_ms += len(chunk) / per_ms
            if vad is not None:
                edge = self._listen(chunk, audio_format, vad, start)
                if edge:
                    edges.append(edge)
        return edges

    def _listen(
        self, chunk: bytes, audio_format: str, vad: dict[str, Any], start: float
    ) -> VadEdge | None:
        threshold = vad.get("threshold") or 0.5
        loud = loudness(chunk, audio_format) >= SPEECH_LEVEL_AT_DEFAULT_THRESHOLD * threshold / 0.5
        if loud:
            self._silence_ms = 0.0
            if not self.speaking:
                self.speaking = True
                padding = vad.get("prefix_padding_ms", 300) or 0
                self._speech_start_ms = max(self._buffer_start_ms, start - padding)
                return VadEdge("speech_started", int(self._speech_start_ms))
            return None
        if self.speaking:
            self._silence_ms += self.position_ms - start
            if self._silence_ms >= _silence_needed(vad):
                self.speaking = False
                return VadEdge("speech_stopped", int(self.position_ms))
        return None

    def take_speech(self, end_ms: int, audio_format: str) -> Segment:
        """The detected utterance, from its (padded) start to `end_ms`; later audio stays."""
        return self._take(self._speech_start_ms, end_ms, audio_format)

    def take_all(self, audio_format: str) -> Segment:
        """Everything buffered (a manual commit); VAD starts over."""
        start = self._speech_start_ms if self.speaking else self._buffer_start_ms
        self.speaking = False
        return self._take(start, self.position_ms, audio_format)

    def _take(self, start_ms: float, end_ms: float, audio_format: str) -> Segment:
        per_ms = bytes_per_ms(audio_format)
        first = int((start_ms - self._buffer_start_ms) * per_ms)
        last = int((end_ms - self._buffer_start_ms) * per_ms)
        audio = bytes(self._buffer[max(0, first) : last])
        del self._buffer[:last]
        self._buffer_start_ms = end_ms
        return Segment(audio, int(start_ms), int(end_ms))

    def clear(self) -> None:
        self._buffer.clear()
        self._buffer_start_ms = self.position_ms
        self.speaking = False
        self._silence_ms = 0.0


def _silence_needed(vad: dict[str, Any]) -> float:
    if vad.get("type") == "semantic_vad":
        return SEMANTIC_SILENCE_MS.get(vad.get("eagerness") or "auto", 500)
    return vad.get("silence_duration_ms") or 500
