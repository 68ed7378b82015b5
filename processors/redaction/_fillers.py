"""Speech with its hesitations taken out, and the way back to the original offsets.

"four one five, uh, five five five", "this is, um, dana whitlock", "april, um, third": a
filler inside a value breaks every recognizer's view of it. The Redactor analyses such a
text twice, as said and without its fillers, and maps what the second pass finds back onto
the original text, fillers inside the value included.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex

from voxledger.processors.redaction._lexicon import FLAGS, Lexicon, alternation

# Hesitation sounds in any Latin-script language: uh, umm, erm, äh, ähm, euh, eh, hmm.
_HESITATION = regex.compile(
    r"u+h+|u+m+|e+r+m*|e+h+m*|ä+h+m*|ö+h+m*|e+u+h+|h+e+u+h+|h+m+|m+h*m*|a+h+|e+m+", FLAGS
)


@dataclass(frozen=True)
class Unfilled:
    """A text without its fillers, and for each of its characters the original offset."""

    text: str
    offsets: tuple[int, ...]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        return self.offsets[start], self.offsets[end - 1] + 1


class FillerRemover:
    """Takes out one language's fillers where they are hesitations, not words of the sentence.

    A hesitation sound ("uh") always goes; a word that can also be meant ("like", "so",
    "sorry") goes only when a comma or a pause sets it off. What goes takes its punctuation
    with it and leaves one space, so "rafael, um, dominguez" reads "rafael dominguez".
    """

    def __init__(self, lexicon: Lexicon) -> None:
        self.spaced = lexicon.word_boundaries
        fillers = alternation(lexicon.fillers)
        if not lexicon.fillers:
            self._pattern = None
        elif self.spaced:
            self._pattern = regex.compile(
                rf"(?P<before>[\s]*[,…]+|[\s]*\.{{2,}})?(?:^|[\s]+)(?P<filler>{fillers})"
                rf"(?![\p{{L}}\d'’])(?P<after>[\s]*(?:[,…]+|\.{{2,}}))?(?=[\s]|$)",
                FLAGS,
            )
        else:
            self._pattern = regex.compile(rf"[、,\s]*(?P<filler>{fillers})[、,\s]*", FLAGS)

    def remove(self, text: str) -> Unfilled | None:
        """The text without its fillers, or None when it has none."""
        if self._pattern is None:
            return None
        pieces: list[str] = []
        offsets: list[int] = []
        pos = 0
        for m in self._pattern.finditer(text):
            if self.spaced and not (
                m["before"] or m["after"] or _HESITATION.fullmatch(m["filler"])
            ):
                continue
            pieces.append(text[pos : m.start()])
            offsets.extend(range(pos, m.start()))
            gap = " " if self.spaced and m.start() > 0 and m.end() < len(text) else ""
            pieces.append(gap)
            offsets.extend([m.start()] * len(gap))
            pos = m.end()
        if pos == 0:
            return None
        pieces.append(text[pos:])
        offsets.extend(range(pos, len(text)))
        return Unfilled("".join(pieces), tuple(offsets))
