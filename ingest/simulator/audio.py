"""Synthetic audio for both sides of a simulated call, and the loudness test server VAD uses."""

from __future__ import annotations

import base64
import math
from array import array
from functools import cache

PCM_RATE = 24_000
G711_RATE = 8_000
# Mean absolute sample value (0..32767) above which VAD hears speech, at threshold 0.5.
SPEECH_LEVEL_AT_DEFAULT_THRESHOLD = 330


def bytes_per_ms(audio_format: str) -> int:
    """Bytes per millisecond for an audio format name (`pcm16`/`audio/pcm` or G.711)."""
    return G711_RATE // 1000 if is_g711(audio_format) else PCM_RATE * 2 // 1000


def is_g711(audio_format: str) -> bool:
    return audio_format in ("audio/pcmu", "audio/pcma", "g711_ulaw", "g711_alaw")


def duration_ms(num_bytes: int, audio_format: str) -> float:
    return num_bytes / bytes_per_ms(audio_format)


def tone(duration: int, *, level: int = 2400, hz: float = 180.0) -> bytes:
    """PCM16 24 kHz mono: a quiet voiced tone whose loudness wobbles like syllables."""
    samples = PCM_RATE * duration // 1000
    wave = array("h", bytes(2 * samples))
    for n in range(samples):
        t = n / PCM_RATE
        envelope = 0.75 + 0.25 * math.sin(2 * math.pi * 4 * t)  # ~4 syllables a second
        wave[n] = int(level * envelope * math.sin(2 * math.pi * hz * t))
    return wave.tobytes()


def silence(duration: int, audio_format: str = "audio/pcm") -> bytes:
    filler = {"audio/pcmu": 0xFF, "g711_ulaw": 0xFF, "audio/pcma": 0xD5, "g711_alaw": 0xD5}
    return bytes([filler.get(audio_format, 0)]) * (bytes_per_ms(audio_format) * duration)


@cache
def output_chunk_b64(audio_format: str, chunk_ms: int) -> str:
    """One base64 chunk of assistant voice; reused so fast mode costs no encoding time."""
    if is_g711(audio_format):
        # Quiet but non-silent G.711 bytes: alternating small positive/negative codes.
        raw = bytes([0xE0, 0x60] * (G711_RATE * chunk_ms // 2000))
    else:
        raw = tone(chunk_ms, level=3000, hz=210.0)
    return base64.b64encode(raw).decode("ascii")


@cache
def _g711_levels(audio_format: str) -> tuple[int, ...]:
    """Magnitude of every G.711 code, so VAD can measure loudness without audioop."""
    levels = []
    for code in range(256):
        if audio_format in ("audio/pcmu", "g711_ulaw"):
            inverted = ~code & 0xFF
            exponent, mantissa = (inverted >> 4) & 7, inverted & 0x0F
            levels.append((((mantissa << 3) + 0x84) << exponent) - 0x84)
        else:
            toggled = code ^ 0x55
            exponent, mantissa = (toggled >> 4) & 7, toggled & 0x0F
            magnitude = (
                (mantissa << 4) + 8
                if exponent == 0
                else ((mantissa << 4) + 0x108) << (exponent - 1)
            )
            levels.append(magnitude)
    return tuple(levels)


def loudness(chunk: bytes, audio_format: str) -> float:
    """Mean absolute sample value of a chunk, sampled sparsely because VAD only needs a level."""
    if not chunk:
        return 0.0
    if is_g711(audio_format):
        levels = _g711_levels(audio_format)
        picked = chunk[::4]
        return sum(levels[b] for b in picked) / len(picked)
    usable = len(chunk) - len(chunk) % 2
    samples = array("h", chunk[:usable])[::4]
    return sum(map(abs, samples)) / max(1, len(samples))
