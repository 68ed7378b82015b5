"""SessionCapture: gap-free seq over both directions, held frames, scrubbing, audio elision."""

from __future__ import annotations

import base64
import json
import pickle
from datetime import UTC, datetime

import pytest

from voxledger.envelope import Envelope
from voxledger.ingest.capture import (
    CLOSE,
    FRAME_CLIENT,
    FRAME_SERVER,
    OPEN,
    RECORD,
    SESSION_CLOSED,
    SESSION_OPENED,
    CaptureService,
    SessionCapture,
    SessionContext,
)
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


# -- the capture process's side: records in, envelopes out --------------------------------------


class FakePublisher:
    """Publishes into a list; every third envelope "goes to the spool"."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.delivery_failures = 2

    def publish(self, envelope: Envelope) -> bool:
        self.envelopes.append(envelope)
        return len(self.envelopes) % 3 == 0


def record(
    kind: int, number: int, body: bytes | dict, ns: int = 1_798_000_000_000_001_000
) -> bytes:
    data = pickle.dumps(body) if isinstance(body, dict) else body
    return RECORD.pack(kind, number, ns, len(data)) + data


def opened(number: int) -> bytes:
    context = {"source": "proxy", "tenant": "acme-us", "app": "bot", "region": "us"}
    body = {"context": context, "fallback_session_id": f"vxp_{number}", "event": {"x": number}}
    return record(OPEN, number, body)


def closed(number: int) -> bytes:
    return record(
        CLOSE, number, {"type": SESSION_CLOSED, "publish_failures": None, "spooled": None}
    )


def two_interleaved_sessions() -> bytes:
    created = json.dumps({"type": "session.created", "session": {"id": "sess_a"}}).encode()
    return b"".join(
        [
            opened(1),
            opened(2),
            record(FRAME_CLIENT, 1, b'{"type": "session.update"}'),
            record(FRAME_CLIENT, 2, b"not json at all"),
            record(FRAME_SERVER, 1, created),
            record(
                FRAME_CLIENT,
                1,
                json.dumps({"type": "input_audio_buffer.append", "audio": "AAAA"}).encode(),
            ),
            record(FRAME_SERVER, 2, b"\xff\xfe"),
            closed(1),
            closed(2),
        ]
    )


def test_capture_service_keeps_each_sessions_order_and_holding_across_any_split() -> None:
    data = two_interleaved_sessions()
    for chunk in (len(data), 1, 7, 100):
        publisher, reports = FakePublisher(), []
        service = CaptureService(publisher, lambda *report, into=reports: into.append(report))
        buffer = bytearray()
        for start in range(0, len(data), chunk):
            buffer += data[start : start + chunk]
            del buffer[: service.feed(buffer)]
        assert not buffer and not service.sessions

        by_session: dict[str, list[Envelope]] = {}
        for envelope in publisher.envelopes:
            by_session.setdefault(envelope.session_id, []).append(envelope)
        first, second = by_session["sess_a"], by_session["vxp_2"]  # 2 never got session.created
        for envelopes in (first, second):
            assert [e.seq for e in envelopes] == list(range(len(envelopes)))
            assert envelopes[0].type == SESSION_OPENED and envelopes[-1].type == SESSION_CLOSED
        assert [e.type for e in first[1:-1]] == [
            "session.update",
            "session.created",
            "input_audio_buffer.append",
        ]
        assert first[3].payload["audio"]["bytes"] == 3
        assert first[0].observed_at == datetime(2026, 12, 23, 4, 26, 40, 1, tzinfo=UTC)
        assert second[1].payload["raw_text"] == "not json at all"
        assert "raw_b64" in second[2].payload
        # The proxy leaves these two to the capture process, keys in place.
        last = first[-1].payload
        assert list(last)[-2:] == ["publish_failures", "spooled"]
        assert last["publish_failures"] == 2
        assert [kind for kind, _ in reports] == ["closed", "closed"]
        assert reports[0][1] == (1, {"session_id": "sess_a", "spooled": 1})


def test_a_record_for_an_unknown_session_is_logged_and_the_rest_captured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = FakePublisher()
    service = CaptureService(publisher, lambda kind, value: None)
    data = record(FRAME_CLIENT, 9, b'{"type": "x"}') + opened(1) + closed(1)
    assert service.feed(data) == len(data)
    assert "capturing a frame failed" in caplog.text
    assert [e.type for e in publisher.envelopes] == [SESSION_OPENED, SESSION_CLOSED]
