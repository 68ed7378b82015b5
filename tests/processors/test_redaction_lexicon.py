"""Word lists are data: every language's file loads and is checked; a broken file says where."""

from __future__ import annotations

import pytest

import voxledger.processors.redaction as redaction
from voxledger.processors.redaction import LANGUAGES, LexiconError, _lexicon, load_lexicon


def test_public_api_is_pinned() -> None:
    assert set(redaction.__all__) == {
        "ENTITY_TYPES",
        "LANGUAGES",
        "NO_ALLOW",
        "REDACTOR_VERSION",
        "AllowList",
        "Context",
        "Finding",
        "LexiconError",
        "Pseudonyms",
        "RedactedText",
        "RedactionError",
        "Redactor",
        "SessionRedactor",
        "Span",
        "load_lexicon",
    }


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_loads_with_its_patterns(language: str) -> None:
    lexicon = load_lexicon(language)
    assert lexicon.language == language
    assert _lexicon.compile_patterns(lexicon)
    assert lexicon.numbers.units


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("language: en\nphone_region: US\n", "numbers: Field required"),
        ("[unclosed", "is not valid YAML"),
        (
            "language: en\nphone_region: US\nnumbers: {units: {one: 1}}\n"
            "spoken: {at: [at], dot: [dot]}\n"
            "patterns: [{name: broken, type: PERSON, score: 0.5, regex: '(unclosed'}]\n",
            "pattern 'broken' is not a valid regex",
        ),
        (
            "language: en\nphone_region: US\nnumbers: {units: {one: 1}}\n"
            "spoken: {at: [at], dot: [dot]}\n"
            "patterns: [{name: p, type: NOT_A_TYPE, score: 0.5, regex: 'x'}]\n",
            "patterns.0.type",
        ),
    ],
)
def test_a_broken_data_file_is_refused_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, text: str, problem: str
) -> None:
    monkeypatch.setattr(_lexicon, "data_text", lambda name: text)
    with pytest.raises(LexiconError, match=r"en\.yaml") as caught:
        _lexicon.load_lexicon.__wrapped__("en")
    assert problem in str(caught.value)


def test_unknown_language_is_refused() -> None:
    with pytest.raises(LexiconError, match="no word lists for language 'xx'"):
        load_lexicon("xx")


def test_words_like_no_and_on_stay_words() -> None:
    assert "no" in load_lexicon("en").cue_fillers  # YAML 1.1 would have read it as False
    assert "no" in _lexicon.load_shared().email_tlds


def test_shared_lists_load_and_name_real_entity_types() -> None:
    shared = _lexicon.load_shared()
    assert shared.entity_by_json_key()["phone_number"] == "PHONE_NUMBER"
    assert set(shared.json_keys) <= set(redaction.ENTITY_TYPES)
