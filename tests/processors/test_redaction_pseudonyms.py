"""Pseudonyms: one token per value within a session, different across sessions, no values kept."""

from __future__ import annotations

import json

import pytest

from voxledger.processors.redaction import Pseudonyms, RedactionError, Redactor

SECRET = b"pseudonym test secret"


def test_same_value_same_token_in_a_session_whatever_its_form(redactor: Redactor) -> None:
    session = Pseudonyms("s-1", SECRET)
    lines = [
        "my number is four one five, five five five, oh one nine nine",
        "yes, (415) 555-0199 is my cell",
        "it's john dot smith at gmail dot com",
        "John.Smith@GMAIL.com, that's right",
        "My name is Maria Lopez.",
        "this is maria lopez again",
    ]
    out = redactor.redact_texts(lines, "en", session)
    phone = {f.type: out[0].text[f.start : f.end] for f in out[0].findings}["PHONE_NUMBER"]
    assert phone in out[1].text
    email = out[2].text[out[2].findings[0].start : out[2].findings[0].end]
    assert email.startswith("<EMAIL_ADDRESS_") and email in out[3].text
    person = out[4].text[out[4].findings[0].start : out[4].findings[0].end]
    assert person.startswith("<PERSON_") and person in out[5].text


def test_different_values_get_different_tokens() -> None:
    session = Pseudonyms("s-1", SECRET)
    tokens = {session.token("PERSON", f"person {n}") for n in range(500)}
    assert len(tokens) == 500  # numbers that collide are moved to the next free one


def test_the_same_value_differs_across_sessions_and_secrets() -> None:
    a = Pseudonyms("session-a", SECRET).token("PHONE_NUMBER", "+14155550199")
    b = Pseudonyms("session-b", SECRET).token("PHONE_NUMBER", "+14155550199")
    c = Pseudonyms("session-a", b"another secret").token("PHONE_NUMBER", "+14155550199")
    assert len({a, b, c}) == 3


def test_state_round_trips_and_holds_no_values() -> None:
    session = Pseudonyms("s-1", SECRET)
    first = [session.token("EMAIL_ADDRESS", f"user{n}@example.com") for n in range(20)]
    state = json.loads(json.dumps(session.to_dict()))
    assert "example.com" not in json.dumps(state)
    again = Pseudonyms.from_dict(state, SECRET)
    assert [again.token("EMAIL_ADDRESS", f"user{n}@example.com") for n in range(20)] == first
    assert again.token("EMAIL_ADDRESS", "new@example.com") == session.token(
        "EMAIL_ADDRESS", "new@example.com"
    )


def test_a_secret_is_required() -> None:
    with pytest.raises(RedactionError):
        Pseudonyms("s-1", b"")
