"""The processors app end to end: real broker, proxy, simulator, SDK and `voxledger processors`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.request
from decimal import Decimal
from pathlib import Path

import jsonschema
from confluent_kafka import Producer
from helpers import Processors, read_topic

from voxledger.config import Settings
from voxledger.envelope import envelope_schema
from voxledger.ingest.capture import SESSION_CLOSED
from voxledger.ingest.importer import import_logs
from voxledger.ingest.proxy import start_proxy
from voxledger.ingest.scenario_client import run_scenario
from voxledger.ingest.simulator import start_simulator
from voxledger.kafka import producer_config

REPO = Path(__file__).resolve().parents[2]
VALIDATOR = jsonschema.Draft202012Validator(envelope_schema())
# What the pii_heavy_en caller says or types, in the forms a reader could recover.
PLANTED = [
    "maria",
    "garcia",
    "four one five",
    "oh one nine nine",
    "4155550199",
    "415-555",
    "j o h n",
    "smith",
    "gmail",
    "1420 mission",
    "mission street",
    "94103",
    "four five three two",
    "4532 1111",
    "4532111122223333",
    "march fourth",
    "nineteen eighty seven",
]  # digit runs alone would match ids, hashes and timestamps


async def call_through_proxy(
    settings: Settings, *scenarios: str, api_key: str = "vx-demo-us"
) -> list[str]:
    """Place each scripted call through a real proxy; the session ids, in order."""
    simulator = await start_simulator(fast=True)
    proxy = await start_proxy(settings, upstream_url=simulator.url)
    try:
        session_ids = []
        for scenario in scenarios:
            result = await run_scenario(scenario, base_url=proxy.url, api_key=api_key)
            assert result.completed, result.errors
            session_ids.append(result.session_id)
        return session_ids
    finally:
        await proxy.close()
        await simulator.close()


def raw_envelopes(settings: Settings) -> list[dict]:
    return read_topic(
        settings, settings.topics.raw.name, lambda f: any(e["type"] == SESSION_CLOSED for e in f)
    )


def test_pii_heavy_call_leaves_no_planted_value_downstream(
    pipeline_settings: Settings, processors: Processors
) -> None:
    settings = pipeline_settings
    processors.start()
    asyncio.run(call_through_proxy(settings, "pii_heavy_en"))
    raw = raw_envelopes(settings)
    garbage = b"\xff\xfe not an envelope: call me on 415 555 0199"
    producer = Producer(producer_config(settings))
    producer.produce(settings.topics.raw.name, key=b"junk", value=garbage)
    assert producer.flush(10) == 0

    redacted = read_topic(settings, settings.topics.redacted.name, len(raw), decode=bytes)
    dead = read_topic(settings, settings.topics.deadletter.name, 1)

    # One redacted envelope per raw envelope, same ids; the bad input is a dead letter.
    assert sorted(e["envelope_id"] for e in raw) == sorted(
        json.loads(r)["envelope_id"] for r in redacted
    )
    text = b"\n".join(redacted).decode().lower()
    leaked = [value for value in PLANTED if value in text]
    assert leaked == []
    for message in redacted:
        VALIDATOR.validate(json.loads(message))
    assert "<person_" in text and "<phone_number_" in text and "<email_address_" in text

    assert len(dead) == 1
    letter = dead[0]
    assert letter["agent"] == "redact" and "not a valid Envelope v1" in letter["error"]
    assert letter["original_b64"] is None and "555 0199" not in letter["original_redacted"]
    assert letter["original_bytes"] == len(garbage)

    port = os.environ["VOXLEDGER_PROCESSORS__METRICS_PORT"]
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    assert f'voxledger_processor_events_total{{agent="redact"}} {len(raw) + 1}.0' in metrics
    assert 'voxledger_processor_dead_letters_total{agent="redact"} 1.0' in metrics

    assert processors.stop(signal.SIGTERM) == 0  # graceful shutdown


def test_restart_after_kill_reprocesses_to_the_same_outputs(
    pipeline_settings: Settings, processors: Processors
) -> None:
    settings = pipeline_settings
    logs = REPO / "tests" / "data" / "realtime_logs"
    recorded = [
        logs / "ga_support_call.jsonl",
        logs / "beta_booking.jsonl",
        logs / "messy_node_console.jsonl",
    ]
    imported = [import_logs(settings, recorded, tenant="acme-us") for _ in range(5)]
    # Every logged event, plus the end-of-session marker of each session.
    published = sum(s.events + len(s.session_ids) for s in imported)
    raw = read_topic(settings, settings.topics.raw.name, published)
    assert len(raw) == published == 5 * 95
    expected = {e["envelope_id"] for e in raw}

    processors.start()
    read_topic(settings, settings.topics.redacted.name, 1, decode=bytes)
    processors.stop(signal.SIGKILL)  # mid-stream, offsets partly committed
    processors.start()
    outputs = read_topic(
        settings,
        settings.topics.redacted.name,
        lambda found: {json.loads(m)["envelope_id"] for m in found} >= expected,
        decode=bytes,
    )
    by_id: dict[str, set[bytes]] = {}
    for message in outputs:
        by_id.setdefault(json.loads(message)["envelope_id"], set()).add(message)
    assert set(by_id) == expected  # nothing lost
    # A replayed envelope is byte-identical to its first rendering: sinks can dedupe by id.
    assert all(len(renderings) == 1 for renderings in by_id.values())


def test_policy_agent_gives_each_session_a_verdict(
    pipeline_settings: Settings, processors: Processors
) -> None:
    settings = pipeline_settings
    processors.start()
    honest, denying = asyncio.run(
        call_through_proxy(settings, "support_disclosure_en", "denies_ai_en")
    )
    (eu_call,) = asyncio.run(call_through_proxy(settings, "eu_wrong_host_en", api_key="vx-demo-eu"))
    records = read_topic(
        settings,
        settings.topics.findings.name,
        lambda found: sum(r["kind"] == "verdict" for r in found) >= 3,
    )
    verdicts = {r["session_id"]: r for r in records if r["kind"] == "verdict"}
    assert verdicts[honest]["verdict"] == "pass", verdicts[honest]
    assert verdicts[denying]["verdict"] == "fail"
    assert {"ai_disclosure", "no_human_claim"} <= set(verdicts[denying]["deciding_rules"])
    # The EU tenant's call went to the simulator's host, not eu.api.openai.com.
    assert verdicts[eu_call]["verdict"] == "fail"
    assert "eu_residency" in verdicts[eu_call]["deciding_rules"]
    assert verdicts[eu_call]["region"] == "eu"
    findings = [r for r in records if r["kind"] == "finding"]
    assert {f["rule_id"] for f in findings if f["session_id"] == denying} >= {
        "ai_disclosure",
        "no_human_claim",
    }
    for finding in findings:  # traceable: every finding names its policy and evidence
        assert finding["policy_version"] and finding["evidence"]

    # The cost agent read the same sessions: a priced record per response, a summary each.
    costs = read_topic(
        settings,
        settings.topics.costs.name,
        lambda found: sum(r["kind"] == "session_summary" for r in found) >= 3,
    )
    summaries = {r["session_id"]: r for r in costs if r["kind"] == "session_summary"}
    assert set(summaries) == {honest, denying, eu_call}
    responses = [r for r in costs if r["kind"] == "response" and r["session_id"] == honest]
    assert len(responses) == len(summaries[honest]["responses"]) >= 4
    assert all(r["price_entry"] and r["cost_usd"] for r in responses)
    total = sum(Decimal(r["cost_usd"]) for r in responses)
    assert Decimal(summaries[honest]["total_usd"]) >= total > 0


def test_tenant_policy_override_and_session_budget_apply_in_the_running_agents(
    pipeline_settings: Settings, processors: Processors, tmp_path: Path, monkeypatch
) -> None:
    override = tmp_path / "acme-us.yaml"
    override.write_text(
        'tenant: acme-us\npolicy_version: "2026.11.0+acme-us.test"\n'
        "rules:\n  ai_disclosure:\n    action: needs_review\n"
    )
    config = tmp_path / "voxledger.toml"
    config.write_text(
        (REPO / "examples" / "voxledger.toml")
        .read_text()
        .replace(
            'upstream = { api_key_env = "OPENAI_API_KEY" }',
            'upstream = { api_key_env = "OPENAI_API_KEY" }\n'
            f"policy_file = {json.dumps(str(override))}\n"
            "budgets = { per_session_usd = 0.0001 }",
        )
    )
    monkeypatch.setenv("VOXLEDGER_CONFIG", str(config))
    settings = pipeline_settings
    processors.start()
    (us_call,) = asyncio.run(call_through_proxy(settings, "denies_ai_en"))
    (eu_call,) = asyncio.run(call_through_proxy(settings, "denies_ai_en", api_key="vx-demo-eu"))
    records = read_topic(
        settings,
        settings.topics.findings.name,
        lambda found: sum(r["kind"] == "verdict" for r in found) >= 2,
    )
    verdicts = {r["session_id"]: r for r in records if r["kind"] == "verdict"}
    # acme-us is judged by its override; acme-eu, without one, by the default policy.
    assert verdicts[us_call]["policy_version"] == "2026.11.0+acme-us.test"
    assert verdicts[eu_call]["policy_version"] == "2026.11.0"
    actions = {
        (r["session_id"], r["rule_id"]): r["action"] for r in records if r["kind"] == "finding"
    }
    assert actions[(us_call, "ai_disclosure")] == "needs_review"
    assert actions[(eu_call, "ai_disclosure")] == "fail"
    # The per-session budget of acme-us ($0.0001) is crossed at 80 % and at 100 %, once each.
    budget = [r for r in records if r.get("rule_id") == "budget.per_session"]
    assert sorted(r["severity"] for r in budget) == ["high", "medium"]
    assert {r["session_id"] for r in budget} == {us_call}
    assert all(r["tenant"] == "acme-us" and r["evidence"] for r in budget)
    costs = read_topic(
        settings,
        settings.topics.costs.name,
        lambda found: sum(r["kind"] == "session_summary" for r in found) >= 2,
    )
    assert {r["tenant"] for r in costs} == {"acme-us", "acme-eu"}
