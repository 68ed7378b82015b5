"""SessionRedactor: every text field of every event type, delta safety, metadata, determinism."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from voxledger.envelope import Envelope
from voxledger.processors.redaction import (
    REDACTOR_VERSION,
    AllowList,
    RedactionError,
    Redactor,
    SessionRedactor,
)

SECRET = b"session test secret"
SESSION = "sess_test"
PHONE = "415-555-0199"
EMAIL = "john.smith@gmail.com"
PLANTED = (PHONE, EMAIL, "4155550199", "john.smith")
SAYING = f"Sure, call me at {PHONE} or write to {EMAIL}."
TOKEN = re.compile(r"<[A-Z_]+_\d+>")


def envelope(seq: int, event_type: str, direction: str = "server", **payload: Any) -> Envelope:
    return Envelope(
        envelope_id=f"env-{seq}",
        session_id=SESSION,
        seq=seq,
        direction=direction,
        type=event_type,
        observed_at="2025-06-01T12:00:00.000001Z",
        source="proxy",
        payload={"type": event_type, "event_id": f"event_{seq}", **payload},
    )


def run(redactor: Redactor, envelopes: list[Envelope]) -> list[Envelope]:
    session = SessionRedactor(redactor, SESSION, SECRET)
    out = [done for e in envelopes for done in session.process(e)]
    return out + session.flush()


def without_tokens(text: str) -> str:
    return TOKEN.sub("", text)


# (event type, payload, JSON paths of the fields the planted saying sits in)
FIELD_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "conversation.item.input_audio_transcription.completed",
        {"item_id": "i1", "content_index": 0, "transcript": SAYING},
        ["payload.transcript"],
    ),
    (
        "conversation.item.input_audio_transcription.segment",
        {"item_id": "i1", "content_index": 0, "id": "seg1", "text": SAYING, "speaker": "A"},
        ["payload.text"],
    ),
    (
        "response.output_audio_transcript.done",
        {
            "response_id": "r1",
            "item_id": "i2",
            "output_index": 0,
            "content_index": 0,
            "transcript": SAYING,
        },
        ["payload.transcript"],
    ),
    (
        "response.audio_transcript.done",
        {
            "response_id": "r1",
            "item_id": "i2",
            "output_index": 0,
            "content_index": 0,
            "transcript": SAYING,
        },
        ["payload.transcript"],
    ),
    (
        "response.output_text.done",
        {
            "response_id": "r1",
            "item_id": "i2",
            "output_index": 0,
            "content_index": 0,
            "text": SAYING,
        },
        ["payload.text"],
    ),
    (
        "response.text.done",
        {
            "response_id": "r1",
            "item_id": "i2",
            "output_index": 0,
            "content_index": 0,
            "text": SAYING,
        },
        ["payload.text"],
    ),
    (
        "conversation.item.created",
        {
            "item": {
                "id": "i3",
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_audio", "transcript": SAYING},
                    {"type": "input_text", "text": SAYING},
                ],
            }
        },
        ["payload.item.content[0].transcript", "payload.item.content[1].text"],
    ),
    (
        "conversation.item.done",
        {
            "item": {
                "id": "i4",
                "type": "message",
                "role": "assistant",
                "content": [
                    {"type": "output_audio", "transcript": SAYING},
                    {"type": "output_text", "text": SAYING},
                ],
            }
        },
        ["payload.item.content[0].transcript", "payload.item.content[1].text"],
    ),
    (
        "response.output_item.done",
        {
            "response_id": "r1",
            "output_index": 0,
            "item": {
                "id": "i5",
                "type": "message",
                "content": [{"type": "audio", "transcript": SAYING}],
            },
        },
        ["payload.item.content[0].transcript"],
    ),
    (
        "response.content_part.done",
        {
            "response_id": "r1",
            "item_id": "i5",
            "output_index": 0,
            "content_index": 0,
            "part": {"type": "audio", "transcript": SAYING},
        },
        ["payload.part.transcript"],
    ),
    (
        "response.content_part.added",
        {
            "response_id": "r1",
            "item_id": "i5",
            "output_index": 0,
            "content_index": 1,
            "part": {"type": "text", "text": SAYING},
        },
        ["payload.part.text"],
    ),
    (
        "response.function_call_arguments.done",
        {
            "response_id": "r1",
            "item_id": "fc1",
            "output_index": 0,
            "call_id": "call_1",
            "name": "update_contact",
            "arguments": json.dumps({"phone": PHONE, "email": EMAIL, "note": SAYING}),
        },
        ["payload.arguments"],
    ),
    (
        "conversation.item.created",
        {
            "item": {
                "id": "fo1",
                "type": "function_call_output",
                "call_id": "call_1",
                "output": json.dumps({"status": "ok", "contact": SAYING}),
            }
        },
        ["payload.item.output"],
    ),
    (
        "response.mcp_call_arguments.done",
        {
            "response_id": "r1",
            "item_id": "mcp1",
            "output_index": 0,
            "arguments": json.dumps({"query": SAYING}),
        },
        ["payload.arguments"],
    ),
    (
        "response.output_item.done",
        {
            "response_id": "r1",
            "output_index": 0,
            "item": {
                "id": "mcp2",
                "type": "mcp_call",
                "server_label": "crm",
                "name": "lookup",
                "arguments": json.dumps({"email": EMAIL}),
                "output": SAYING,
                "error": {"type": "tool_execution_error", "message": SAYING},
            },
        },
        ["payload.item.arguments", "payload.item.output", "payload.item.error.message"],
    ),
    (
        "response.done",
        {
            "response": {
                "id": "r1",
                "status": "completed",
                "output": [
                    {
                        "id": "i6",
                        "type": "message",
                        "content": [{"type": "output_audio", "transcript": SAYING}],
                    },
                    {
                        "id": "fc2",
                        "type": "function_call",
                        "call_id": "call_2",
                        "arguments": json.dumps({"phone": PHONE}),
                    },
                ],
                "usage": {"total_tokens": 10},
            }
        },
        [
            "payload.response.output[0].content[0].transcript",
            "payload.response.output[1].arguments",
        ],
    ),
    (
        "session.updated",
        {
            "session": {
                "id": "sess_1",
                "instructions": f"The caller is {SAYING}",
                "prompt": {"id": "pmpt_1", "variables": {"customer": SAYING}},
            }
        },
        ["payload.session.instructions", "payload.session.prompt.variables.customer"],
    ),
    (
        "session.created",
        {"session": {"id": "sess_1", "instructions": SAYING}},
        ["payload.session.instructions"],
    ),
    (
        "error",
        {"error": {"type": "invalid_request_error", "message": f"bad value {SAYING}"}},
        ["payload.error.message"],
    ),
    (
        "voxledger.unparsed",
        {"raw_text": f"{{not json: {SAYING}", "parse_error": "invalid JSON"},
        ["payload.raw_text"],
    ),
]
CLIENT_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "session.update",
        {"session": {"type": "realtime", "instructions": f"Greet {SAYING}"}},
        ["payload.session.instructions"],
    ),
    (
        "conversation.item.create",
        {
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": SAYING}],
            }
        },
        ["payload.item.content[0].text"],
    ),
    (
        "response.create",
        {"response": {"instructions": f"Confirm {SAYING}"}},
        ["payload.response.instructions"],
    ),
]


@pytest.mark.parametrize(
    ("event_type", "payload", "fields", "direction"),
    [(*case, "server") for case in FIELD_CASES] + [(*case, "client") for case in CLIENT_CASES],
)
def test_every_text_field_is_redacted(
    redactor: Redactor, event_type: str, payload: dict[str, Any], fields: list[str], direction: str
) -> None:
    (out,) = run(redactor, [envelope(0, event_type, direction, **payload)])
    dumped = out.model_dump_json()
    for value in PLANTED:
        assert value not in dumped
    found_in = {f["field"] for f in out.model_extra["redaction"]["findings"]}
    assert set(fields) <= found_in
    assert out.payload["type"] == event_type and out.envelope_id == "env-0" and out.seq == 0


def test_tool_arguments_stay_valid_json(redactor: Redactor) -> None:
    arguments = json.dumps({"phone": 4155550199, "order_number": "773419", "note": SAYING})
    (out,) = run(
        redactor,
        [
            envelope(
                0,
                "response.function_call_arguments.done",
                item_id="fc1",
                call_id="c1",
                arguments=arguments,
            )
        ],
    )
    decoded = json.loads(out.payload["arguments"])
    assert decoded["phone"].startswith("<PHONE_NUMBER_")
    assert decoded["order_number"].startswith("<ACCOUNT_NUMBER_")
    assert PHONE not in decoded["note"] and EMAIL not in decoded["note"]


def test_metadata_records_findings_without_values(redactor: Redactor) -> None:
    (out,) = run(
        redactor,
        [
            envelope(
                0,
                "conversation.item.input_audio_transcription.completed",
                item_id="i1",
                content_index=0,
                transcript=SAYING,
            )
        ],
    )
    record = out.model_extra["redaction"]
    assert record["version"] == REDACTOR_VERSION
    assert {tuple(sorted(f)) for f in record["findings"]} == {
        ("end", "field", "recognizer", "score", "start", "type")
    }
    assert {f["type"] for f in record["findings"]} == {"PHONE_NUMBER", "EMAIL_ADDRESS"}
    for finding in record["findings"]:
        token = out.payload["transcript"][finding["start"] : finding["end"]]
        assert token == f"<{token[1:-1]}>" and token[1:].startswith(finding["type"])
    assert not any(value in json.dumps(record) for value in PLANTED)


def test_binary_frames_keep_only_length_and_hash(redactor: Redactor) -> None:
    raw = base64.b64encode(b"call me at 415-555-0199").decode()
    (out,) = run(redactor, [envelope(0, "voxledger.unparsed", raw_b64=raw, parse_error="binary")])
    assert out.payload["raw_b64"]["bytes"] == 23 and len(out.payload["raw_b64"]["sha256"]) == 64
    assert out.model_extra["redaction"]["elided"] == ["payload.raw_b64"]


def test_audio_stays_elided_and_leftover_base64_is_elided(redactor: Redactor) -> None:
    summary = {"bytes": 4800, "duration_ms": 100.0, "sha256": "ab" * 32}
    b64 = base64.b64encode(b"\x00\x01" * 2400).decode()
    out = run(
        redactor,
        [
            envelope(0, "input_audio_buffer.append", "client", audio=b64),
            envelope(
                1, "response.output_audio.delta", response_id="r1", item_id="i1", delta=summary
            ),
        ],
    )
    assert out[0].payload["audio"]["bytes"] == 4800 and isinstance(out[0].payload["audio"], dict)
    assert out[1].payload["delta"] == summary


def test_transcription_logprobs_lose_their_tokens(redactor: Redactor) -> None:
    logprobs = [{"token": "415", "logprob": -0.1, "bytes": [52, 49, 53]}]
    (out,) = run(
        redactor,
        [
            envelope(
                0,
                "conversation.item.input_audio_transcription.completed",
                item_id="i1",
                content_index=0,
                transcript="hi",
                logprobs=logprobs,
            )
        ],
    )
    assert out.payload["logprobs"] == [{"logprob": -0.1}]


def deltas(event_type: str, final_type: str, field: str, pieces: list[str]) -> list[Envelope]:
    ids = {"item_id": "item_1", "content_index": 0, "response_id": "resp_1", "output_index": 0}
    out = [envelope(i, event_type, **ids, delta=p) for i, p in enumerate(pieces)]
    out.append(envelope(len(pieces), final_type, **ids, **{field: "".join(pieces)}))
    return out


@pytest.mark.parametrize(
    ("event_type", "final_type", "field"),
    [
        (
            "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.completed",
            "transcript",
        ),
        (
            "response.output_audio_transcript.delta",
            "response.output_audio_transcript.done",
            "transcript",
        ),
        ("response.audio_transcript.delta", "response.audio_transcript.done", "transcript"),
        ("response.output_text.delta", "response.output_text.done", "text"),
        ("response.text.delta", "response.text.done", "text"),
    ],
)
def test_pii_split_across_deltas_never_leaks(
    redactor: Redactor, event_type: str, final_type: str, field: str
) -> None:
    pieces = [
        "Sure, my number is 415",
        "-55",
        "5-0199 and my email is jo",
        "hn.smi",
        "th@gm",
        "ail.com, thanks",
    ]
    out = run(redactor, deltas(event_type, final_type, field, pieces))
    assert [e.seq for e in out] == list(range(len(pieces) + 1))
    assert [e.envelope_id for e in out] == [f"env-{i}" for i in range(len(pieces) + 1)]
    redacted = [e.payload["delta"] for e in out[:-1]]
    joined = "".join(redacted)
    assert joined == out[-1].payload[field]
    for text in [*redacted, joined]:
        clear = without_tokens(text)
        assert not re.search(r"\d", clear), text  # no digit of the number survives anywhere
        assert not any(part in clear for part in ("john", "smith", "gmail", "hn.smi")), text
    assert "<PHONE_NUMBER_" in redacted[0] and redacted[1] == ""
    assert out[1].model_extra["redaction"]["findings"] == []
    assert "<EMAIL_ADDRESS_" in redacted[2] and redacted[3] == redacted[4] == ""


def test_spoken_digits_split_across_deltas(redactor: Redactor) -> None:
    pieces = ["it's four one", " five five five", " five oh one", " nine nine"]
    out = run(
        redactor,
        deltas(
            "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.completed",
            "transcript",
            pieces,
        ),
    )
    for e in out[:-1]:
        assert not re.search(r"\b(one|five|oh|nine)\b", without_tokens(e.payload["delta"]))
    assert "".join(e.payload["delta"] for e in out[:-1]) == out[-1].payload["transcript"]


def test_function_arguments_split_across_deltas(redactor: Redactor) -> None:
    pieces = ['{"phone": "41', "5-555-01", '99", "email": "john.sm', 'ith@gmail.com"}']
    out = run(
        redactor,
        deltas(
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "arguments",
            pieces,
        ),
    )
    joined = "".join(e.payload["delta"] for e in out[:-1])
    assert joined == out[-1].payload["arguments"]
    assert json.loads(joined)["phone"].startswith("<PHONE_NUMBER_")
    for e in out:
        assert not re.search(r"\d{2}", without_tokens(json.dumps(e.payload)))


def test_held_deltas_are_flushed_when_the_session_closes(redactor: Redactor) -> None:
    session = SessionRedactor(redactor, SESSION, SECRET)
    ids = {"item_id": "item_9", "content_index": 0}
    assert (
        session.process(envelope(0, "response.output_text.delta", **ids, delta="call 415-5")) == []
    )
    assert session.process(envelope(1, "response.output_text.delta", **ids, delta="55-0199")) == []
    assert session.held == 2
    out = session.process(envelope(2, "voxledger.session.closed", "client"))
    assert [e.seq for e in out] == [0, 1, 2] and session.held == 0
    assert "<PHONE_NUMBER_" in out[0].payload["delta"] and out[1].payload["delta"] == ""


def test_response_done_releases_its_unfinished_deltas(redactor: Redactor) -> None:
    session = SessionRedactor(redactor, SESSION, SECRET)
    ids = {"item_id": "item_9", "content_index": 0, "response_id": "resp_9"}
    session.process(envelope(0, "response.output_audio_transcript.delta", **ids, delta="hi Jo"))
    out = session.process(envelope(1, "response.done", response={"id": "resp_9", "output": []}))
    assert [e.seq for e in out] == [0, 1]


def conversation() -> list[Envelope]:
    pieces = ["My name is Maria Lopez, my number is 4", "15 555 01", "99."]
    items = deltas(
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "transcript",
        pieces,
    )
    more = [
        envelope(10, "session.update", "client", session={"instructions": "Be brief."}),
        envelope(
            11,
            "response.output_text.done",
            item_id="i2",
            content_index=0,
            text="Thanks Maria Lopez, I will call 415-555-0199.",
        ),
    ]
    return [*items, *more]


def test_same_input_gives_byte_identical_output(redactor: Redactor) -> None:
    first = [e.model_dump_json() for e in run(redactor, conversation())]
    redactor.clear_cache()
    second = [e.model_dump_json() for e in run(redactor, conversation())]
    assert first == second


def test_state_survives_a_restart_mid_stream(redactor: Redactor) -> None:
    envelopes = conversation()
    straight = run(redactor, envelopes)
    session = SessionRedactor(redactor, SESSION, SECRET)
    out = [done for e in envelopes[:2] for done in session.process(e)]
    state = json.loads(json.dumps(session.state()))  # as a changelog-backed table would store it
    resumed = SessionRedactor.from_state(redactor, SECRET, state)
    out += [done for e in envelopes[2:] for done in resumed.process(e)]
    assert [e.model_dump_json() for e in out] == [e.model_dump_json() for e in straight]


def test_tokens_agree_between_transcript_and_reply(redactor: Redactor) -> None:
    out = run(redactor, conversation())
    transcript = out[3].payload["transcript"]
    reply = out[-1].payload["text"]
    for token in TOKEN.findall(transcript):
        assert token in reply


def test_an_envelope_of_another_session_is_refused(redactor: Redactor) -> None:
    session = SessionRedactor(redactor, "other", SECRET)
    with pytest.raises(RedactionError):
        session.process(envelope(0, "error", error={"message": "x"}))


def test_session_language_comes_from_the_transcription_config(redactor: Redactor) -> None:
    session = SessionRedactor(redactor, SESSION, SECRET)
    session.process(
        envelope(
            0,
            "session.updated",
            session={
                "audio": {
                    "input": {"transcription": {"model": "gpt-4o-transcribe", "language": "de"}}
                }
            },
        )
    )
    assert session.language_for("07") == "de"
    assert session.language_for("Je m'appelle Marie et je voudrais une réservation") == "fr"


# -- what is never a caller's PII ---------------------------------------------------------------


def assistant_says(seq: int, text: str) -> Envelope:
    return envelope(
        seq,
        "response.output_audio_transcript.done",
        response_id="r1",
        item_id=f"i{seq}",
        output_index=0,
        content_index=0,
        transcript=text,
    )


def caller_says(seq: int, text: str) -> Envelope:
    return envelope(
        seq,
        "conversation.item.input_audio_transcription.completed",
        item_id=f"i{seq}",
        content_index=0,
        transcript=text,
    )


def test_a_tenants_allowed_terms_stay_while_the_callers_name_goes(redactor: Redactor) -> None:
    session = SessionRedactor(
        redactor, SESSION, SECRET, "en", allow=AllowList(["Northwind", "Barista 900"])
    )
    said = "I bought the Barista 900 from Northwind. My name is Maria Garcia."
    (out,) = session.process(caller_says(1, said))
    text = out.payload["transcript"]
    assert "the Barista 900 from Northwind." in text
    assert "Maria" not in text and "Garcia" not in text


def test_names_in_the_sessions_instructions_are_the_operators(redactor: Redactor) -> None:
    update = envelope(
        1,
        "session.update",
        direction="client",
        session={"instructions": "You are Juniper, the booking assistant of Halvorsen Travel."},
    )
    greeting = "Hello, Juniper speaking for Halvorsen Travel. How can I help?"
    out = run(redactor, [update, assistant_says(2, greeting), caller_says(3, "I'm Dana Whitlock")])
    assert out[1].payload["transcript"] == greeting
    assert "Whitlock" not in out[2].payload["transcript"]


@pytest.mark.parametrize(
    ("language", "greeting"),
    [
        ("en", "Hi, I'm Acme's AI assistant. How can I help you today?"),
        ("en", "Thanks for calling Northwind, this is the automated booking agent."),
        ("es", "Le atiende el asistente virtual de Contoso, ¿en qué puedo ayudarle?"),
        ("fr", "Bonjour, vous êtes en ligne avec l'agent virtuel de Fabrikam."),
        ("de", "Hallo, hier spricht der digitale KI-Assistent von Contoso."),
    ],
)
def test_the_agents_self_introduction_is_not_redacted(
    redactor: Redactor, language: str, greeting: str
) -> None:
    session = SessionRedactor(redactor, SESSION, SECRET, language)
    (out,) = session.process(assistant_says(1, greeting))
    assert out.payload["transcript"] == greeting
