"""A small offline language guess: Japanese by script, the others by their common words."""

from __future__ import annotations

from collections.abc import Mapping

import regex

from voxledger.processors.redaction._lexicon import Lexicon

_JAPANESE = regex.compile(r"[\p{Hiragana}\p{Katakana}\p{Han}]")
_WORD = regex.compile(r"\p{L}+(?:['’]\p{L}+)?")
# Letters that only some of the Latin-script languages use.
_LETTERS = {"es": "ñ¿¡áíóú", "fr": "çœèêàùâîôë", "de": "äöüß"}


def guess_language(text: str, lexicons: Mapping[str, Lexicon]) -> str | None:
    """The language a text is most likely in, or None when it gives too little to go on."""
    if "ja" in lexicons and _JAPANESE.search(text):
        return "ja"
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return None
    scores: dict[str, float] = {}
    for language, lexicon in lexicons.items():
        if language == "ja":
            continue
        common = _common_words(lexicon)
        score = sum(1.0 for w in words if w in common)
        score += 0.5 * sum(ch in _LETTERS.get(language, "") for ch in text.lower())
        scores[language] = score
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    if not ranked or ranked[0][1] < 1.5:
        return None
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < 1:
        return None  # too close to call: the session's language decides
    return ranked[0][0]


def _common_words(lexicon: Lexicon) -> frozenset[str]:
    return frozenset(w.lower() for w in lexicon.detect)
