"""Per-language word lists and patterns, read from YAML data files and checked by a schema."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources
from typing import Any, Literal, get_args

import regex
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voxledger.processors.redaction.exceptions import LexiconError

# What the redactor replaces; every finding carries one of these types.
EntityType = Literal[
    "PERSON",
    "LOCATION",
    "ADDRESS",
    "PHONE_NUMBER",
    "EMAIL_ADDRESS",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "VIN",
    "DATE_OF_BIRTH",
    "ACCOUNT_NUMBER",
    "SECURITY_CODE",
    "IP_ADDRESS",
    "ES_NIF",
    "ES_NIE",
]
ENTITY_TYPES: tuple[str, ...] = get_args(EntityType)
Language = Literal["en", "es", "fr", "de", "ja"]
LANGUAGES: tuple[str, ...] = get_args(Language)
FLAGS = regex.VERBOSE | regex.UNICODE | regex.IGNORECASE
_PLACEHOLDER = regex.compile(r"\{\{(\w+)\}\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumberWords(_Strict):
    """How numbers are said: word → value, and the words that combine them."""

    units: dict[str, int]
    teens: dict[str, int] = {}  # 10–99 said as one word that takes no unit after it
    tens: dict[str, int] = {}
    hundreds: dict[str, int] = {}  # words that are a whole hundreds value ("quinientos")
    hundred: list[str] = []  # "five hundred": multiplies the number before it
    thousand: list[str] = []
    joiners: list[str] = []  # "thirty and four" / "treinta y cuatro"
    repeaters: dict[str, int] = {}  # "double five" → 55
    tens_take_teens: list[int] = []  # French: soixante-douze = 60 + 12
    units_before_tens: bool = False  # German: vierunddreißig = 4 und 30
    glued: bool = False  # German writes compounds as one word


class SpokenSymbols(_Strict):
    """Words said for the symbols of e-mail addresses and phone numbers."""

    at: list[str]
    dot: list[str]
    underscore: list[str] = []
    dash: list[str] = []
    plus: list[str] = []


class NameCue(_Strict):
    """Phrases after which a person's name follows; `accept` says how sure the cue is."""

    # any: whatever follows; capitalised_or_known; known: a listed name; place (location
    # cues only): a known city or country, in any case ("from houston", "in Leipzig").
    accept: Literal["any", "capitalised_or_known", "known", "place"]
    phrases: list[str] = Field(min_length=1)


class Names(_Strict):
    cues: list[NameCue] = []
    titles: list[str] = []
    particles: list[str] = []
    first_names: list[str] = []
    surnames: list[str] = []
    ambiguous: list[str] = []  # names that are also common words: only trusted after a cue
    not_names: list[str] = []  # words that end a name


class AgentWords(_Strict):
    """How a voice agent presents itself: words and phrases that frame its brand and persona.

    None of it is a caller's PII: role words are never redacted as a name, and the brand and
    persona slots these phrases frame are not either (see _agent.py).
    """

    roles: list[str] = []  # assistant, agent, asistente … (and their forms)
    words: list[str] = []  # AI, virtual, automated, KI, IA …: the disclosure vocabulary
    determiners: list[str] = []  # your, the, a … before a role: "Juniper, your assistant"
    links: list[str] = []  # words from a role to its brand: "assistant for", "asistente de"
    greetings: list[str] = []  # a brand follows: "thanks for calling", "bienvenue chez"
    salutations: list[str] = []  # may follow the brand that opens a call: "Acme, good morning"
    self_cues: list[str] = []  # in the agent's own speech, the name after is its persona
    teams: list[str] = []  # a brand goes before them: "Quillon support", "Acme reservations"
    products: list[str] = []  # a product's name stands beside them: "the Aurora app"


class Pattern(_Strict):
    name: str
    type: EntityType
    regex: str
    score: float = Field(ge=0, le=1)
    group: str | None = None
    case_sensitive: bool = False
    exclude: list[str] = []  # a match containing one of these words is not a finding


class Lexicon(_Strict):
    """Everything language-specific the speech recognizers know, for one language."""

    language: Language
    ner_model: str | None = None
    phone_region: str
    word_boundaries: bool = True
    detect: list[str] = []
    numbers: NumberWords
    spoken: SpokenSymbols
    currency: list[str] = []
    cues: dict[EntityType, list[str]] = {}
    cue_fillers: list[str] = []
    # Hesitations and self-corrections speech puts inside a value ("four one five, uh, five
    # five five"): a value goes on across them, and a name cue still reaches its name.
    fillers: list[str] = []
    names: Names = Names()
    agent: AgentWords = AgentWords()
    location_cues: list[NameCue] = []
    lists: dict[str, list[str]] = {}
    fragments: dict[str, str] = {}
    patterns: list[Pattern] = []

    def number_words(self) -> list[str]:
        n = self.numbers
        return [*n.units, *n.teens, *n.tens, *n.hundreds, *n.hundred, *n.thousand]

    def stopwords(self) -> frozenset[str]:
        return _spacy_stopwords(self.language) - {w.lower() for w in self.number_words()}


class Shared(_Strict):
    """Word lists every language uses (data/shared.yaml)."""

    email_tlds: list[str] = Field(min_length=1)
    never_pii: list[str] = []
    json_keys: dict[EntityType, list[str]]

    def entity_by_json_key(self) -> dict[str, str]:
        return {key: entity for entity, keys in self.json_keys.items() for key in keys}


class _NoBoolLoader(yaml.SafeLoader):
    """YAML 1.1 reads `no`, `on`, `yes` as booleans; in word lists they are words."""


_NoBoolLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def data_text(name: str) -> str:
    return resources.files("voxledger.processors.redaction").joinpath("data", name).read_text()


def _read_yaml(name: str) -> Any:
    try:
        return yaml.load(data_text(name), Loader=_NoBoolLoader)
    except yaml.YAMLError as exc:
        raise LexiconError(f"{name} is not valid YAML: {exc}") from None
    except OSError as exc:
        raise LexiconError(f"cannot read word list {name}: {exc.strerror}") from None


def _schema_problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
        for e in exc.errors(include_input=False)[:5]
    )


@cache
def load_shared() -> Shared:
    try:
        return Shared.model_validate(_read_yaml("shared.yaml"))
    except ValidationError as exc:
        problems = _schema_problems(exc)
        raise LexiconError(f"shared.yaml does not match its schema: {problems}") from None


@cache
def load_lexicon(language: str) -> Lexicon:
    """The checked word lists and patterns of one language; raises LexiconError when invalid."""
    if language not in LANGUAGES:
        raise LexiconError(
            f"no word lists for language {language!r} (have: {', '.join(LANGUAGES)})"
        )
    name = f"{language}.yaml"
    try:
        lexicon = Lexicon.model_validate(_read_yaml(name))
    except ValidationError as exc:
        problems = _schema_problems(exc)
        raise LexiconError(f"{name} does not match the word-list schema: {problems}") from None
    if lexicon.language != language:
        raise LexiconError(f"{name} says it is language {lexicon.language!r}")
    compile_patterns(lexicon)  # fail at load, not on the first utterance
    return lexicon


def lexicon_digest() -> str:
    """A short fingerprint of all data files, recorded so findings can name the lists used."""
    digest = hashlib.sha256()
    for name in [*(f"{language}.yaml" for language in LANGUAGES), "shared.yaml"]:
        digest.update(data_text(name).encode())
    return digest.hexdigest()[:12]


@cache
def _spacy_stopwords(language: str) -> frozenset[str]:
    module = {
        "en": "spacy.lang.en.stop_words",
        "es": "spacy.lang.es.stop_words",
        "fr": "spacy.lang.fr.stop_words",
        "de": "spacy.lang.de.stop_words",
        "ja": "spacy.lang.ja.stop_words",
    }[language]
    stop_words = __import__(module, fromlist=["STOP_WORDS"]).STOP_WORDS
    return frozenset(w.lower() for w in stop_words)


_WORD_GAP = regex.compile(r"[\s\-]+")
_APOSTROPHE = regex.compile(r"['’]")


def phrase_regex(phrase: str) -> str:
    """A listed word or phrase as regex: spaces and hyphens between words match each other."""
    parts = _WORD_GAP.split(phrase.strip())
    # Transcripts write apostrophes both ways: "m'appelle" and "m’appelle".
    escaped = (_APOSTROPHE.sub("['’]", re.escape(p)) for p in parts)
    return r"[\s\-]+".join(escaped)


def alternation(phrases: Any) -> str:
    ordered = sorted({str(p) for p in phrases if str(p).strip()}, key=lambda p: (-len(p), p))
    return "(?:" + "|".join(phrase_regex(p) for p in ordered) + ")" if ordered else "(?!)"


def named_parts(lexicon: Lexicon) -> dict[str, str]:
    """Every name a pattern may use as {{name}}: lists, number words and fragments."""
    n = lexicon.numbers
    built_in = {
        "digit_word": alternation(n.units),
        "unit": alternation(w for w, v in n.units.items() if v > 0),
        "teen": alternation(n.teens),
        "ten": alternation(n.tens),
        "number_word": alternation(lexicon.number_words()),
        "stopword": alternation(lexicon.stopwords()),
        "first_name": alternation(lexicon.names.first_names),
        "surname": alternation(lexicon.names.surnames),
    }
    joiner = alternation(n.joiners)
    # Glued compounds ("vierunddreißig") may hold joiners, but a joiner alone is no number.
    glued = rf"(?!{joiner}\b)(?:{{{{number_word}}}}|{joiner})+"
    word = glued if n.glued else r"\b(?:{{number_word}})\b"
    built_in["spoken_number"] = rf"(?:{word}(?:[\s\-]+(?:{joiner}[\s\-]+)?{word}){{0,6}})"
    clash = sorted((set(lexicon.lists) | set(lexicon.fragments)) & set(built_in))
    if clash:
        raise LexiconError(f"{lexicon.language}.yaml: {', '.join(clash)} is a built-in name")
    return built_in | {name: alternation(words) for name, words in lexicon.lists.items()}


def expand(template: str, lexicon: Lexicon, parts: dict[str, str], depth: int = 0) -> str:
    """A pattern with its {{name}} placeholders (`parts`, from `named_parts`) replaced,
    fragments expanded recursively."""
    if depth > 8:
        raise LexiconError(f"{lexicon.language}.yaml: fragments refer to each other in a loop")

    def replace(match: regex.Match[str]) -> str:
        name = match[1]
        if name in lexicon.fragments:
            return "(?:" + expand(lexicon.fragments[name], lexicon, parts, depth + 1) + ")"
        if name in parts:
            part = parts[name]
            return expand(part, lexicon, parts, depth + 1) if "{{" in part else part
        raise LexiconError(f"{lexicon.language}.yaml: unknown placeholder {{{{{name}}}}}")

    return _PLACEHOLDER.sub(replace, template)


def compile_patterns(lexicon: Lexicon) -> list[tuple[Pattern, regex.Pattern[str]]]:
    parts = named_parts(lexicon)  # built once: the word lists are long
    return [(pattern, compile_pattern(lexicon, pattern, parts)) for pattern in lexicon.patterns]


def compile_pattern(
    lexicon: Lexicon, pattern: Pattern, parts: dict[str, str]
) -> regex.Pattern[str]:
    flags = FLAGS & ~regex.IGNORECASE if pattern.case_sensitive else FLAGS
    try:
        compiled = regex.compile(expand(pattern.regex, lexicon, parts), flags)
    except regex.error as exc:
        raise LexiconError(
            f"{lexicon.language}.yaml: pattern {pattern.name!r} is not a valid regex: {exc}"
        ) from None
    if pattern.group and pattern.group not in compiled.groupindex:
        raise LexiconError(
            f"{lexicon.language}.yaml: pattern {pattern.name!r} has no group {pattern.group!r}"
        )
    return compiled
