"""`voxledger policy check|explain` driven as users do, and the policy file's validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from voxledger import cli as cli_module
from voxledger.processors.policy import PolicyFileError, load_policy

DATA = Path(__file__).parents[1] / "data"
POLICY_DATA = DATA / "policy"
MESSY = DATA / "realtime_logs" / "messy_node_console.jsonl"


@pytest.fixture
def run(monkeypatch):
    monkeypatch.setitem(
        cli_module.LAYER_COMMANDS, "policy", "voxledger.processors.policy_cli:policy_group"
    )

    def invoke(*args: str):
        return CliRunner().invoke(cli_module.cli, list(args), catch_exceptions=False)

    return invoke


def _sessions(output: str) -> dict[str, dict]:
    records = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert "summary" in records[-1]
    return {r["session_id"]: r for r in records[:-1]}


def test_messy_log_is_judged_without_an_error(run) -> None:
    result = run("policy", "check", str(MESSY), "--json")
    assert result.exit_code == 0, result.output
    sessions = _sessions(result.stdout)
    assert len(sessions) == 3
    assert {s["verdict"] for s in sessions.values()} == {"needs_review"}
    warnings = [w for s in sessions.values() for w in s["warnings"]]
    assert any("unknown event type 'app.marker'" in w for w in warnings)
    assert any("[Object]" in w for w in warnings)
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert any("not a JSON event" in w for w in summary["warnings"])
    assert "need review" in result.stderr


def test_messy_log_text_output(run) -> None:
    result = run("policy", "check", str(MESSY))
    assert result.exit_code == 0
    assert "session sess_MsY1aB2cD3eF4: NEEDS_REVIEW" in result.stdout
    assert "verdict: needs_review" in result.stdout


def test_several_sessions_and_languages_in_one_file(run) -> None:
    result = run("policy", "check", str(POLICY_DATA / "multilingual_two_sessions.jsonl"), "--json")
    assert result.exit_code == 1
    sessions = _sessions(result.stdout)
    assert sessions["sess_es_ok"]["verdict"] == "pass"
    assert sessions["sess_es_ok"]["language"] == "es"
    bad = sessions["sess_fr_bad"]
    assert bad["verdict"] == "fail"
    assert bad["deciding_rules"] == ["ai_disclosure", "no_human_claim"]
    claim = next(f for f in bad["findings"] if f["rule_id"] == "no_human_claim")
    assert "je suis une vraie personne" in claim["evidence"][1]["excerpt"]


def test_envelopes_keep_their_region_and_host(run) -> None:
    result = run("policy", "check", str(POLICY_DATA / "eu_envelopes.jsonl"), "--json")
    assert result.exit_code == 1
    sessions = _sessions(result.stdout)
    wrong = sessions["sess_eu_wrong"]
    assert (wrong["region"], wrong["upstream_host"], wrong["verdict"]) == (
        "eu",
        "api.openai.com",
        "fail",
    )
    assert wrong["findings"][0]["evidence"][0]["envelope_id"].endswith("6c01")
    assert sessions["sess_eu_ok"]["verdict"] == "pass"
    assert sessions["sess_eu_model"]["deciding_rules"] == ["eu_residency"]


def test_json_output_is_stable_across_runs(run) -> None:
    path = str(POLICY_DATA / "eu_envelopes.jsonl")
    assert (
        run("policy", "check", path, "--json").stdout
        == run("policy", "check", path, "--json").stdout
    )


def test_instructions_only_needs_review_and_custom_voice_fails(run) -> None:
    result = run("policy", "check", str(POLICY_DATA / "instructions_only.jsonl"), "--json")
    assert result.exit_code == 1
    session = _sessions(result.stdout)["sess_instr"]
    found = {(f["rule_id"], f["action"]) for f in session["findings"]}
    assert found == {("ai_disclosure", "needs_review"), ("custom_voice", "fail")}


def test_needs_review_exits_0_with_a_notice(run, tmp_path) -> None:
    log = tmp_path / "instr.jsonl"
    lines = (POLICY_DATA / "instructions_only.jsonl").read_text().splitlines()
    log.write_text("\n".join(line.replace("voice_custom_ceo_clone", "x") for line in lines[:2]))
    override = tmp_path / "o.yaml"
    override.write_text("rules:\n  custom_voice:\n    enabled: false\n")
    result = run("policy", "check", str(log), "--override", str(override))
    assert result.exit_code == 0
    assert "NEEDS_REVIEW (ai_disclosure)" in result.stdout
    assert "notice: 1 session(s) need review: sess_instr" in result.stderr


def test_plain_events_get_region_from_options(run) -> None:
    path = str(POLICY_DATA / "multilingual_two_sessions.jsonl")
    result = run(
        "policy", "check", path, "--json", "--region", "eu", "--upstream-host", "api.openai.com"
    )
    sessions = _sessions(result.stdout)
    assert "eu_residency" in sessions["sess_es_ok"]["deciding_rules"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("", "holds no Realtime event"),
        ("\n\n   \n", "holds no Realtime event"),
        ("not json at all\n{ broken\n", "holds no Realtime event"),
    ],
)
def test_unreadable_or_empty_file_exits_2(run, tmp_path, content, message) -> None:
    path = tmp_path / "log.jsonl"
    if content is not None:
        path.write_text(content)
    result = run("policy", "check", str(path))
    assert result.exit_code == 2
    assert message in result.output


def test_directory_exits_2(run, tmp_path) -> None:
    result = run("policy", "check", str(tmp_path))
    assert result.exit_code == 2 and "not a regular file" in result.output


def test_bad_policy_file_names_the_line(run) -> None:
    result = run("policy", "check", str(MESSY), "--policy", str(POLICY_DATA / "bad_policy.yaml"))
    assert result.exit_code == 2
    assert "bad_policy.yaml, line 5: rules.refund_limit.limit" in result.output


def test_explain_prints_what_a_rule_checks(run) -> None:
    result = run("policy", "explain", "refund_limit")
    assert result.exit_code == 0
    assert "refund_limit (policy" in result.stdout and "limit: 50" in result.stdout
    category = run("policy", "explain", "safety_classifier.self_harm")
    assert "category: self_harm" in category.stdout and "threshold: 1" in category.stdout
    listing = run("policy", "explain", "list")
    assert "eu_residency: critical, fail" in listing.stdout
    tenant = run(
        "policy", "explain", "refund_limit", "--override", str(POLICY_DATA / "tenant_override.yaml")
    )
    assert "limit: 500" in tenant.stdout and "+acme-eu" in tenant.stdout


def test_explain_unknown_rule_exits_2(run) -> None:
    result = run("policy", "explain", "no_such_rule")
    assert result.exit_code == 2 and "no rule 'no_such_rule'" in result.output


# -- the policy file ----------------------------------------------------------------------------


def test_default_policy_loads_with_every_rule() -> None:
    policy = load_policy()
    assert policy.policy_version
    assert policy.rule_ids == [
        "ai_disclosure",
        "no_human_claim",
        "content_filter",
        "error_event",
        "safety_classifier",
        "refund_limit",
        "mcp_sensitive_no_approval",
        "custom_voice",
        "tracing_required",
        "eu_residency",
    ]
    every_language = {"en", "es", "fr", "de", "ja"}
    assert {lang for lang, _ in policy.disclosure_patterns} == every_language
    assert {lang for lang, _ in policy.human_claim_patterns} == every_language
    assert policy.rules.refund_limit.limit == 50


def test_override_merges_mappings_and_versions_itself() -> None:
    policy = load_policy(None, POLICY_DATA / "tenant_override.yaml")
    assert policy.policy_version.endswith("+acme-eu")
    assert policy.rules.refund_limit.limit == 500
    limits = policy.rules.refund_limit
    assert limits.limit_for("USD") == limits.limit_for(None) == 500  # limit is in USD
    assert limits.limit_for("EUR") == 450 and limits.limit_for("JPY") == 7500  # merged
    assert policy.rules.refund_limit.refund_words["de"]  # untouched parts stay
    assert policy.rules.tracing_required.required is True
    assert policy.rules.ai_disclosure.within_assistant_turns == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules:\n  refund_limit:\n    limit: -5\n", "line 3: rules.refund_limit.limit"),
        ("rules:\n  refund_limt:\n    limit: 5\n", "line 2: rules.refund_limt: Extra inputs"),
        ("rules:\n  custom_voice:\n    severity: huge\n", "line 3: rules.custom_voice.severity"),
        ("rules: [1, 2\n", "line 2: not valid YAML"),
        ("- a list\n", "line 1: a policy file is a YAML mapping"),
    ],
)
def test_bad_override_is_an_error_naming_the_line(tmp_path, text: str, expected: str) -> None:
    path = tmp_path / "tenant.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as caught:
        load_policy(None, path)
    assert f"tenant.yaml, {expected}" in str(caught.value)


def test_bad_regular_expression_names_the_line() -> None:
    with pytest.raises(PolicyFileError) as caught:
        load_policy(POLICY_DATA / "bad_regex_policy.yaml")
    assert "bad_regex_policy.yaml, line 6" in str(caught.value)
    assert "bad regular expression" in str(caught.value)


def test_full_policy_file_without_extends_must_be_complete(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("policy_version: x\nrules:\n  ai_disclosure:\n    phrases: {en: [ai]}\n")
    with pytest.raises(PolicyFileError, match=r"p.yaml, line 2: rules.no_human_claim: Field"):
        load_policy(path)


def test_missing_policy_file() -> None:
    with pytest.raises(PolicyFileError, match="does not exist"):
        load_policy(Path("/nonexistent/policy.yaml"))


def test_public_api_is_explicit() -> None:
    import voxledger.processors.policy as api

    assert sorted(api.__all__) == sorted(
        [
            "FINDING_NAMESPACE",
            "CheckResult",
            "EventLogError",
            "Evidence",
            "Finding",
            "Policy",
            "PolicyError",
            "PolicyFileError",
            "Rule",
            "SessionPolicy",
            "SessionResult",
            "Verdict",
            "check_log",
            "load_policy",
        ]
    )
    assert issubclass(api.PolicyError, __import__("voxledger.errors").errors.VoxLedgerError)
