"""Reading spoken forms back into characters: number words → digits, spelled letters, e-mails."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import regex

from voxledger.processors.redaction._lexicon import Lexicon, alternation

# VIN transliteration and weights (ISO 3779 / 49 CFR 565): position 9 is the check digit.
_VIN_VALUES = dict(
    zip(
        "ABCDEFGHJKLMNPRSTUVWXYZ",
        [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9],
        strict=True,
    )
)
_VIN_WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]
_VIN_CHARS = regex.compile(r"^[A-HJ-NPR-Z0-9]{17}$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(code: str) -> bool:
    """ISO 13616 mod-97 check on an IBAN without spaces."""
    if not regex.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", code):
        return False
    moved = code[4:] + code[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def vin_ok(code: str) -> bool:
    if not _VIN_CHARS.match(code):
        return False
    total = sum(
        (int(ch) if ch.isdigit() else _VIN_VALUES[ch]) * w
        for ch, w in zip(code, _VIN_WEIGHTS, strict=True)
    )
    check = total % 11
    return code[8] == ("X" if check == 10 else str(check))


def ascii_digits(text: str) -> str:
    """Digits of any script (full-width ０-９ too) as ASCII."""
    return "".join(str(unicodedata.digit(ch)) for ch in text if ch.isdigit())


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int


class NumberReader:
    """Turns the number words of one language into digit strings ("twelve thirty four" → 1234)."""

    def __init__(self, lexicon: Lexicon) -> None:
        n = lexicon.numbers
        self.numbers = n
        self.units = {k.lower(): v for k, v in n.units.items()}
        self.teens = {k.lower(): v for k, v in n.teens.items()}
        self.tens = {k.lower(): v for k, v in n.tens.items()}
        self.hundreds = {k.lower(): v for k, v in n.hundreds.items()}
        self.hundred = {w.lower() for w in n.hundred}
        self.thousand = {w.lower() for w in n.thousand}
        self.joiners = {w.lower() for w in n.joiners}
        self.repeaters = {k.lower(): v for k, v in n.repeaters.items()}
        self.all_words = (
            (set(self.units) | set(self.teens) | set(self.tens) | set(self.hundreds))
            | self.hundred
            | self.thousand
        )
        # Morphemes for glued compounds (German "vierunddreißig"), longest first.
        pieces = {w for w in self.all_words | self.joiners if " " not in w}
        self._morpheme = regex.compile(alternation(pieces), regex.IGNORECASE) if pieces else None

    def is_number_word(self, word: str) -> bool:
        w = word.lower()
        return w in self.all_words or w in self.repeaters or w in self.joiners

    def morphemes(self, word: str) -> list[str]:
        """A glued number word split into its parts; [] when it is not one."""
        w = word.lower()
        if not self.numbers.glued or self._morpheme is None:
            return [w] if self.is_number_word(w) else []
        parts, pos = [], 0
        while pos < len(w):
            m = self._morpheme.match(w, pos)
            if not m:
                return []
            parts.append(m.group(0))
            pos = m.end()
        return parts

    def read(self, words: list[str]) -> tuple[str, list[bool]]:
        """Digits said by a word sequence, and which words contributed to them."""
        out: list[str] = []
        used = [False] * len(words)
        i = 0
        while i < len(words):
            w = words[i]
            if any(ch.isdigit() for ch in w):
                out.append(ascii_digits(w))
                used[i] = True
                i += 1
                continue
            if w in self.repeaters and i + 1 < len(words) and self._digit(words[i + 1]) is not None:
                out.append(self._digit(words[i + 1]) * self.repeaters[w])
                used[i] = used[i + 1] = True
                i += 2
                continue
            value, j = self._group(words, i)
            if value is None:
                i += 1
                continue
            out.append(str(value))
            for k in range(i, j):
                used[k] = True
            i = j
        return "".join(out), used

    def _digit(self, word: str) -> str | None:
        if word.isdigit():
            return ascii_digits(word)
        value = self.units.get(word)
        return None if value is None else str(value)

    def _lookup(self, words: list[str], i: int, table: dict[str, int]) -> tuple[int | None, int]:
        # Multi-word entries first ("quatre vingt dix" before "quatre vingt").
        for size in (3, 2, 1):
            if i + size <= len(words):
                value = table.get(" ".join(words[i : i + size]))
                if value is not None:
                    return value, i + size
        return None, i

    def _skip_joiner(self, words: list[str], i: int) -> int:
        return i + 1 if i < len(words) and words[i] in self.joiners else i

    def _group(self, words: list[str], i: int) -> tuple[int | None, int]:
        value, j = self._below_thousand(words, i)
        if j < len(words) and words[j] in self.thousand:
            base = (value or 1) * 1000
            k = self._skip_joiner(words, j + 1)
            rest, k2 = self._below_thousand(words, k)
            return (base + rest, k2) if rest is not None and rest < 1000 else (base, j + 1)
        return value, j

    def _below_thousand(self, words: list[str], i: int) -> tuple[int | None, int]:
        if i >= len(words):
            return None, i
        value, j = self._lookup(words, i, self.hundreds)
        if value is None:
            lead, k = self._below_hundred(words, i)
            if lead and k < len(words) and words[k] in self.hundred:
                value, j = lead * 100, k + 1  # "five hundred", "nineteen hundred"
            elif words[i] in self.hundred:
                value, j = 100, i + 1
            else:
                return lead, k
        k = self._skip_joiner(words, j)
        rest, k2 = self._below_hundred(words, k)
        if (
            rest is None
            or rest >= 100
            or (k2 == k + 1 and rest < 10 and self._digit_follows(words, k2))
        ):
            # "eight hundred five five five" is 800-555, not 805-5-5: digits said one by one.
            return value, j
        return value + rest, k2

    def _digit_follows(self, words: list[str], i: int) -> bool:
        return i < len(words) and (words[i] in self.units or words[i].isdigit())

    def _below_hundred(self, words: list[str], i: int) -> tuple[int | None, int]:
        if i >= len(words):
            return None, i
        unit = self.units.get(words[i])
        if (
            self.numbers.units_before_tens
            and unit
            and i + 2 < len(words)
            and words[i + 1] in self.joiners
        ):
            tens, j = self._lookup(words, i + 2, self.tens)
            if tens is not None:
                return tens + unit, j
        tens, j = self._lookup(words, i, self.tens)
        if tens is not None:
            k = self._skip_joiner(words, j)
            nxt = self.units.get(words[k]) if k < len(words) else None
            if nxt:
                return tens + nxt, k + 1
            teen, k2 = self._lookup(words, k, self.teens)
            if teen is not None and tens in self.numbers.tens_take_teens and teen < 20:
                return tens + teen, k2
            return tens, j
        teen, j = self._lookup(words, i, self.teens)
        if teen is not None:
            return teen, j
        if unit is not None:
            return unit, i + 1
        return None, i


def word_tokens(text: str, start: int, end: int, reader: NumberReader) -> list[Token]:
    """Tokens of text[start:end]: digit groups, words (glued number words split), '+'."""
    tokens: list[Token] = []
    for m in _TOKEN.finditer(text, start, end):
        word = m.group(0)
        if m.group("word") and reader.numbers.glued:
            parts = reader.morphemes(word)
            if len(parts) > 1:
                pos = m.start()
                for part in parts:
                    tokens.append(Token(part, pos, pos + len(part)))
                    pos += len(part)
                continue
        tokens.append(Token(word.lower(), m.start(), m.end()))
    return tokens


# Japanese numerals are single characters inside words, so each is its own token.
_TOKEN = regex.compile(
    r"[0-9０-９]+|[〇零一二三四五六七八九]|(?P<word>(?:(?![〇零一二三四五六七八九])[\p{L}\p{M}])+"
    r"(?:['’]\p{L}+)?)|\+|@|[._\-]"
)


def spelled_code(tokens: list[Token], reader: NumberReader, o_is_letter: bool = False) -> str:
    """Letters and digits a token sequence spells out: "D E eight nine" → "DE89"."""
    out: list[str] = []
    words: list[str] = []
    for tok in [*tokens, Token("", 0, 0)]:
        letter_o = o_is_letter and tok.text == "o"
        if tok.text and not letter_o and (tok.text.isdigit() or reader.is_number_word(tok.text)):
            words.append(tok.text)
            continue
        if words:
            out.append(reader.read(words)[0])
            words = []
        if tok.text.isalpha():
            out.append(tok.text.upper())
    return "".join(out)


# Values of these types are codes: spoken and written forms normalise to the same characters.
CODE_TYPES = frozenset(
    {
        "PHONE_NUMBER",
        "CREDIT_CARD",
        "US_SSN",
        "IBAN_CODE",
        "VIN",
        "ACCOUNT_NUMBER",
        "SECURITY_CODE",
        "ES_NIF",
        "ES_NIE",
    }
)


def normal_value(entity_type: str, text: str, reader: NumberReader, lexicon: Lexicon) -> str:
    """The form a value is pseudonymised under: case, spaces and spoken digits don't matter."""
    text = unicodedata.normalize("NFKC", text)
    tokens = word_tokens(text, 0, len(text), reader)
    if entity_type == "EMAIL_ADDRESS":
        return _email_value(tokens, reader, lexicon)
    if entity_type in CODE_TYPES:
        code = spelled_code(tokens, reader)
        return _phone_value(code, lexicon.phone_region) if entity_type == "PHONE_NUMBER" else code
    pieces: list[str] = []
    words: list[str] = []
    for tok in [*tokens, Token("", 0, 0)]:
        if tok.text and (tok.text.isdigit() or reader.is_number_word(tok.text)):
            words.append(tok.text)
            continue
        if words:
            digits = reader.read(words)[0]
            pieces.append(digits or " ".join(words))
            words = []
        if tok.text and tok.text[0].isalnum():
            pieces.append(tok.text.casefold())
    return " ".join(pieces)


def _email_value(tokens: list[Token], reader: NumberReader, lexicon: Lexicon) -> str:
    sp = lexicon.spoken
    symbols = {w.lower(): "@" for w in sp.at} | {w.lower(): "." for w in sp.dot}
    symbols |= {w.lower(): "_" for w in sp.underscore} | {w.lower(): "-" for w in sp.dash}
    symbols |= {"@": "@", ".": ".", "_": "_", "-": "-"}
    out: list[str] = []
    for tok in tokens:
        if tok.text in symbols:
            out.append(symbols[tok.text])
        elif reader.is_number_word(tok.text) and tok.text not in reader.joiners:
            out.append(reader.read([tok.text])[0])
        else:
            out.append(tok.text.casefold())
    return "".join(out)


def _phone_value(digits: str, region: str) -> str:
    import phonenumbers  # Presidio's own dependency; loaded only when a phone number is seen

    try:
        number = phonenumbers.parse("+" + digits if len(digits) > 11 else digits, region)
    except phonenumbers.NumberParseException:
        return digits
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
