"""First names of many countries (gender-guesser's list of 61,000), read once, lower-cased.

They tell a name said in lower case after a weak cue ("this is, uh, dana whitlock", "soy
remedios quintero") from an ordinary word, where a transcript gives no capital letter.
"""

from __future__ import annotations

from functools import cache


@cache
def first_names() -> frozenset[str]:
    from gender_guesser.detector import Detector  # parses its list once (0.6 s)

    return frozenset(name for name in Detector(case_sensitive=False).names if " " not in name)
