"""Input spaCy cannot take as it is: long runs without a space, texts beyond nlp.max_length,
lone surrogates, nesting deeper than a copy can recurse. Each is redacted, nothing missed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from voxledger.processors.redaction import Pseudonyms, RedactionError, Redactor, SessionRedactor
from voxledger.processors.redaction._engine import (
    CHUNK_CHARS,
    LONG_RUN_CHARS,
    blank_long_runs,
    chunks,
)
from voxledger.processors.redaction._lines import JsonlRedactor
from voxledger.processors.redaction_cli import redact_command

SECRET = b"long input secret"
BRACKETS = "[" * 30_000  # spaCy's tokenizer alone took minutes on this before


def session() -> Pseudonyms:
    return Pseudonyms("long-input", SECRET)


def test_a_30_kb_bracket_run_is_redacted_and_the_pii_around_it_found(redactor: Redactor) -> None:
    text = (
        f"Hi, my name is John Smith, email john.smith@example.com {BRACKETS} "
        "my card is 4111 1111 1111 1111 and I live in Paris"
    )
    done = redactor.redact_text(text, "en", session())
    types = [f.type for f in done.findings]
    assert types == ["PERSON", "EMAIL_ADDRESS", "CREDIT_CARD", "LOCATION"]
    for value in ("John", "john.smith@example.com", "4111", "Paris"):
        assert value not in done.text
    assert BRACKETS in done.text  # the run itself is kept as it was


def test_pii_inside_or_stuck_to_a_long_run_is_still_found(redactor: Redactor) -> None:
    # The regex recognizers read the original text, run and all; spaCy reads the run's ends.
    inside = "{" * 500 + "mail:jane.doe@example.org" + "}" * 500
    stuck = "Contact Alice Johnson" + BRACKETS
    done = redactor.redact_text(f"{inside} {stuck}", "en", session())
    assert "jane.doe@example.org" not in done.text and "Alice" not in done.text
    assert {f.type for f in done.findings} == {"EMAIL_ADDRESS", "PERSON"}


def test_long_runs_are_blanked_for_spacy_with_offsets_kept() -> None:
    run = "x" * (LONG_RUN_CHARS + 1)
    text = f"short [[[ words {run} end"
    blanked = blank_long_runs(text)
    assert len(blanked) == len(text)
    assert blanked.startswith("short [[[ words ") and blanked.endswith(" end")
    assert " " * 50 in blanked[16:-4]  # the run's middle is blank, its ends stay
    assert blank_long_runs("y" * LONG_RUN_CHARS) == "y" * LONG_RUN_CHARS  # the bound itself


def test_long_texts_are_cut_after_sentences_into_pieces_spacy_takes() -> None:
    sentence = "Maria Garcia called from Madrid. "
    text = sentence * (3 * CHUNK_CHARS // len(sentence))
    pieces = chunks(text)
    assert "".join(pieces) == text
    assert len(pieces) >= 3 and all(len(p) <= CHUNK_CHARS for p in pieces)
    assert all(p.startswith("Maria Garcia") for p in pieces)  # no name cut in two


def test_a_text_beyond_spacys_max_length_is_redacted_everywhere(redactor: Redactor) -> None:
    nlp = redactor.pipelines["en"]
    # Two paragraphs fill a piece (9,516 of 10,000 characters): the pieces repeat, and each
    # distinct piece is parsed once, so this stays fast.
    filler = "the order shipped on time and the customer was happy with it. " * 76
    paragraph = f"{filler}Please call Maria Garcia in Madrid about it.\n"
    text = paragraph * (nlp.max_length // len(paragraph) + 2)
    assert len(text) > nlp.max_length
    done = redactor.redact_text(text, "en", session())
    assert "Maria" not in done.text and "Madrid" not in done.text
    count = text.count("Maria Garcia")
    assert [f.type for f in done.findings] == ["PERSON", "LOCATION"] * count


def test_a_lone_surrogate_is_read_as_a_replacement_character(redactor: Redactor) -> None:
    spans = redactor.spans("Hi \ud800 I am John Smith from London \udfff", "en")
    assert [s.type for s in spans] == ["PERSON", "LOCATION"]


def test_jsonl_lines_the_redactor_cannot_take_are_named_not_crashed_on(
    redactor: Redactor,
) -> None:
    deep = '{"type": "conversation.item.create", "item": ' + "[" * 900 + "]" * 900 + "}"
    lone = '{"type": "conversation.item.create", "text": "I am John Smith \\ud800"}'
    stream = JsonlRedactor(redactor, SECRET, "en")
    out = stream.feed(deep) + stream.feed(lone) + stream.finish()
    assert out[0].problem == "line 1: JSON nested more than 128 levels deep; redacted as text"
    assert out[1].problem and out[1].problem.startswith("line 2: JSON string holds a lone")
    assert "John" not in out[1].text and "\\ud800" in out[1].text  # still the escape, as sent


def test_the_session_redactor_rejects_a_payload_nested_too_deep(redactor: Redactor) -> None:
    from voxledger.envelope import Envelope

    payload = {"type": "conversation.item.create", "item": json.loads("[" * 900 + "]" * 900)}
    envelope = Envelope.model_validate(
        {
            "session_id": "sess_deep",
            "seq": 0,
            "direction": "client",
            "type": "conversation.item.create",
            "source": "proxy",
            "payload": payload,
        }
    )
    with pytest.raises(RedactionError, match="nested more than 128 levels deep"):
        SessionRedactor(redactor, "sess_deep", SECRET).process(envelope)


@pytest.mark.parametrize("args", [[], ["--jsonl"]], ids=["plain", "jsonl"])
def test_stdin_that_is_not_utf8_keeps_every_line(redactor: Redactor, args: list[str]) -> None:
    stdin = b'{"type": "x", "text": "caf\xe9 with John Smith"}\nplain \xff\xfe line\nok\n'
    result = CliRunner().invoke(
        redact_command, [*args, "--lang", "en"], input=stdin, obj={"redactor": redactor}
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.split("\n")
    assert len(lines) == 4 and lines[-1] == "" and lines[2] == "ok"
    assert "John" not in lines[0] and "caf\ufffd" in lines[0]
    assert "line 1: not UTF-8; invalid bytes read as U+FFFD" in result.stderr
    assert "line 2: not UTF-8; invalid bytes read as U+FFFD" in result.stderr
    assert "line 3: not UTF-8" not in result.stderr
