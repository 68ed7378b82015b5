"""Agent speech: the words and slots a voice agent presents itself with, never a caller's PII.

"Hi, I'm Acme's AI assistant", "Thanks for calling Northwind Traders, this is Juniper, your
virtual assistant": the role words, the brand and the persona name are the operator's, and a
name recognizer must not take them for a person or a place. A redacted disclosure would also
hide it from the policy. This module finds those spans; the Redactor keeps names out of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import regex

from voxledger.processors.redaction._lexicon import FLAGS, Lexicon, alternation

Span = tuple[int, int]
# A capitalised name of a brand or persona: up to four words ("Northwind Traders",
# "Wendell & Co", "Banco de la Rioja", "Zephyr X2"), joined by particles or "&".
_PARTICLE = r"(?:de|del|de\s+la|du|des|der|von|van|la|le|el|y|and|&|of)"
_CAP_WORD = r"(?:\p{Lu}[\p{L}\p{M}\d'’\-]*|\d+[\p{L}\d]*)"
_POSSESSIVE = r"['’]s?"
_JA_AGENT = regex.compile(
    r"(?P<brand>[\p{Han}\p{Katakana}ー・A-Za-zＡ-Ｚａ-ｚ0-9]{2,16}?)の"
    r"(?:AI|ＡＩ|エーアイ|人工知能|自動音声|バーチャル|音声)*(?:アシスタント|オペレーター|エージェント|コンシェルジュ|ボット)"
    r"(?:[、,\s]*(?P<persona>[\p{Katakana}ー]{2,8}|[\p{Han}]{1,4}))?"
    r"(?=です|でございます|と申します|が|、|。|$)"
)


class AllowList:
    """Terms and patterns a tenant or a session declares are not PII (brands, products)."""

    def __init__(self, terms: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        self.terms = frozenset(t.strip() for t in terms if t and t.strip())
        self.patterns = tuple(patterns)
        compiled = [rf"(?<![\p{{L}}\d]){alternation(self.terms)}(?![\p{{L}}\d])"]
        compiled += [f"(?:{p})" for p in self.patterns]
        self._regex = regex.compile("|".join(compiled), FLAGS) if self else None

    def __bool__(self) -> bool:
        return bool(self.terms or self.patterns)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, AllowList)
            and self.terms == other.terms
            and self.patterns == other.patterns
        )

    def __hash__(self) -> int:
        return hash((self.terms, self.patterns))

    def with_terms(self, terms: Iterable[str]) -> AllowList:
        more = self.terms | {t.strip() for t in terms if t and t.strip()}
        return self if more == self.terms else AllowList(more, self.patterns)

    def spans(self, text: str) -> list[Span]:
        if self._regex is None:
            return []
        return [m.span() for m in self._regex.finditer(text) if m.end() > m.start()]


NO_ALLOW = AllowList()


@dataclass(frozen=True)
class AgentSpans:
    """Where a text speaks as an agent: role words, and the brand and persona slots."""

    vocabulary: tuple[Span, ...]
    slots: tuple[Span, ...]


class AgentSpeech:
    """Finds agent self-presentation in one language's text (built from its lexicon)."""

    def __init__(self, lexicon: Lexicon, shared_words: Sequence[str] = ()) -> None:
        self.language = lexicon.language
        agent = lexicon.agent
        words = [*agent.roles, *agent.words, *shared_words]
        self.spaced = lexicon.word_boundaries
        edge_l = r"(?<![\p{L}\d])" if self.spaced else ""
        edge_r = r"(?![\p{L}\d])" if self.spaced else ""
        self._vocabulary = regex.compile(rf"{edge_l}{alternation(words)}{edge_r}", FLAGS)
        self._slots: list[regex.Pattern[str]] = []
        self._greeting: regex.Pattern[str] | None = None
        self._opening: regex.Pattern[str] | None = None
        self._product: regex.Pattern[str] | None = None
        self._persona: regex.Pattern[str] | None = None
        if self.spaced and agent.roles:
            self._build_slots(lexicon)

    def _build_slots(self, lexicon: Lexicon) -> None:
        agent = lexicon.agent
        role = alternation(agent.roles)
        mods = alternation(agent.words)
        det = alternation(agent.determiners)
        link = alternation(agent.links)
        greet = alternation(agent.greetings)
        # A role with its modifiers on either side: "AI assistant", "asistente virtual".
        # "the virtual claims agent": a word or two may stand between the modifiers and the role.
        role_phrase = (
            rf"(?:{mods}[\s\-]+){{0,3}}(?:[\p{{L}}\-]+[\s]+){{0,2}}?{role}(?:[\s\-]+{mods}){{0,2}}"
        )
        elided = r"[\s]+|(?<=['’])"  # French "l'agent", "d'Acme": no space after the apostrophe
        # No word of a name is a common word ("I'm", "The") or a role word ("AI").
        common = alternation([*lexicon.stopwords(), *agent.roles, *agent.words])
        word = rf"(?!(?i:{common})(?![\p{{L}}\d]))"
        name_re = (
            rf"{word}\p{{Lu}}[\p{{L}}\p{{M}}\d'’\-]*"
            rf"(?:[\s]+(?:{_PARTICLE}[\s]+)?{word}{_CAP_WORD}){{0,3}}"
        )
        name = rf"(?P<slot>{name_re})"
        caseless = FLAGS & ~regex.IGNORECASE  # names are told by their capital letter
        # Slot phrases are matched case-insensitively but for the name, whose capital matters.
        # "thanks for calling Northwind Traders", "bienvenue chez Maison Dupré"
        self._greeting = regex.compile(rf"(?i:\b{greet})(?:[\s,]+|(?<=['’])){name}", caseless)
        self._slots = [
            # "Acme's AI assistant", "Tailwind Bank's automated agent"
            regex.compile(
                rf"(?P<slot>{name_re}{_POSSESSIVE})(?:[\s]+\S+){{0,2}}?[\s]+(?i:{role_phrase})\b",
                caseless,
            ),
            # "the virtual assistant for Contoso", "asistente virtual de Banco Rioja"
            regex.compile(
                rf"(?i:\b{role_phrase}(?:[\s]+|[\s]*,[\s]*){link})(?:{elided})"
                rf"(?:(?i:{det})(?:{elided}))?{name}",
                caseless,
            ),
            # "Juniper, your virtual assistant", "Max here, the digital assistant"
            regex.compile(
                rf"{name}(?:[\s]+(?i:here|aquí|ici|hier))?[\s]*,[\s]*(?i:{det})(?:{elided})(?:\S+[\s]+){{0,2}}?(?i:{role_phrase})\b",
                caseless,
            ),
        ]
        # "Marlowe Insurance, this is Theo", "Óptica Marisol, buenos días, soy Sofía": the
        # operator's name opens the call; "Quillon support here": the brand before its team.
        # "Librairie Morel bonjour, c'est Margot", "Oakhaven Hotels automated reservations".
        salute = alternation(agent.salutations)
        self._opening = regex.compile(
            rf"(?:^|(?<=[.!?]\s))(?P<slot>{name_re})(?:(?:[\s]*,[\s]*|[\s]+(?=(?i:{salute})\b))"
            rf"(?:[\p{{L}}'’]+[\s,]+){{0,3}}?"
            rf"(?i:{alternation([*agent.self_cues, *agent.greetings])})\b"
            rf"|[\s]+(?:(?i:{mods})[\s]+)?(?i:{alternation(agent.teams)})\b)",
            caseless,
        )
        # "Brisa 300", "Tornade S2", "the Aurora app", "l'application Vernier Mobile":
        # a name with a model number or a product word is a product, not a person.
        products = alternation(agent.products)
        self._product = regex.compile(
            rf"(?P<slot>{name_re})(?=[\s]+(?:\d+[\p{{L}}\d]*|\p{{Lu}}\d+|(?i:{products}))\b)"
            rf"|(?i:\b{products})(?:[\s]+|(?<=['’])){name}",
            caseless,
        )
        self._persona = regex.compile(
            rf"(?i:\b{alternation(agent.self_cues)})[\s,]+"
            rf"(?:(?i:{alternation(lexicon.fillers)})[\s,]+)*(?P<slot>{name_re})(?!['’]s)"
            # "you're talking with our bot, Echo": the name it gives its role
            rf"|(?i:\b{det})(?:{elided})(?i:{role_phrase})[\s]*,[\s]*(?P<slot>{name_re})",
            caseless,
        )

    def spans(self, text: str, speaker: str | None = None) -> AgentSpans:
        """Role words anywhere; brand and persona slots; in the agent's own speech, the name
        it introduces itself with ("Hi, this is Sam from Acme") is its persona."""
        vocabulary = tuple(m.span() for m in self._vocabulary.finditer(text))
        slots: list[Span] = []
        if not self.spaced:
            for m in _JA_AGENT.finditer(text):
                slots += [m.span(g) for g in ("brand", "persona") if m.group(g)]
            return AgentSpans(vocabulary, tuple(slots))
        if self._greeting is not None:
            for pattern in (self._greeting, self._product):
                slots += [m.span("slot") for m in pattern.finditer(text)]
        if vocabulary:  # without a role word no phrase here presents an agent
            for pattern in self._slots:
                slots += [m.span("slot") for m in pattern.finditer(text, overlapped=True)]
        if speaker == "assistant" and self._persona is not None:
            # Only the agent opens a call with its brand or names its persona.
            for pattern in (self._opening, self._persona):
                slots += [m.span("slot") for m in pattern.finditer(text)]
        return AgentSpans(vocabulary, tuple(slots))
