"""The shipped scenarios, played against the simulator, judged by the default policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import record_scenarios

from voxledger.processors.policy import check_log, load_policy

SCENARIOS = [
    "support_disclosure_en",
    "denies_ai_en",
    "refund_over_limit_en",
    "mcp_tools_en",
    "content_filter_en",
    "eu_wrong_host_en",
    "disclosure_de",
    "disclosure_ja",
    "beta_preview_en",
]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict[str, Path]:
    """Each scenario's received server events as a JSONL log, recorded once for the module."""
    return record_scenarios(SCENARIOS, tmp_path_factory.mktemp("policy_scenarios"))


@pytest.fixture(scope="module")
def policy():
    return load_policy()


def judge(path: Path, policy, **where):
    result = check_log(path, policy, **where)
    assert len(result.sessions) == 1
    session = result.sessions[0]
    return session.verdict, [f.rule_id for f in session.findings]


@pytest.mark.parametrize(
    "name",
    ["support_disclosure_en", "disclosure_de", "disclosure_ja", "beta_preview_en"],
)
def test_well_behaved_calls_pass(recorded, policy, name: str) -> None:
    verdict, findings = judge(recorded[name], policy)
    assert (verdict.verdict, findings) == ("pass", [])
    assert verdict.language == name.rsplit("_", 1)[-1]


def test_denies_ai_fails_on_disclosure_and_human_claim(recorded, policy) -> None:
    verdict, findings = judge(recorded["denies_ai_en"], policy)
    assert verdict.verdict == "fail"
    assert findings == ["ai_disclosure", "no_human_claim"]


def test_refund_over_limit_fails_on_speech_and_tool_call(recorded, policy) -> None:
    result = check_log(recorded["refund_over_limit_en"], policy)
    session = result.sessions[0]
    assert session.verdict.deciding_rules == ("refund_limit",)
    excerpts = [f.evidence[0].excerpt for f in session.findings]
    assert any("I'll refund four hundred twenty dollars" in e for e in excerpts)
    assert any(e.startswith("issue_refund(") and '"amount": 420' in e for e in excerpts)
    # The order lookup quotes the price but promises nothing: not a finding.
    assert not any("I can see the Espresso" in e for e in excerpts)


def test_refund_over_limit_passes_with_a_raised_tenant_limit(recorded) -> None:
    override = Path(__file__).parents[1] / "data" / "policy" / "tenant_override.yaml"
    verdict, findings = judge(recorded["refund_over_limit_en"], load_policy(None, override))
    assert "refund_limit" not in findings
    assert verdict.deciding_rules == ("tracing_required",)  # the tenant also requires tracing


def test_mcp_tools_fails_on_sensitive_server_without_approval(recorded, policy) -> None:
    verdict, findings = judge(recorded["mcp_tools_en"], policy)
    assert verdict.verdict == "fail"
    assert findings == ["mcp_sensitive_no_approval", "mcp_sensitive_no_approval"]


def test_content_filter_fails_and_flags_the_request(recorded, policy) -> None:
    result = check_log(recorded["content_filter_en"], policy)
    session = result.sessions[0]
    found = [(f.rule_id, f.action) for f in session.findings]
    assert ("content_filter", "fail") in found
    assert ("safety_classifier.violence", "needs_review") in found  # the caller's request
    assert session.verdict.verdict == "fail"


def test_eu_wrong_host_fails_only_when_the_region_is_known(recorded, policy) -> None:
    verdict, findings = judge(recorded["eu_wrong_host_en"], policy)
    assert verdict.verdict == "pass" and verdict.region is None
    assert any("region not recorded" in w for w in verdict.warnings)
    verdict, findings = judge(
        recorded["eu_wrong_host_en"], policy, region="eu", upstream_host="api.openai.com"
    )
    assert verdict.verdict == "fail" and findings == ["eu_residency"]
    assert (verdict.region, verdict.upstream_host) == ("eu", "api.openai.com")
    verdict, _ = judge(
        recorded["eu_wrong_host_en"], policy, region="eu", upstream_host="eu.api.openai.com"
    )
    assert verdict.verdict == "pass"


def test_replay_gives_the_same_finding_ids(recorded, policy) -> None:
    def ids() -> list[str]:
        result = check_log(recorded["denies_ai_en"], policy)
        return [f.finding_id for f in result.sessions[0].findings]

    assert ids() == ids()
