"""SessionCost: exact costs from usage, hand-computed (prices in USD per 1M tokens)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from voxledger.envelope import Envelope
from voxledger.processors.cost import (
    COST_NAMESPACE,
    SessionCost,
    default_catalog,
    load_catalog,
    parse_catalog,
)

DATA = Path(__file__).parents[1] / "data" / "cost"
D = Decimal


def events(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line]


def cost_all(items: list[Any], **kwargs: Any) -> SessionCost:
    session = SessionCost(**kwargs)
    for item in items:
        session.add(item)
    return session


def envelope(seq: int, payload: dict[str, Any], **fields: Any) -> Envelope:
    base = {
        "session_id": "sess_env",
        "seq": seq,
        "direction": "server",
        "type": payload["type"],
        "observed_at": datetime(2026, 11, 27, tzinfo=UTC),
        "source": "proxy",
        "payload": payload,
    }
    return Envelope(**{**base, **fields})


def done(response_id: str, usage: dict[str, Any] | None, status: str = "completed") -> dict:
    return {
        "type": "response.done",
        "response": {"id": response_id, "status": status, "usage": usage},
    }


def usage(
    text: int, audio: int, out_text: int, out_audio: int, cached: dict | None = None, **extra: Any
) -> dict[str, Any]:
    details: dict[str, Any] = {"text_tokens": text, "audio_tokens": audio, "image_tokens": 0}
    if cached is not None:
        details["cached_tokens"] = sum(cached.values())
        details["cached_tokens_details"] = cached
    else:
        details["cached_tokens"] = 0
    details.update(extra)
    return {
        "input_tokens": text + audio + extra.get("image_tokens", 0),
        "output_tokens": out_text + out_audio,
        "input_token_details": details,
        "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
    }


def test_ga_session_hand_computed() -> None:
    session = cost_all(events("ga_session.jsonl"))
    summary = session.summary()
    first, second = summary.responses
    # resp_1, gpt-realtime: text 1200 in of which 600 cached; audio 800 in of which 400 cached
    #   text uncached  600 × 4.00  = 2400  → 0.0024
    #   text cached    600 × 0.40  =  240  → 0.00024
    #   audio uncached 400 × 32.00 = 12800 → 0.0128
    #   audio cached   400 × 0.40  =  160  → 0.00016
    #   text out       100 × 16.00 = 1600  → 0.0016
    #   audio out     1500 × 64.00 = 96000 → 0.096
    #   total = (2400+240+12800+160+1600+96000) / 1e6 = 113200 / 1e6 = 0.1132
    assert first.cost_usd == D("0.1132")
    assert first.tokens == {
        "text_in": 600,
        "text_cached": 600,
        "text_out": 100,
        "audio_in": 400,
        "audio_cached": 400,
        "audio_out": 1500,
    }
    assert first.price_entry == "gpt-realtime@2025-08-28"
    assert first.catalog_version == default_catalog().version
    # 2000 input tokens of a 32,000-token window
    assert first.context_used_ratio == D("0.0625")
    # resp_2 (cancelled by turn_detected, priced too): text 1200 all cached; audio 1400, 720 cached
    #   text cached 1200 × 0.40 = 480; audio uncached 680 × 32 = 21760; audio cached 720 × 0.40
    #   = 288; text out 100 × 16 = 1600; audio out 300 × 64 = 19200
    #   total = (480+21760+288+1600+19200) / 1e6 = 43328 / 1e6 = 0.043328
    assert second.status == "cancelled" and second.status_reason == "turn_detected"
    assert second.cost_usd == D("0.043328")
    # transcription item_u1, gpt-4o-transcribe: 50 audio in × 6.00 + 10 text out × 10.00
    #   = (300 + 100) / 1e6 = 0.0004
    (transcription,) = summary.transcriptions
    assert transcription.cost_usd == D("0.0004")
    assert transcription.price_entry == "gpt-4o-transcribe@2025-03-20"
    # session: 0.1132 + 0.043328 + 0.0004 = 0.156928
    assert summary.total_usd == D("0.156928")
    assert summary.by_model == {"gpt-realtime": D("0.156528"), "gpt-4o-transcribe": D("0.0004")}
    assert summary.by_modality["audio_out"] == D("0.1152")  # 0.096 + 0.0192
    assert summary.warnings == [] and summary.unknown_models == [] and summary.truncations == []


def test_barge_in_unplayed_audio_hand_computed() -> None:
    summary = cost_all(events("ga_session.jsonl")).summary()
    (row,) = summary.unplayed_audio
    # item_a2: 3 deltas × 2000 ms = 6000 ms generated, truncated at 1500 ms → 4500 ms unplayed.
    # resp_2 billed 300 output audio tokens for its 6000 ms: 300 × 4500 / 6000 = 225 tokens,
    # 225 × 64.00 / 1e6 = 0.0144 USD never heard.
    assert row["response_id"] == "resp_2"
    assert row["generated_ms"] == 6000.0 and row["unplayed_ms"] == 4500.0
    assert row["unplayed_seconds"] == "4.5"
    assert row["unplayed_tokens"] == "225"
    assert row["cost_usd"] == "0.0144"


def test_beta_snapshot_older_usage_and_whisper_duration() -> None:
    summary = cost_all(events("beta_session.jsonl")).summary()
    (response,) = summary.responses
    # gpt-4o-realtime-preview-2024-10-01 has its own entry (audio 100 / 20 / 200), not the family's.
    assert response.price_entry == "gpt-4o-realtime-preview-2024-10-01@2024-10-01"
    # older shape: cached_tokens 500 without details, input text 333 + audio 667 = 1000:
    #   cached text = floor(500 × 333 / 1000) = 166, cached audio = 500 − 166 = 334
    assert response.tokens == {
        "text_in": 167,
        "text_cached": 166,
        "text_out": 50,
        "audio_in": 333,
        "audio_cached": 334,
        "audio_out": 150,
    }
    # 167×5 + 166×2.5 + 50×20 + 333×100 + 334×20 + 150×200
    #   = 835 + 415 + 1000 + 33300 + 6680 + 30000 = 72230 → 0.07223
    assert response.cost_usd == D("0.07223")
    assert any("older usage shape" in w for w in response.warnings)
    # whisper-1: 12.5 s × 0.006 / 60 = 0.00125
    (transcription,) = summary.transcriptions
    assert transcription.cost_usd == D("0.00125")
    assert summary.total_usd == D("0.07348")  # 0.07223 + 0.00125
    # beta response.audio.delta carried base64: 4800 bytes of PCM16 at 24 kHz = 100 ms;
    # truncated at 40 ms → 60 ms unplayed = 150 × 60/100 = 90 tokens × 200 / 1e6 = 0.018
    (row,) = summary.unplayed_audio
    assert (row["generated_ms"], row["unplayed_tokens"], row["cost_usd"]) == (100.0, "90", "0.018")


def test_family_resolution_and_unknown_model() -> None:
    catalog = default_catalog()
    assert catalog.resolve("gpt-realtime-2025-08-28").entry_id == "gpt-realtime@2025-08-28"
    assert catalog.resolve("gpt-4o-realtime-preview-2024-12-17").id == "gpt-4o-realtime-preview"
    assert catalog.resolve("gpt-realtime-mini-2025-10-06").id == "gpt-realtime-mini"
    # a different model, not a dated snapshot: never priced as its prefix
    assert catalog.resolve("gpt-realtime-2") is None
    session = cost_all(
        [
            {"type": "session.created", "session": {"id": "sess_u", "model": "gpt-realtime-2"}},
            done("resp_u", usage(100, 0, 10, 0)),
        ]
    )
    summary = session.summary()
    (record,) = summary.responses
    assert record.cost_usd is None and not record.complete and record.price_entry is None
    assert summary.unknown_models == ["gpt-realtime-2"]
    assert summary.total_usd == 0
    assert any("gpt-realtime-2 is not in price catalog" in w for w in summary.warnings)


def test_missing_usage_and_unknown_fields_warn() -> None:
    summary = cost_all(
        [
            {"type": "session.created", "session": {"id": "sess_w", "model": "gpt-realtime"}},
            done("resp_none", None, status="failed"),
            done("resp_odd", {**usage(100, 0, 0, 0), "reasoning_tokens": 7}),
            {"type": "response.done", "response": "[Object]"},
        ]
    ).summary()
    (record,) = summary.responses  # 100 text × 4.00 = 0.0004; the unknown field is not priced
    assert record.cost_usd == D("0.0004")
    text = "\n".join(summary.warnings)
    assert "resp_none (failed): no usage" in text
    assert "unknown usage field usage.reasoning_tokens=7" in text
    assert "'[Object]'" in text


def test_residency_uplift_hand_computed() -> None:
    catalog = load_catalog(DATA / "catalog_eu.yaml")
    created = {"type": "session.created", "session": {"id": "sess_env", "model": "vox-test-new"}}
    the_usage = usage(1000, 0, 0, 500)

    def one(model: str, **fields: Any) -> Any:
        session = SessionCost(catalog)
        session.add(
            envelope(0, {**created, "session": {"id": "sess_env", "model": model}}, **fields)
        )
        (record,) = session.add(envelope(1, done("resp_eu", the_usage), **fields))
        return record

    # released 2026-04-01 ≥ 2026-03-05 on eu.api.openai.com: +10%
    #   (1000 × 4.00 + 500 × 64.00) / 1e6 = 0.036; × 1.10 = 0.0396
    eu = one("vox-test-new", upstream_host="eu.api.openai.com", region="eu")
    assert (eu.cost_usd, eu.uplift_factor) == (D("0.0396"), D("1.10"))
    # imported (no host) with region eu: the same uplift
    assert one("vox-test-new", region="eu", source="import").cost_usd == D("0.0396")
    # the US host: no uplift, whatever the region says
    assert one("vox-test-new", upstream_host="api.openai.com", region="eu").cost_usd == D("0.036")
    # released 2025-01-01, before the rule's date: no uplift even on the EU host
    assert one("vox-test-old", upstream_host="eu.api.openai.com").cost_usd == D("0.036")


def test_deterministic_ids_and_dedup() -> None:
    lines = (DATA / "ga_session.jsonl").read_text().splitlines()
    first = cost_all(lines)  # JSON text as sent is accepted too
    second = cost_all([json.loads(line) for line in lines])
    ids = [r.record_id for r in first.records]
    assert ids == [r.record_id for r in second.records]
    assert ids[1] == str(uuid.uuid5(COST_NAMESPACE, "sess_ga1/resp_1"))
    assert first.summary().to_dict() == second.summary().to_dict()
    again = first.add(lines[2])  # resp_1's response.done logged twice: counted once
    assert again == [] and first.summary().total_usd == D("0.156928")


def test_other_session_is_not_mixed_in() -> None:
    session = SessionCost(session_id="sess_a")
    assert session.add(envelope(0, done("resp_x", usage(10, 0, 0, 0)))) == []
    assert "ignored" in session.summary().warnings[0]


def test_truncation_inferred_and_disabled() -> None:
    # input 20,000 (cache 19,968) → next turn, after a 2 s user turn (20 tokens) and a reply of
    # 1,000 audio tokens, expected 20,000 + 1,000 + 20 = 21,020; billed 15,000 with the cache
    # reset → about 21,020 − 15,000 = 6,020 tokens dropped.
    def run(truncation: Any) -> SessionCost:
        return cost_all(
            [
                {
                    "type": "session.created",
                    "session": {"id": "s", "model": "gpt-realtime", "truncation": truncation},
                },
                done("r1", usage(100, 19900, 0, 1000, {"text_tokens": 100, "audio_tokens": 19868})),
                {
                    "type": "input_audio_buffer.speech_started",
                    "audio_start_ms": 1000,
                    "item_id": "u",
                },
                {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 3000, "item_id": "u"},
                {"type": "conversation.item.added", "item": {"id": "u"}},
                done("r2", usage(100, 14900, 0, 50, {"text_tokens": 0, "audio_tokens": 0})),
            ]
        )

    auto = run({"type": "retention_ratio", "retention_ratio": 0.5})
    (truncation,) = auto.summary().truncations
    assert truncation["estimated_tokens_dropped"] == 6020
    assert truncation["expected_input_tokens"] == 21020
    assert truncation["truncation_setting"] == {"type": "retention_ratio", "retention_ratio": 0.5}
    assert auto.records[-1].truncation_inferred
    disabled = run("disabled")
    assert disabled.summary().truncations == []
    assert any("truncation is disabled" in w for w in disabled.summary().warnings)


def test_image_tokens_priced() -> None:
    # gpt-realtime image input 5.00: 200 image + 100 text tokens, 64 image tokens cached;
    # no cached image price in the catalog → those 64 are left unpriced with a warning.
    the_usage = usage(
        100, 0, 0, 0, {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 64}, image_tokens=200
    )
    session = cost_all(
        [
            {"type": "session.created", "session": {"id": "s", "model": "gpt-realtime"}},
            done("r", the_usage),
        ]
    )
    (record,) = session.records
    # 100 × 4.00 + (200 − 64) × 5.00 = 400 + 680 = 1080 → 0.00108
    assert record.cost_usd == D("0.00108")
    assert not record.complete
    assert any("64 image_cached tokens not priced" in w for w in record.warnings)


@pytest.mark.parametrize("name", ["ga_session.jsonl", "beta_session.jsonl"])
def test_summary_is_json_with_string_money(name: str) -> None:
    report = cost_all(events(name)).summary().to_dict()
    json.dumps(report)
    assert isinstance(report["total_usd"], str)
    assert set(report) >= {
        "total_usd",
        "by_model",
        "by_modality",
        "responses",
        "transcriptions",
        "unknown_models",
        "truncations",
        "unplayed_audio",
        "catalog_version",
        "warnings",
    }
    assert {"response_id", "model", "usage", "cost_usd", "price_entry"} <= set(
        report["responses"][0]
    )


def test_effective_dates_pick_the_entry_of_the_day() -> None:
    base = (DATA / "catalog_eu.yaml").read_text().replace("transcription_models: []\n", "")
    # vox-test-old gets a price change on 2026-06-01: text input 4.00 → 2.00
    text = (
        base.replace(
            "  - id: vox-test-old\n", "  - id: vox-test-old\n    effective_to: 2026-06-01\n"
        )
        + "  - id: vox-test-old\n    kind: family\n    released: 2025-01-01\n"
        + "    residency_eligible: true\n    effective_from: 2026-06-01\n"
        + "    context_window: 32000\n    max_output_tokens: 4096\n"
        + "    prices: {text_in: 2.00}\n"
        + "transcription_models: []\n"
    )
    catalog = parse_catalog(text)
    created = {"type": "session.created", "session": {"id": "s", "model": "vox-test-old"}}
    for day, entry, cost in (
        # 1000 text tokens × 4.00 / 1e6 = 0.004 before the change, × 2.00 = 0.002 after it
        (date(2026, 5, 31), "vox-test-old@2025-01-01", D("0.004")),
        (date(2026, 6, 1), "vox-test-old@2026-06-01", D("0.002")),
    ):
        session = SessionCost(catalog, price_date=day)
        session.add(created)
        (record,) = session.add(done("r", usage(1000, 0, 0, 0)))
        assert (record.price_entry, record.cost_usd) == (entry, cost)
