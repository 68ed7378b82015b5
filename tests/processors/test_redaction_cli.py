"""`voxledger redact` as users run it: same line count and order, problems on stderr only."""

from __future__ import annotations

import json
import re
from typing import Any

from click.testing import CliRunner

from voxledger.processors.redaction import Redactor
from voxledger.processors.redaction_cli import redact_command

ENV = {"VOXLEDGER_PROCESSORS__PSEUDONYM_SECRET": "cli test secret"}


def redact(redactor: Redactor, args: list[str], stdin: str) -> Any:
    result = CliRunner().invoke(
        redact_command, args, input=stdin, obj={"redactor": redactor}, env=ENV
    )
    assert result.exit_code == 0, result.output
    return result


def test_plain_lines_keep_count_and_order(redactor: Redactor) -> None:
    lines = [
        "Hi, my name is John Smith.",
        "",
        "my number is four one five, five five five, oh one nine nine",
        "Sure, I can help with that today.",
        "again: 415-555-0199",
    ]
    out = redact(redactor, [], "\n".join(lines) + "\n").stdout.split("\n")
    assert len(out) == len(lines) + 1 and out[-1] == ""
    assert out[1] == "" and out[3] == lines[3]
    assert "John" not in out[0] and "five" not in out[2]
    phone = re.search(r"<PHONE_NUMBER_\d+>", out[2]).group(0)
    assert out[4] == f"again: {phone}"  # stdin is one session: one value, one token


def test_json_reports_findings_without_values(redactor: Redactor) -> None:
    out = redact(redactor, ["--json", "--lang", "en"], "call me at 415-555-0199\nhello\n")
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == 2
    assert records[0]["findings"][0]["type"] == "PHONE_NUMBER"
    assert records[1] == {"text": "hello", "language": "en", "findings": []}
    assert "415" not in out.stdout


def test_the_same_secret_gives_the_same_output(redactor: Redactor) -> None:
    stdin = "my email is john dot smith at gmail dot com\n"
    assert redact(redactor, [], stdin).stdout == redact(redactor, [], stdin).stdout


def event(**fields: Any) -> str:
    return json.dumps(fields)


def test_jsonl_holds_deltas_and_keeps_line_order(redactor: Redactor) -> None:
    ids = {"item_id": "it_1", "content_index": 0}
    lines = [
        event(type="session.created", session={"id": "sess_1", "instructions": "Be kind."}),
        event(type="conversation.item.input_audio_transcription.delta", **ids, delta="call 415"),
        event(type="response.output_audio.delta", item_id="it_2", delta={"bytes": 4}),
        event(type="conversation.item.input_audio_transcription.delta", **ids, delta="-555-01"),
        "this line is not JSON: mail john.smith@gmail.com",
        event(type="conversation.item.input_audio_transcription.delta", **ids, delta="99 now"),
        event(
            type="conversation.item.input_audio_transcription.completed",
            **ids,
            transcript="call 415-555-0199 now",
        ),
        event(type="input_audio_buffer.speech_started", audio_start_ms=10),
    ]
    result = redact(redactor, ["--jsonl"], "\n".join(lines) + "\n")
    out = result.stdout.splitlines()
    assert len(out) == len(lines)
    parsed = [json.loads(line) if i != 4 else line for i, line in enumerate(out)]
    types = [p["type"] for i, p in enumerate(parsed) if i != 4]
    assert types == [json.loads(line)["type"] for i, line in enumerate(lines) if i != 4]
    deltas = [parsed[i]["delta"] for i in (1, 3, 5)]
    assert "".join(deltas) == parsed[6]["transcript"]
    assert not re.search(r"\d", re.sub(r"<[A-Z_]+_\d+>", "", "".join(deltas)))
    assert "john.smith" not in out[4] and out[4].startswith("this line is not JSON: mail <EMAIL")
    assert result.stderr == "line 5: not JSON; redacted as text\n"
    assert "redaction" not in parsed[0]  # plain events stay plain events


def test_jsonl_envelopes_come_back_as_envelopes(redactor: Redactor) -> None:
    envelope = {
        "v": 1,
        "envelope_id": "e-1",
        "session_id": "sess_9",
        "seq": 0,
        "direction": "server",
        "type": "response.output_text.done",
        "observed_at": "2025-06-01T12:00:00.000000Z",
        "source": "proxy",
        "payload": {"type": "response.output_text.done", "text": "Thanks, Maria Lopez."},
    }
    broken = {**envelope, "seq": -1}
    result = redact(redactor, ["--jsonl"], json.dumps(envelope) + "\n" + json.dumps(broken) + "\n")
    first, second = result.stdout.splitlines()
    done = json.loads(first)
    assert done["envelope_id"] == "e-1" and "Maria" not in done["payload"]["text"]
    assert done["redaction"]["findings"][0]["field"] == "payload.text"
    assert "Maria" not in second and json.loads(second)["seq"] == -1
    assert "line 2: JSON but not a valid envelope (seq)" in result.stderr


def test_jsonl_flushes_deltas_that_never_complete(redactor: Redactor) -> None:
    lines = [
        event(type="response.output_text.delta", item_id="x", content_index=0, delta="415-55"),
        event(type="response.output_text.delta", item_id="x", content_index=0, delta="5-0199"),
    ]
    out = redact(redactor, ["--jsonl"], "\n".join(lines)).stdout.splitlines()
    assert len(out) == 2
    assert json.loads(out[0])["delta"].startswith("<PHONE_NUMBER_")
    assert json.loads(out[1])["delta"] == ""
