"""Billed token counts from Realtime usage objects, each token counted exactly once."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from voxledger.processors.cost.catalog import MODALITIES

_USAGE_KEYS = frozenset(
    {"input_tokens", "output_tokens", "total_tokens", "input_token_details", "output_token_details"}
)
_INPUT_DETAIL_KEYS = frozenset(
    {"text_tokens", "audio_tokens", "image_tokens", "cached_tokens", "cached_tokens_details"}
)
_CACHED_DETAIL_KEYS = frozenset({"text_tokens", "audio_tokens", "image_tokens"})
_OUTPUT_DETAIL_KEYS = frozenset({"text_tokens", "audio_tokens"})


def number(value: Any) -> Decimal | None:
    """A non-negative finite quantity (e.g. seconds) as an exact Decimal, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        exact = Decimal(str(value))
    except ArithmeticError:
        return None
    return exact if exact.is_finite() and exact >= 0 else None


def _count(container: dict[str, Any], key: str, warnings: list[str], where: str) -> int:
    """A token count; anything but a non-negative integer is 0 with a warning."""
    value = container.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        warnings.append(f"{where}.{key} is {value!r}, not a token count; counted as missing")
        return 0
    return value


def _unknown_fields(
    container: dict[str, Any], known: frozenset[str], where: str, warnings: list[str]
) -> None:
    for key in container:
        if key not in known and container[key] not in (0, None, {}):
            warnings.append(f"unknown usage field {where}.{key}={container[key]!r}; not priced")


def response_tokens(
    usage: dict[str, Any], warnings: list[str]
) -> tuple[dict[str, int], dict[str, Any]]:
    """Billed token counts per kind from a response.usage, never counting a token twice."""
    _unknown_fields(usage, _USAGE_KEYS, "usage", warnings)
    input_total = _count(usage, "input_tokens", warnings, "usage")
    output_total = _count(usage, "output_tokens", warnings, "usage")
    details = usage.get("input_token_details")
    out_details = usage.get("output_token_details")
    tokens = dict.fromkeys(MODALITIES, 0)
    unpriced = 0
    if isinstance(details, dict):
        _unknown_fields(details, _INPUT_DETAIL_KEYS, "input_token_details", warnings)
        where = "input_token_details"
        text = _count(details, "text_tokens", warnings, where)
        audio = _count(details, "audio_tokens", warnings, where)
        image = _count(details, "image_tokens", warnings, where)
        cached = _count(details, "cached_tokens", warnings, where)
        cached_details = details.get("cached_tokens_details")
        if isinstance(cached_details, dict):
            _unknown_fields(
                cached_details, _CACHED_DETAIL_KEYS, f"{where}.cached_tokens_details", warnings
            )
            w = f"{where}.cached_tokens_details"
            c_text = _count(cached_details, "text_tokens", warnings, w)
            c_audio = _count(cached_details, "audio_tokens", warnings, w)
            c_image = _count(cached_details, "image_tokens", warnings, w)
            if c_text + c_audio + c_image != cached:
                warnings.append(
                    f"cached_tokens {cached} ≠ sum of cached_tokens_details "
                    f"{c_text + c_audio + c_image}; the details are billed"
                )
        else:
            c_text, c_audio, c_image = _split_cached(cached, text, audio, image)
            if cached > text + audio + image:
                warnings.append(
                    f"cached_tokens {cached} exceed the {text + audio + image} input tokens; "
                    "cached capped at the input"
                )
            if cached:
                warnings.append(
                    f"older usage shape: {cached} cached tokens split by input share "
                    f"(text {c_text}, audio {c_audio}, image {c_image})"
                )
        for name, total, part in (
            ("text", text, c_text),
            ("audio", audio, c_audio),
            ("image", image, c_image),
        ):
            if part > total:
                warnings.append(
                    f"{part} cached {name} tokens exceed {total} {name} input tokens; "
                    "cached capped at the input"
                )
                part = total
            tokens[f"{name}_in"] = total - part
            tokens[f"{name}_cached"] = part
        if text + audio + image != input_total:
            warnings.append(
                f"input_tokens {input_total} ≠ text+audio+image "
                f"{text + audio + image}; the per-modality counts are billed"
            )
    elif input_total:
        unpriced += input_total
        warnings.append(
            f"{input_total} input tokens without input_token_details ({details!r}); not priced"
        )
    if isinstance(out_details, dict):
        _unknown_fields(out_details, _OUTPUT_DETAIL_KEYS, "output_token_details", warnings)
        tokens["text_out"] = _count(out_details, "text_tokens", warnings, "output_token_details")
        tokens["audio_out"] = _count(out_details, "audio_tokens", warnings, "output_token_details")
        if tokens["text_out"] + tokens["audio_out"] != output_total:
            warnings.append(
                f"output_tokens {output_total} ≠ text+audio "
                f"{tokens['text_out'] + tokens['audio_out']}; "
                "the per-modality counts are billed"
            )
    elif output_total:
        unpriced += output_total
        warnings.append(
            f"{output_total} output tokens without output_token_details "
            f"({out_details!r}); not priced"
        )
    input_value = input_total if "input_tokens" in usage else None
    return {k: v for k, v in tokens.items() if v}, {"input": input_value, "unpriced": unpriced}


def _split_cached(cached: int, text: int, audio: int, image: int) -> tuple[int, int, int]:
    """Older usage: cached_tokens without details, split by each modality's input share.

    Text and image get floor(cached × share); audio the rest; a rest beyond the audio input
    goes back to text, then image, never beyond their input (see the session module's rules).
    """
    total = text + audio + image
    if not cached or not total:
        return 0, 0, 0
    c_text = min(cached * text // total, text)
    c_image = min(cached * image // total, image)
    c_audio = cached - c_text - c_image
    if c_audio > audio:  # rounding left more than the audio input: give it back in order
        excess = c_audio - audio
        c_audio = audio
        move = min(excess, text - c_text)
        c_text += move
        c_image = min(image, c_image + excess - move)
    return c_text, c_audio, c_image


def transcription_tokens(usage: dict[str, Any], warnings: list[str]) -> dict[str, int]:
    input_total = _count(usage, "input_tokens", warnings, "usage")
    details = usage.get("input_token_details")
    tokens = {"text_in": 0, "audio_in": 0, "text_out": 0}
    if isinstance(details, dict):
        tokens["text_in"] = _count(details, "text_tokens", warnings, "input_token_details")
        tokens["audio_in"] = _count(details, "audio_tokens", warnings, "input_token_details")
        if tokens["text_in"] + tokens["audio_in"] != input_total:
            warnings.append(f"input_tokens {input_total} ≠ text+audio; the details are billed")
    else:
        tokens["audio_in"] = input_total  # a transcription's input is the user's audio
    tokens["text_out"] = _count(usage, "output_tokens", warnings, "usage")
    return {k: v for k, v in tokens.items() if v}
