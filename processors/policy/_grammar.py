"""How an agent says what it is: the grammar behind ai_disclosure and no_human_claim.

A disclosure is a presentation frame ("I'm", "you've reached", "le atiende", "hier spricht")
followed, within a clause and without a negation, by an AI phrase: an AI term ("AI",
"inteligencia artificial", "KI") or a role noun with an AI modifier in either order ("virtual
assistant", "asistente virtual", "KI-Assistent"); or an AI phrase followed by a trailing
frame ("… virtual agent here"). Brand and persona slots between them are
any words, pseudonym tokens included, so a verdict does not depend on what redaction did.
A human claim is the same frame followed by a human word ("real person"), or a negated frame
followed by a non-human word ("I'm not a bot"). Every entry is a regex fragment, matched on
normalised (lower-case) text.
"""

from __future__ import annotations

import regex
from pydantic import BaseModel, ConfigDict, Field

_FLAGS = regex.IGNORECASE | regex.UNICODE
_END = r"[.?!。？！]"


def _any(fragments: list[str]) -> str:
    ordered = sorted(set(fragments), key=lambda f: (-len(f), f))
    return "(?:" + "|".join(ordered) + ")" if ordered else "(?!)"


class AgentGrammar(BaseModel):
    """One language's words for an agent presenting itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frames: list[str] = []  # "i'm", "this is", "you've reached", "soy", "hier spricht"
    trailing_frames: list[str] = []  # after what it presents: "… virtual agent here"
    negated_frames: list[str] = []  # "i'm not", "no soy", "je ne suis pas", "ich bin kein"
    negations: list[str] = []  # words that cancel what follows them: not, no, pas, kein
    negation_before: list[str] = []  # a negation that precedes its frame: Spanish "no soy"
    ai_terms: list[str] = []  # "ai", "artificial intelligence", "bot"
    modifiers: list[str] = []  # "virtual", "automated", "digital\\w*": with a role, AI
    roles: list[str] = []  # "assistant", "agent", "asistente", "assistent\\w*"
    links: list[str] = []  # role → AI term: "powered by", "de", "con", "mit"
    phrase_ends: list[str] = []  # words after which an AI term has ended its phrase
    human: list[str] = []  # "real person", "human", "ser humano"
    non_human: list[str] = []  # "bot", "robot", "machine"
    window: int = Field(50, ge=0, le=200)  # characters from a frame to what it presents

    def _clause(self) -> str:
        """Up to `window` characters of one clause with no negation word starting in it."""
        negation = rf"(?!\b{_any(self.negations)}\b)" if self.negations else ""
        return rf"(?:{negation}(?!{_END}).){{0,{self.window}}}?"

    def _frame(self) -> str:
        before = rf"(?<!\b{_any(self.negation_before)}\s+)" if self.negation_before else ""
        return rf"{before}\b{_any(self.frames)}\b"

    def ai_phrase(self) -> str:
        role, mods = _any(self.roles), _any([*self.modifiers, *self.ai_terms])
        ai = _any(self.ai_terms)
        link = rf"(?:{_any(self.links)}[\s]*)?" if self.links else ""
        ends = rf"|[\s]+{_any(self.phrase_ends)}\b" if self.phrase_ends else ""
        return (
            rf"(?:\b{mods}[\s\-]+(?:[\w'\-]+[\s]+){{0,2}}?{role}\b"
            rf"|\b{role}(?:[\s\-]+[\w'\-]+){{0,2}}?[\s\-]+{link}{mods}(?![\w\-])"
            rf"|\b{ai}(?=[\s]*(?:[,.;:!?)]|$){ends}))"
        )

    def disclosures(self) -> list[regex.Pattern[str]]:
        if not self.frames:
            return []
        patterns = [rf"{self._frame()}{self._clause()}{self.ai_phrase()}"]
        if self.trailing_frames:
            patterns.append(rf"{self.ai_phrase()}[\s,]*\b{_any(self.trailing_frames)}\b")
        if self.negated_frames and self.human:
            # "I'm not a human", "no soy una persona": denying being human discloses.
            patterns.append(
                rf"\b{_any(self.negated_frames)}\b[\s]+(?:[\w']+[\s]+){{0,2}}?{_any(self.human)}\b"
            )
        return [regex.compile(p, _FLAGS) for p in patterns]

    def human_claims(self) -> list[regex.Pattern[str]]:
        patterns = []
        if self.frames and self.human:
            patterns.append(rf"{self._frame()}{self._clause()}\b{_any(self.human)}\b")
        if self.negated_frames and self.non_human:
            # "I'm not a bot", "je ne suis pas un robot", "ich bin kein Roboter"
            patterns.append(
                rf"\b{_any(self.negated_frames)}\b[\s]*(?:[\w']+[\s]+){{0,2}}?"
                rf"{_any(self.non_human)}\b"
            )
        return [regex.compile(p, _FLAGS) for p in patterns]
