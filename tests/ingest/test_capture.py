"""SessionCapture: gap-free seq over both directions, held frames, scrubbing, audio elision."""

from __future__ import annotations

import base64
import json

from voxledger.envelope import Envelope
from voxledger.ingest.capture import SessionCapture, SessionContext
from voxledger.ingest.scrub import SECRET, scrub_headers, scrub_query


def capture(**kwargs) -> tuple[SessionCapture, list[Envelope]]:
    published: list[Envelope] = []
    context = SessionContext(
        source="proxy",
        tenant="acme-us",
        app="bot",
        region="us",
        upstream_host="api.openai.com",
        model="gpt-realtime",
    )
    return SessionCapture(context, published.append, "vxs_fallback", **kwargs), published


def test_frames_before_session_created_are_held_then_stamped_in_order() -> None:
    cap, published = capture()
    cap.frame("client", json.dumps({"type": "session.update", "session": {"instructions": "hi"}}))
    cap.frame("client", json.dumps({"type": "response.create"}))
    assert published == []
    cap.frame(
        "server",
        json.dumps(
            {
                "type": "session.created",
                "event_id": "e1",
                "session": {"id": "sess_abc", "model": "gpt-realtime-mini"},
            }
        ),
    )
    cap.frame("server", json.dumps({"type": "response.created", "event_id": "e2"}))
    assert [e.seq for e in published] == [0, 1, 2, 3]
    assert {e.session_id for e in published} == {"sess_abc"}
    assert [e.direction for e in published] == ["client", "client", "server", "server"]
    assert published[-1].model == "gpt-realtime-mini"  # learned from session.created
    assert published[0].tenant == "acme-us"


def test_fallback_id_when_session_created_never_comes() -> None:
    cap, published = capture()
    cap.frame("client", "not json at all")
    cap.frame("server", json.dumps({"type": "error", "error": {"message": "bye"}}))
    cap.flush()
    assert [(e.seq, e.session_id) for e in published] == [(0, "vxs_fallback"), (1, "vxs_fallback")]
    assert published[0].payload["parse_error"].startswith("invalid JSON")


def test_mcp_credentials_are_scrubbed_in_envelopes_only() -> None:
    cap, published = capture(session_id="sess_1")
    update = {
        "type": "session.update",
        "session": {
            "tools": [
                {
                    "type": "mcp",
                    "server_label": "crm",
                    "server_url": "https://crm.example",
                    "authorization": "Bearer mcp-secret-123",
                    "headers": {"X-Api-Key": "k-456"},
                    "require_approval": "never",
                },
                {"type": "function", "name": "issue_refund"},
            ]
        },
    }
    raw = json.dumps(update)
    cap.frame("client", raw)
    text = published[0].to_bytes().decode()
    assert "mcp-secret-123" not in text and "k-456" not in text
    tool = published[0].payload["session"]["tools"][0]
    assert tool["authorization"] == SECRET and tool["headers"] == {"X-Api-Key": SECRET}
    assert tool["server_label"] == "crm" and tool["require_approval"] == "never"
    assert "mcp-secret-123" in raw  # the frame relayed upstream is untouched


def test_output_audio_duration_follows_the_session_format() -> None:
    cap, published = capture(session_id="sess_1")
    cap.frame(
        "server",
        json.dumps(
            {
                "type": "session.updated",
                "session": {"audio": {"output": {"format": {"type": "audio/pcmu"}}}},
            }
        ),
    )
    cap.frame(
        "server",
        json.dumps(
            {"type": "response.output_audio.delta", "delta": base64.b64encode(bytes(800)).decode()}
        ),
    )
    assert published[-1].payload["delta"]["duration_ms"] == 100.0


def test_query_and_header_secrets() -> None:
    assert (
        scrub_query("model=gpt-realtime&api_key=sk-1") == "model=gpt-realtime&api_key=%5Bsecret%5D"
    )
    assert scrub_headers({"Authorization": "Bearer sk-1", "OpenAI-Beta": "realtime=v1"}) == {
        "Authorization": SECRET,
        "OpenAI-Beta": "realtime=v1",
    }
