"""Importer: recorded GA, beta and messy logs become ordered, schema-valid import envelopes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from helpers import read_topic

from voxledger.cli import cli
from voxledger.config import Settings
from voxledger.envelope import UNPARSED_TYPE, envelope_schema
from voxledger.ingest.capture import SESSION_CLOSED
from voxledger.ingest.importer import event_direction, import_logs

LOGS = Path(__file__).resolve().parent.parent / "data" / "realtime_logs"
GA_LOG = LOGS / "ga_support_call.jsonl"
BETA_LOG = LOGS / "beta_booking.jsonl"
MESSY_LOG = LOGS / "messy_node_console.jsonl"
EXPORTED = LOGS / "exported_envelopes.jsonl"
VALIDATOR = jsonschema.Draft202012Validator(envelope_schema())


def read_raw(settings: Settings, count: int) -> list[dict[str, Any]]:
    """The first `count` messages of the raw topic (fewer if the deadline passes), validated."""
    envelopes = []
    for key, envelope in read_topic(settings, settings.topics.raw.name, count, keyed=True):
        VALIDATOR.validate(envelope)
        assert key == envelope["session_id"].encode()
        envelopes.append(envelope)
    return envelopes


def by_session(envelopes: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    sessions: dict[str, list[dict[str, Any]]] = {}
    for envelope in envelopes:
        sessions.setdefault(envelope["session_id"], []).append(envelope)
    return sessions


def log_types(path: Path) -> list[str]:
    return [json.loads(line)["type"] for line in path.read_text().splitlines() if line]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_ga_log_is_one_ordered_session(pipeline_settings: Settings) -> None:
    summary = import_logs(pipeline_settings, [GA_LOG])
    assert (summary.events, summary.parse_errors) == (41, 0)
    assert summary.session_ids == ["sess_CGa8kQ2vH1mZxT4pWn9"]

    envelopes = read_raw(pipeline_settings, 41)
    assert [e["seq"] for e in envelopes] == list(range(41))
    assert [e["type"] for e in envelopes] == log_types(GA_LOG)
    assert {e["source"] for e in envelopes} == {"import"}
    assert {e["tenant"] for e in envelopes} == {None}
    # The session.update logged before the greeting arrived belongs to the session it opened.
    assert envelopes[0]["type"] == "session.update" and envelopes[0]["direction"] == "client"
    assert envelopes[0]["model"] == "gpt-realtime-2025-08-28"
    directions = {e["type"]: e["direction"] for e in envelopes}
    assert directions["input_audio_buffer.append"] == "client"
    assert directions["response.output_audio_transcript.delta"] == "server"
    assert directions["conversation.item.create"] == "client"
    audio = next(e for e in envelopes if e["type"] == "input_audio_buffer.append")["payload"]
    assert audio["audio"]["duration_ms"] == 20.0  # audio elided, not carried


def test_beta_log_with_tenant_through_the_cli(pipeline_settings: Settings) -> None:
    result = invoke("import", str(BETA_LOG), "--tenant", "acme-eu")
    assert result.exit_code == 0, result.output
    topic = pipeline_settings.topics.raw.name
    assert result.output.splitlines() == [
        f"{BETA_LOG}: 1 session, 32 events, 0 parse errors",
        f"imported 1 file: 1 session, 32 events, 0 parse errors → {topic}",
    ]
    envelopes = read_raw(pipeline_settings, 32)
    assert [e["seq"] for e in envelopes] == list(range(32))
    assert {e["session_id"] for e in envelopes} == {"sess_BkP3sYw8rTq0L2mN6c"}
    assert {(e["tenant"], e["app"], e["region"]) for e in envelopes} == {
        ("acme-eu", "support-bot", "eu")
    }
    types = [e["type"] for e in envelopes]
    assert "response.audio_transcript.delta" in types and "conversation.item.created" in types
    delta = next(e for e in envelopes if e["type"] == "response.audio.delta")
    assert delta["direction"] == "server" and set(delta["payload"]["delta"]) == {
        "bytes",
        "duration_ms",
        "sha256",
    }
    assert envelopes[-1]["model"] == "gpt-4o-realtime-preview-2024-12-17"


def test_messy_log_splits_sessions_and_keeps_bad_lines(pipeline_settings: Settings) -> None:
    summary = import_logs(pipeline_settings, [MESSY_LOG])
    orphan = "import-messy_node_console.jsonl"
    assert summary.session_ids == [orphan, "sess_MsY1aB2cD3eF4", f"{orphan}-2"]
    assert (summary.events, summary.parse_errors) == (17, 4)

    sessions = by_session(read_raw(pipeline_settings, 17 + 3))
    assert {sid: len(events) for sid, events in sessions.items()} == {
        orphan: 2 + 1,
        "sess_MsY1aB2cD3eF4": 10 + 1,
        f"{orphan}-2": 5 + 1,
    }
    for events in sessions.values():
        assert [e["seq"] for e in events] == list(range(len(events)))
        # Each imported session ends with a marker, so downstream can finalise it.
        assert events[-1]["type"] == SESSION_CLOSED
        assert events[-1]["payload"]["events"] == len(events) - 1

    first = sessions["sess_MsY1aB2cD3eF4"]
    assert [(e["type"], e["direction"]) for e in first] == [
        ("session.created", "server"),
        ("session.update", "client"),
        ("conversation.item.created", "server"),
        (UNPARSED_TYPE, "server"),  # Node console output, `{ type: 'response.created', ... }`
        ("response.reasoning_summary.delta", "server"),  # unknown, event_id, streaming word
        ("app.marker", "client"),  # unknown, no event_id
        (UNPARSED_TYPE, "server"),  # cut off mid-line
        ("input_audio_buffer.noise_reduced", "server"),  # unknown, event_id, past tense
        (UNPARSED_TYPE, "server"),  # not UTF-8
        ("response.done", "server"),
        (SESSION_CLOSED, "client"),
    ]
    assert first[3]["payload"]["raw_text"].startswith("{ type: 'response.created'")
    assert first[6]["payload"]["parse_error"].startswith("invalid JSON")
    assert "raw_b64" in first[8]["payload"]
    assert first[2]["payload"]["item"]["content"] == ["[Object]"]
    assert "mcp_live" not in json.dumps(first[1])  # MCP credentials scrubbed on import too

    second = sessions[f"{orphan}-2"]
    assert [(e["type"], e["direction"]) for e in second] == [
        ("session.created", "server"),
        ("input_audio_buffer.append", "client"),
        (UNPARSED_TYPE, "client"),
        ("error", "server"),
        ("response.cancel", "client"),
        (SESSION_CLOSED, "client"),
    ]


def test_envelope_lines_are_republished_unchanged(pipeline_settings: Settings) -> None:
    lines = EXPORTED.read_text().splitlines()
    summary = import_logs(pipeline_settings, [EXPORTED, EXPORTED])
    assert (summary.events, summary.parse_errors) == (10, 2)

    envelopes = read_raw(pipeline_settings, 10 + 2)
    exported = [json.loads(line) for line in lines[:4]]
    kept = [e for e in envelopes if e["session_id"] == "sess_ExP0rt3d9"]
    assert kept == exported + exported  # same envelope_id, source and all, both times
    broken = [e for e in envelopes if e["session_id"] == "import-exported_envelopes.jsonl"]
    assert [e["type"] for e in broken] == [UNPARSED_TYPE, SESSION_CLOSED] * 2
    # The model would take it; the JSON Schema, which consumers rely on, does not.
    assert broken[0]["payload"]["parse_error"].startswith("not a valid Envelope v1: envelope_id")
    assert broken[0]["source"] == "import"


def test_missing_file_is_a_clear_error(demo_env: Path) -> None:
    result = invoke("import", str(GA_LOG), "no-such-log.jsonl")
    assert result.exit_code == 2
    assert result.output == "Error: log file no-such-log.jsonl does not exist\n"


def test_unknown_tenant_is_a_clear_error(demo_env: Path) -> None:
    result = invoke("import", str(GA_LOG), "--tenant", "nobody")
    assert result.exit_code == 2
    assert "unknown tenant 'nobody'" in result.output


@pytest.mark.parametrize(
    ("event_type", "has_event_id", "direction"),
    [
        ("response.create", True, "client"),  # known client type, even with a client event_id
        ("response.audio_transcript.delta", False, "server"),  # known beta server type
        ("response.hologram.delta", True, "server"),
        ("input_audio_buffer.noise_reduced", True, "server"),
        ("input_audio_buffer.noise_reduced", False, "client"),
        ("session.ping", True, "client"),
        (None, True, "client"),
    ],
)
def test_direction_rule(event_type: str | None, has_event_id: bool, direction: str) -> None:
    assert event_direction(event_type, has_event_id) == direction
