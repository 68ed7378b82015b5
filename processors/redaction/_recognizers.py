"""A Presidio recognizer for how speech transcripts say PII: spoken digits, spelled codes, cues."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from voxledger.processors.redaction._gazetteer import (
    common_word,
    everyday_word,
    first_names,
    place_names,
    rare_word,
)
from voxledger.processors.redaction._lexicon import (
    ENTITY_TYPES,
    FLAGS,
    Lexicon,
    alternation,
    compile_patterns,
)
from voxledger.processors.redaction._spoken import (
    NumberReader,
    Token,
    iban_ok,
    luhn_ok,
    spelled_code,
    vin_ok,
    word_tokens,
)

# Digit counts a cue may stand for: a cue never turns "two" into a phone number.
_CUE_LENGTHS = {
    "PHONE_NUMBER": (6, 15),
    "CREDIT_CARD": (4, 19),
    "US_SSN": (4, 9),
    "ACCOUNT_NUMBER": (3, 30),
    "SECURITY_CODE": (3, 8),
    "ADDRESS": (4, 9),
    "IBAN_CODE": (15, 34),
    "VIN": (17, 17),
}
_DATE_OR_TIME = regex.compile(
    r"\d{1,4}[/.\-]\d{1,2}[/.\-]\d{1,4}|\d{1,2}[:.h]\d{2}(?:[:.]\d{2})?|\d{4}年\d{1,2}月\d{1,2}日?"
)
# Written codes: "GB82", "4B", "PLC-2291-7734" (letters and digits, maybe joined by hyphens).
_CHUNK = r"(?<![\p{L}\d])(?=\p{L}*\d)(?=\d*\p{L})[\p{L}\d]{2,24}(?![\p{L}\d])"
_CODE = (
    r"(?<![\p{L}\d\-])(?=[\p{L}\d\-]*\d)(?=[\p{L}\d\-]*\p{L})"
    r"[\p{L}\d]+(?:-[\p{L}\d]+)+(?![\p{L}\d\-])"
)
# A lone letter or a letter touching a digit: what makes a run a spelled code.
_CODE_LETTER = regex.compile(r"(?<![\p{L}'’])\p{L}(?![\p{L}'’])|\p{L}-?\d|\d-?\p{L}")
_WORD = regex.compile(r"\p{L}+")
_TOKEN_PATTERN = regex.compile(r"<[A-Z_]+_\d+>")  # a pseudonym already in the text


@dataclass(frozen=True)
class _Hit:
    type: str
    start: int
    end: int
    score: float
    recognizer: str


class SpeechRecognizer(EntityRecognizer):
    """Finds PII as transcripts write speech; one instance per language, built from its lexicon."""

    def __init__(self, lexicon: Lexicon, email_tlds: Iterable[str] = ("com", "net", "org")) -> None:
        self.lexicon = lexicon
        self.email_tlds = tuple(email_tlds)
        self.reader = NumberReader(lexicon)
        super().__init__(
            supported_entities=list(ENTITY_TYPES),
            name=f"SpeechRecognizer_{lexicon.language}",
            supported_language=lexicon.language,
            version="1.0",
        )

    def load(self) -> None:
        lx = self.lexicon
        self.patterns = compile_patterns(lx)
        self.spaced = lx.word_boundaries
        self.stop = lx.stopwords()
        self.first_names = {w.lower() for w in lx.names.first_names}
        self.surnames = {w.lower() for w in lx.names.surnames}
        self.ambiguous = {w.lower() for w in lx.names.ambiguous}
        self.known_names = self.first_names | self.surnames
        self.common = self._common_words()
        # Lower-case words that are first names somewhere and no common word of this language.
        everywhere = first_names() | self.first_names
        self.gazetteer = everywhere - self.common
        # Names that are common words too ("remedios", "rosa"): a name only with a surname.
        self.gazetteer_ambiguous = everywhere & self.ambiguous
        self.places = place_names()
        self._build_number_regexes()
        self._build_cue_regexes()
        if self.spaced:
            self._build_name_regexes()
            self._build_email_regex()

    def _common_words(self) -> frozenset[str]:
        lx = self.lexicon
        words = [
            *lx.names.not_names,
            *lx.names.ambiguous,
            *lx.number_words(),
            *lx.cue_fillers,
            *lx.fillers,
            *lx.agent.roles,
            *lx.agent.words,
        ]
        return self.stop | {w.lower() for w in words}

    # -- regexes built from the word lists ---------------------------------------------------

    def _build_number_regexes(self) -> None:
        lx, n = self.lexicon, self.lexicon.numbers
        words = alternation(lx.number_words())
        if self.spaced:
            joiner = alternation(n.joiners)
            word = rf"(?!{joiner}\b)(?:{words}|{joiner})+" if n.glued else words
            nw = rf"\b{word}\b"
            joined = rf"{nw}(?:[\s\-]+{joiner}[\s\-]+{nw})*"
            tok = rf"(?:\d+|\b{alternation(n.repeaters)}[\s\-]+(?:{nw}|\d)|{joined})"
            sep = rf"(?:[\s]*[\-–—.,/()…]{{1,3}}[\s]*|[\s]+(?:{alternation(lx.spoken.dash)}[\s]+)?)"
            plus = rf"(?:(?:\+|\b{alternation(lx.spoken.plus)}\b)[\s]*)?"
            letter = r"(?<![\p{L}\d'’])\p{L}(?![\p{L}\d'’])"
            item = rf"(?:{_CODE}|{_CHUNK}|{letter}|{tok})"
            self.spelled = regex.compile(rf"{item}(?:{sep}{item})*", FLAGS)
        else:
            tok = rf"(?:[0-9０-９]+|{words})"
            sep = r"[\s\-－ー‐−―、,.・の()（）]{0,2}"
            plus = r"(?:[+＋][\s]*)?"
            # Without spaces, only written codes ("A12345678") can be told apart from words.
            self.spelled = regex.compile(
                r"(?<![A-Za-z0-9])(?=[A-Za-z0-9\-]*[0-9])(?=[A-Za-z0-9\-]*[A-Za-z])"
                r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![A-Za-z0-9])"
            )
        self.run = regex.compile(rf"{plus}\(?[\s]*{tok}(?:{sep}{tok})*", FLAGS)
        currency = alternation(lx.currency)
        self.currency_after = regex.compile(rf"[\s]*{currency}(?!\w)", FLAGS)
        self.plus_words = {"+", "＋", *(w.lower() for w in lx.spoken.plus)}

    def _build_cue_regexes(self) -> None:
        lx = self.lexicon
        fillers = alternation(lx.cue_fillers)
        gap = r"[\s,:\#.\-…]*"
        edge = r"\b" if self.spaced else ""
        groups = "|".join(
            rf"(?P<{t}>{edge}{alternation(words)}{edge})" for t, words in lx.cues.items() if words
        )
        # A cue right before a value, with only filler words between ("order number is, uh").
        self.adjacent_cue = regex.compile(rf"(?:{groups}){gap}(?:{fillers}{edge}{gap})*$", FLAGS)
        self.any_cue = regex.compile(rf"(?:{groups})", FLAGS)

    def _build_name_regexes(self) -> None:
        lx = self.lexicon
        not_name = self.stop | {w.lower() for w in lx.names.not_names}
        not_name |= {w.lower() for w in lx.number_words()}
        word = rf"(?!{alternation(not_name)}(?![\p{{L}}'’\-]))\p{{L}}[\p{{L}}\p{{M}}'’\-]*"
        part = alternation(lx.names.particles)
        cont = rf"(?:[\s]+(?:{part}[\s]+)?{word})"
        self.cue_class = {}
        for cue in lx.names.cues:
            for phrase in cue.phrases:
                self.cue_class.setdefault(_norm(phrase), cue.accept)
        self.name_cue = regex.compile(
            rf"\b(?P<cue>{alternation(self.cue_class)})[\s,:]+(?P<name>{word}{cont}{{0,2}})", FLAGS
        )
        self.title = regex.compile(
            rf"\b(?:{alternation(lx.names.titles)})\.?[\s]+(?P<name>{word}{cont}?)", FLAGS
        )
        anywhere = [w for w in lx.names.first_names if w.lower() not in self.ambiguous]
        # Words that must be in a text for each regex to have a chance (a cheap first look).
        self.cue_words = _first_words(self.cue_class)
        self.title_words = _first_words(lx.names.titles)
        self.anywhere_names = _first_words(anywhere)
        self.known_name = regex.compile(
            rf"\b(?P<name>{alternation(anywhere)})\b(?:[\s]+(?P<next>{word}))?", FLAGS
        )
        self.loc_class = {}
        for cue in lx.location_cues:
            for phrase in cue.phrases:
                self.loc_class.setdefault(_norm(phrase), cue.accept)
        self.loc_words = _first_words(self.loc_class)
        self.location_cue = regex.compile(
            rf"\b(?P<cue>{alternation(self.loc_class)})[\s]+(?P<name>{word}(?:[\s]+{word}){{0,2}})",
            FLAGS,
        )

    def _build_email_regex(self) -> None:
        sp = self.lexicon.spoken
        at = alternation(sp.at)
        dot = alternation(sp.dot)
        sym = rf"(?:{dot}|{alternation(sp.underscore)}|{alternation(sp.dash)})"
        not_local = alternation(
            self.stop
            | {w.lower() for w in sp.at}
            | {w.lower() for w in self.lexicon.cue_fillers}  # "die E-Mail lautet s punkt …"
            | {"email", "e-mail", "mail", "address", "correo", "courriel", "adresse", "mél"}
        )
        word = rf"(?!{not_local}\b)[\p{{L}}\d][\p{{L}}\d'’+]*"
        # A spelled letter may be a stop word ("a l e x"): it starts a local part when another
        # spelled letter follows.
        spelled = r"[\p{L}\d](?=[\s]+[\p{L}\d](?:[\s]|$))"
        local = rf"(?:{spelled}|{word})(?:(?:[\s]*(?:{sym}|[._\-])[\s]*|[\s]+){word}){{0,15}}"
        label = r"[\p{L}\d][\p{L}\d\-]*(?:[\s]+[\p{L}\d]\b){0,6}"
        dot_sep = rf"(?:[\s]*\.[\s]*|[\s]+{dot}[\s]+)"
        domain = rf"{label}(?:{dot_sep}{label}){{0,3}}{dot_sep}{alternation(self.email_tlds)}\b"
        self.email_trigger = regex.compile(rf"@|\b{at}\b", FLAGS)
        start = r"(?<![\p{L}\d'’._\-])"  # not inside a word, nor after an apostrophe
        self.email = regex.compile(rf"{start}{local}(?:[\s]+{at}[\s]+|[\s]*@[\s]*){domain}", FLAGS)

    # -- Presidio entry point -----------------------------------------------------------------

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        hits = [*self._numbers(text), *self._patterns(text), *self._spelled(text)]
        if self.spaced:
            hits += [*self._emails(text), *self._names(text)]
        protected = [m.span() for m in _TOKEN_PATTERN.finditer(text)]
        wanted = set(entities or ENTITY_TYPES)
        return [
            RecognizerResult(
                h.type,
                h.start,
                h.end,
                h.score,
                recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: h.recognizer,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                },
            )
            for h in hits
            if h.type in wanted and h.end > h.start and not _inside(h, protected)
        ]

    # -- spoken and written digit runs --------------------------------------------------------

    def _numbers(self, text: str) -> list[_Hit]:
        hits = []
        for m in self.run.finditer(text):
            tokens = word_tokens(text, m.start(), m.end(), self.reader)
            for group in self._split_lists(text, tokens):
                hit = self._number_hit(text, group)
                if hit:
                    hits.append(hit)
        return hits

    def _split_lists(self, text: str, tokens: list[Token]) -> list[list[Token]]:
        # "2023, 2024 and 2025": written numbers separated by ", " are a list, not one number.
        groups: list[list[Token]] = [[]]
        for tok in tokens:
            prev = groups[-1][-1] if groups[-1] else None
            gap = text[prev.end : tok.start] if prev else ""
            if prev and prev.text.isdigit() and tok.text.isdigit() and regex.match(r",\s", gap):
                groups.append([])
            groups[-1].append(tok)
        return [g for g in groups if g]

    def _number_hit(self, text: str, tokens: list[Token]) -> _Hit | None:
        digits, used = self.reader.read([t.text for t in tokens])
        if len(digits) < 3:
            return None
        picked = [t for t, u in zip(tokens, used, strict=True) if u]
        start, end = picked[0].start, picked[-1].end
        plus = tokens[0].text in self.plus_words
        if plus:
            start = tokens[0].start
        elif start and text[start - 1] == "(":
            start -= 1
        kind = self._number_type(text, start, end, digits, plus)
        return _Hit(kind[0], start, end, kind[1], "spoken_number") if kind else None

    def _number_type(
        self, text: str, start: int, end: int, digits: str, plus: bool
    ) -> tuple[str, float] | None:
        n = len(digits)
        cue = self._adjacent_cue(text, start)
        if cue and _fits(cue, n):
            return cue, 0.9
        if self.currency_after.match(text, end) or (start and text[start - 1] in "$€£¥"):
            return None  # an amount, a duration or a time
        written = text[start:end]
        if _DATE_OR_TIME.fullmatch(written):
            return None
        loose = self._loose_cues(text, start, end)
        if plus and 8 <= n <= 15:
            return "PHONE_NUMBER", 0.85
        if 13 <= n <= 19 and luhn_ok(digits):
            return "CREDIT_CARD", 0.9
        if n == 9 and ("US_SSN" in loose or regex.fullmatch(r"\d{3}-\d{2}-\d{4}", written)):
            return "US_SSN", 0.85
        if 12 <= n <= 19 and "CREDIT_CARD" in loose:
            return "CREDIT_CARD", 0.8
        if "SECURITY_CODE" in loose and 3 <= n <= 8:
            return "SECURITY_CODE", 0.7
        if "ACCOUNT_NUMBER" in loose and n >= 5 and "PHONE_NUMBER" not in loose:
            return "ACCOUNT_NUMBER", 0.7
        if self._phone_shaped(digits) or (7 <= n <= 9 and "PHONE_NUMBER" in loose):
            return "PHONE_NUMBER", 0.8
        if n >= 8:
            return "ACCOUNT_NUMBER", 0.6  # a long number nobody explained is an identifier
        return None

    def _phone_shaped(self, digits: str) -> bool:
        n, lang = len(digits), self.lexicon.language
        if 10 <= n <= 13:
            return True
        return (lang == "es" and n == 9 and digits[0] in "6789") or (
            lang in ("de", "fr") and n in (8, 9) and digits[0] == "0"
        )

    def _adjacent_cue(self, text: str, start: int) -> str | None:
        m = self.adjacent_cue.search(text[max(0, start - 80) : start])
        return m.lastgroup if m else None

    def _loose_cues(self, text: str, start: int, end: int) -> set[str]:
        window = text[max(0, start - 60) : end + 25]
        return {m.lastgroup for m in self.any_cue.finditer(window) if m.lastgroup}

    # -- spelled-out codes: IBAN, VIN, booking references -------------------------------------

    def _spelled(self, text: str) -> list[_Hit]:
        hits = []
        for m in self.spelled.finditer(text):
            if not _CODE_LETTER.search(m.group(0)):
                continue  # digits and number words only: a number run, not a spelled code
            tokens = word_tokens(text, m.start(), m.end(), self.reader)
            code = spelled_code(tokens, self.reader)
            if "0" in code and any(t.text == "o" for t in tokens):
                as_letter = spelled_code(tokens, self.reader, o_is_letter=True)
                code = code if any(ch.isdigit() for ch in as_letter) else as_letter
            letters = sum(ch.isalpha() for ch in code)
            spaced = any(ch.isspace() for ch in m.group(0))
            # "a 2019 model": a lone letter before a number is a word, not a spelled code.
            if letters < (2 if spaced else 1) or len(code) < (3 if spaced else 5):
                continue
            kind = self._code_type(text, m.start(), code)
            if kind:
                hits.append(_Hit(kind[0], m.start(), m.end(), kind[1], "spelled_code"))
        return hits

    def _code_type(self, text: str, start: int, code: str) -> tuple[str, float] | None:
        digits = sum(ch.isdigit() for ch in code)
        cue = self._adjacent_cue(text, start)
        if iban_ok(code):
            return "IBAN_CODE", 0.95
        if len(code) == 17 and (vin_ok(code) or cue == "VIN"):
            return "VIN", 0.9
        if cue in ("IBAN_CODE", "VIN", "ACCOUNT_NUMBER", "SECURITY_CODE", "ADDRESS") and len(
            code
        ) >= (4 if digits else 3):
            return cue, 0.85
        if digits == 0:
            # Letters spelled one by one are a name or an e-mail being spelled.
            return ("PERSON", 0.6) if len(code) >= 3 else None
        if digits >= 4 and len(code) >= 6:
            return "ACCOUNT_NUMBER", 0.6  # a code nobody explained is an identifier
        return None

    # -- e-mail addresses said aloud ----------------------------------------------------------

    def _emails(self, text: str) -> list[_Hit]:
        if not self.email_trigger.search(text):
            return []
        return [
            _Hit("EMAIL_ADDRESS", m.start(), m.end(), 0.9, "spoken_email")
            for m in self.email.finditer(text)
        ]

    # -- names after cues, titles and known first names ---------------------------------------

    def _names(self, text: str) -> list[_Hit]:
        words = set(_WORD.findall(text.lower()))
        hits = []
        if words & self.cue_words:
            hits += self._cued_names(text)
        if words & self.title_words:
            for m in self.title.finditer(text):
                hits.append(_Hit("PERSON", m.start("name"), m.end("name"), 0.85, "name_title"))
        if words & self.anywhere_names:
            hits += self._known_names(text)
        if words & self.loc_words:
            for m in self.location_cue.finditer(text, overlapped=True):
                span = self._accept(text, m, self.loc_class[_norm(m["cue"])], places=True)
                if span:
                    hits.append(_Hit("LOCATION", *span, 0.7, "location_cue"))
        return hits

    def _cued_names(self, text: str) -> list[_Hit]:
        hits = []
        # Overlapped: in "thanks, doña Pilar" both "thanks" and "doña" get to try.
        for m in self.name_cue.finditer(text, overlapped=True):
            span = self._accept(text, m, self.cue_class[_norm(m["cue"])])
            if span:
                hits.append(_Hit("PERSON", *span, 0.85, "name_cue"))
        return hits

    def _known_names(self, text: str) -> list[_Hit]:
        hits = []
        for m in self.known_name.finditer(text):
            end = m.end("name")
            nxt = m["next"]
            if nxt and (nxt[0].isupper() or nxt.lower() in self.known_names):
                end = m.end("next")
            hits.append(_Hit("PERSON", m.start("name"), end, 0.7, "known_name"))
        return hits

    def _accept(
        self, text: str, m: regex.Match[str], accept: str, places: bool = False
    ) -> tuple[int, int] | None:
        """The span of the name after a cue, if the cue's confidence allows it."""
        words = list(regex.finditer(r"\S+", m["name"]))
        base = m.start("name")
        first = words[0].group(0)
        capital = first[0].isupper() and not text.isupper()
        if places and (accept == "place" or (not capital and accept != "any")):
            place = self._spoken_place(words)  # "calling from houston"
            return (base + words[0].start(), base + words[place - 1].end()) if place else None
        known = not places and first.lower() in self.known_names
        if accept == "known" and not (known and (capital or first.lower() not in self.ambiguous)):
            return None
        # A lower-case first name after "this is", "soy", "c'est": the gazetteer vouches for it.
        spoken = not places and not capital and self._spoken_name(words)
        if accept == "capitalised_or_known" and not (capital or known or spoken):
            return None
        keep = words
        if accept != "any":
            # After a weak cue, a name goes on only while its words look like name words
            # (after a lower-case first name, any word that is not a common one).
            keep = [words[0]]
            for w in words[1:]:
                word = w.group(0)
                surname = spoken and self._surname_like(word)
                initial = spoken and len(word) == 1 and word.isalpha()  # "diego a castellanos"
                if not (
                    word[0].isupper() or word.lower() in self.known_names or surname or initial
                ):
                    break
                keep.append(w)
            while len(keep) > 1 and len(keep[-1].group(0)) == 1:
                keep.pop()  # an initial ends no name
        return base + keep[0].start(), base + keep[-1].end()

    def _spoken_place(self, words: list[regex.Match[str]]) -> int:
        """How many of the words name a known city or country (0: none); a one-word place
        must not also be a common word ("reading", "split", "nice")."""
        bare = [w.group(0).strip(",.;:!?").lower() for w in words]
        for n in range(len(bare), 0, -1):
            name = " ".join(bare[:n])
            if name in self.places and (n > 1 or not self._common_word(name)):
                return n
        return 0

    def _common_word(self, word: str) -> bool:
        # `ambiguous` lists names that are also places ("paris", "houston"): not words here.
        listed = word in self.common and word not in self.ambiguous
        return listed or common_word(word, self.lexicon.language)

    def _spoken_name(self, words: list[regex.Match[str]]) -> bool:
        """Whether lower-case words start with a first name: a gazetteer name, or one that is
        also a common word followed by a word that can only be a surname."""
        first = words[0].group(0).lower()
        if first in self.gazetteer and not everyday_word(first, self.lexicon.language):
            return True
        if first in self.gazetteer_ambiguous or first in self.gazetteer:
            return len(words) > 1 and self._surname_like(words[1].group(0))
        # A name no list knows ("nkechi adebayo"): words too rare to be ordinary words.
        rest = words[1:2]
        return self._rare(first) and all(self._rare(w.group(0).lower()) for w in rest)

    def _surname_like(self, word: str) -> bool:
        lower = word.lower()
        return (
            word.isalpha()
            and lower not in self.common
            and not everyday_word(lower, self.lexicon.language)
        )

    def _rare(self, word: str) -> bool:
        return len(word) > 2 and self._surname_like(word) and rare_word(word, self.lexicon.language)

    # -- patterns from the data file ----------------------------------------------------------

    def _patterns(self, text: str) -> list[_Hit]:
        hits = []
        for pattern, compiled in self.patterns:
            for m in compiled.finditer(text):
                start, end = m.span(pattern.group or 0)
                if any(word in text[start:end] for word in pattern.exclude):
                    continue
                hits.append(
                    _Hit(pattern.type, start, end, pattern.score, f"pattern:{pattern.name}")
                )
        return hits


def _first_words(phrases: Iterable[str]) -> set[str]:
    return {w for p in phrases for w in _WORD.findall(p.lower())[:1]}


def _norm(phrase: str) -> str:
    return " ".join(regex.split(r"[\s\-]+", phrase.strip().lower()))


def _fits(entity_type: str, n: int) -> bool:
    low, high = _CUE_LENGTHS.get(entity_type, (3, 30))
    return low <= n <= high


def _inside(hit: _Hit, spans: list[tuple[int, int]]) -> bool:
    return any(s < hit.end and hit.start < e for s, e in spans)
