"""Costing the simulator's scripted calls: the long call's truncation and a barge-in."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal
from typing import Any

import pytest

from voxledger.ingest.scenario_client import run_scenario
from voxledger.ingest.simulator import start_simulator
from voxledger.processors.cost import SessionCost, SessionSummary

PRICES = {  # gpt-realtime, USD per 1M tokens (the shipped catalog)
    "text_in": Decimal("4.00"),
    "text_cached": Decimal("0.40"),
    "text_out": Decimal("16.00"),
    "audio_in": Decimal("32.00"),
    "audio_cached": Decimal("0.40"),
    "audio_out": Decimal("64.00"),
}


@pytest.fixture(scope="module")
def recorded() -> dict[str, list[dict[str, Any]]]:
    async def main() -> dict[str, list[dict[str, Any]]]:
        server = await start_simulator(fast=True)
        try:
            out = {}
            for name in ("long_call_overflow_en", "barge_in_en"):
                result = await run_scenario(
                    name, base_url=server.url, api_key="sk-test", fast=True, record_events=True
                )
                assert result.completed and result.events
                out[name] = result.events
            return out
        finally:
            await server.close()

    return asyncio.run(main())


def cost(events: list[dict[str, Any]]) -> tuple[SessionCost, SessionSummary]:
    session = SessionCost()
    for event in events:
        session.add(event)
    return session, session.summary()


def by_formula(usage: dict[str, Any]) -> Decimal:
    """The pricing rule written out once more, independently: uncached = input − cached."""
    details, cached = (
        usage["input_token_details"],
        usage["input_token_details"]["cached_tokens_details"],
    )
    out = usage["output_token_details"]
    micro = (
        (details["text_tokens"] - cached["text_tokens"]) * PRICES["text_in"]
        + cached["text_tokens"] * PRICES["text_cached"]
        + (details["audio_tokens"] - cached["audio_tokens"]) * PRICES["audio_in"]
        + cached["audio_tokens"] * PRICES["audio_cached"]
        + out["text_tokens"] * PRICES["text_out"]
        + out["audio_tokens"] * PRICES["audio_out"]
    )
    return micro / 1_000_000


def test_long_call_truncation_inferred(recorded: dict[str, list[dict[str, Any]]]) -> None:
    events = recorded["long_call_overflow_en"]
    _, summary = cost(events)
    done = [e["response"] for e in events if e["type"] == "response.done"]
    assert len(summary.responses) == len(done) > 3
    for record, response in zip(summary.responses, done, strict=True):
        assert record.cost_usd == by_formula(response["usage"])
        assert record.context_used_ratio == (
            Decimal(response["usage"]["input_tokens"]) / 32000
        ).quantize(Decimal("0.0001"))
    assert summary.total_usd == sum(
        (r.cost_usd for r in [*summary.responses, *summary.transcriptions]), Decimal(0)
    )
    # The server dropped the oldest items where input tokens fell although the call went on,
    # and the prompt cache reset: every such response is flagged, and nothing else is.
    fell = [
        b["id"]
        for a, b in itertools.pairwise(done)
        if b["usage"]["input_tokens"] < a["usage"]["input_tokens"]
    ]
    flagged = [t["response_id"] for t in summary.truncations]
    assert fell and set(fell) <= set(flagged)
    for t in summary.truncations:
        assert t["truncation_setting"] == "auto"
        assert t["cached_tokens"] < t["previous_cached_tokens"]  # the cache reset
        assert t["estimated_tokens_dropped"] == t["expected_input_tokens"] - t["input_tokens"] > 0
    first = summary.truncations[0]
    previous = next(r for r in done if r["id"] == first["previous_response_id"])
    # expected = previous input + the previous reply's audio tokens + the caller's speech
    assert first["expected_input_tokens"] >= (
        previous["usage"]["input_tokens"]
        + previous["usage"]["output_token_details"]["audio_tokens"]
    )
    assert max(r.context_used_ratio for r in summary.responses) > Decimal("0.85")
    # every user turn was transcribed by gpt-4o-mini-transcribe, billed per token
    assert summary.transcriptions
    assert {t.price_entry for t in summary.transcriptions} == {"gpt-4o-mini-transcribe@2025-03-20"}
    assert summary.unknown_models == [] and summary.warnings == []


def test_barge_in_cancelled_responses_priced(recorded: dict[str, list[dict[str, Any]]]) -> None:
    _, summary = cost(recorded["barge_in_en"])
    statuses = [(r.status, r.status_reason) for r in summary.responses]
    assert statuses.count(("cancelled", "turn_detected")) == 2
    cancelled = next(r for r in summary.responses if r.status == "cancelled")
    # the first interrupted reply: text 66 + audio 84 in, text 11 + audio 50 out, no cache:
    #   66 × 4 + 84 × 32 + 11 × 16 + 50 × 64 = 264 + 2688 + 176 + 3200 = 6328 → 0.006328
    assert cancelled.cost_usd == Decimal("0.006328")
    # The simulator stops generating where the caller cut in, so all of the audio it
    # generated for each truncated item was played: zero unplayed seconds and dollars.
    assert len(summary.unplayed_audio) == 2
    for row in summary.unplayed_audio:
        assert row["generated_ms"] == row["audio_end_ms"] > 0
        assert (row["unplayed_ms"], row["unplayed_tokens"], row["cost_usd"]) == (0.0, "0", "0")
