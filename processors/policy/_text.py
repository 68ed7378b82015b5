"""Text helpers for rules: normalisation, language guessing and money amounts in speech."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import regex

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})
_SPACES = regex.compile(r"\s+")
_JAPANESE = regex.compile(r"[\p{Hiragana}\p{Katakana}]")
_WORD = regex.compile(r"\p{L}+")
EXCERPT_CHARS = 240


def normalise(text: str) -> str:
    """NFKC (full-width ＡＩ → AI), lower case, one kind of apostrophe, single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    return _SPACES.sub(" ", text).strip()


def excerpt(text: str, start: int = 0, end: int | None = None) -> str:
    """At most EXCERPT_CHARS of redacted text around a match, on one line."""
    text = _SPACES.sub(" ", text).strip()
    if len(text) <= EXCERPT_CHARS:
        return text
    end = start if end is None else end
    middle = (start + end) // 2
    lo = max(0, min(middle - EXCERPT_CHARS // 2, len(text) - EXCERPT_CHARS))
    cut = text[lo : lo + EXCERPT_CHARS]
    return ("…" if lo else "") + cut + ("…" if lo + EXCERPT_CHARS < len(text) else "")


def guess_language(texts: Iterable[str], words: Mapping[str, Iterable[str]]) -> str | None:
    """The language most of the words belong to; Japanese by its kana."""
    counts: dict[str, int] = {}
    lexicon = {lang: frozenset(ws) for lang, ws in words.items()}
    for text in texts:
        if _JAPANESE.search(text):
            counts["ja"] = counts.get("ja", 0) + 5
        for word in _WORD.findall(text.lower()):
            for lang, known in lexicon.items():
                if word in known:
                    counts[lang] = counts.get(lang, 0) + 1
    if not counts:
        return None
    return max(counts, key=lambda lang: counts[lang])


# -- money --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Amount:
    value: float
    currency: str | None
    text: str
    start: int
    end: int


_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "a": 1,
}
_SCALES = {"hundred": 100, "thousand": 1000}
_NUMBER_WORD = r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand)"  # noqa: E501
_CURRENCY_WORDS = {
    "dollar": "USD",
    "dollars": "USD",
    "bucks": "USD",
    "usd": "USD",
    "dólares": "USD",
    "dolares": "USD",
    "dollars américains": "USD",
    "euro": "EUR",
    "euros": "EUR",
    "eur": "EUR",
    "pound": "GBP",
    "pounds": "GBP",
    "gbp": "GBP",
    "franken": "CHF",
    "francs": "CHF",
    "chf": "CHF",
    "yen": "JPY",
    "円": "JPY",
    "jpy": "JPY",
}
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "￥": "JPY"}
_CUR_WORD = (
    r"(?:dollars?|bucks|usd|dólares|dolares|euros?|eur|pounds?|gbp|franken|francs|chf|yen|jpy|円)"
)
_NUM = r"\d{1,3}(?:[,.' ]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_DIGIT_AMOUNT = regex.compile(
    rf"(?P<sym>[$€£¥￥])\s?(?P<num>{_NUM})(?:\s?(?P<mult>万))?"
    rf"|(?P<cur1>usd|eur|gbp|chf|jpy)\s?(?P<num1>{_NUM})"
    rf"|(?P<num2>{_NUM})(?:\s?(?P<mult2>万))?\s?(?P<cur2>{_CUR_WORD}|[$€£])(?![a-z])",
    regex.IGNORECASE,
)
_WORD_AMOUNT = regex.compile(
    rf"\b(?P<words>{_NUMBER_WORD}(?:[\s-]+(?:and[\s-]+)?{_NUMBER_WORD})*|a hundred|a thousand)"
    rf"\s+(?P<cur>{_CUR_WORD})\b",
    regex.IGNORECASE,
)


def parse_number(text: str) -> float | None:
    """`1,200.50`, `1.200,50`, `420`, `49,99` as a number."""
    text = text.replace("'", "").replace(" ", "")
    if "," in text and "." in text:
        if text.rfind(",") > text.rfind("."):
            text = text.replace(".", "").replace(",", ".")
        else:
            text = text.replace(",", "")
    elif "," in text:
        head, _, tail = text.rpartition(",")
        text = f"{head.replace(',', '')}.{tail}" if len(tail) <= 2 else text.replace(",", "")
    elif text.count(".") > 1 or (
        "." in text and len(text.rpartition(".")[2]) == 3 and not text.startswith("0")
    ):
        text = text.replace(".", "")
    try:
        return float(text)
    except ValueError:
        return None


def words_to_number(words: str) -> float | None:
    """English number words: `four hundred twenty`, `two thousand and fifty`."""
    total = current = 0
    seen = False
    for word in regex.split(r"[\s-]+", words.lower()):
        if word == "and" or not word:
            continue
        if word in _UNITS:
            current += _UNITS[word]
            seen = True
        elif word == "hundred":
            current = max(current, 1) * 100
            seen = True
        elif word == "thousand":
            total += max(current, 1) * 1000
            current = 0
            seen = True
        else:
            return None
    return float(total + current) if seen else None


def find_amounts(text: str) -> list[Amount]:
    """Money amounts in text: `$420`, `420 euros`, `EUR 420`, `four hundred twenty dollars`."""
    found: list[Amount] = []
    for m in _DIGIT_AMOUNT.finditer(text):
        num = m.group("num") or m.group("num1") or m.group("num2")
        value = parse_number(num)
        if value is None:
            continue
        if m.group("mult") or m.group("mult2"):
            value *= 10_000
        currency = (
            _SYMBOLS.get(m.group("sym") or "")
            or (m.group("cur1") or "").upper()
            or _currency_of(m.group("cur2"))
        )
        found.append(Amount(value, currency or None, m.group(0), m.start(), m.end()))
    for m in _WORD_AMOUNT.finditer(text):
        value = words_to_number(m.group("words"))
        if value is not None:
            found.append(
                Amount(value, _currency_of(m.group("cur")), m.group(0), m.start(), m.end())
            )
    return found


def _currency_of(word: str | None) -> str | None:
    if not word:
        return None
    return _SYMBOLS.get(word) or _CURRENCY_WORDS.get(word.lower())
