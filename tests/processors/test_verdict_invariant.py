"""A verdict does not depend on redaction: every shipped scenario and every policy fixture is
judged the same from its raw events as from `voxledger redact --jsonl` output, and each
scenario gets the outcome it declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import record_scenarios

from voxledger.ingest.simulator import load_scenario, scenario_names
from voxledger.processors.policy import check_log, load_policy
from voxledger.processors.redaction import Redactor
from voxledger.processors.redaction_cli import redact_command

DATA = Path(__file__).resolve().parents[1] / "data"
FIXTURES = sorted([*(DATA / "policy").glob("*.jsonl"), *(DATA / "realtime_logs").glob("*.jsonl")])
EU_CALL = {"region": "eu", "upstream_host": "api.openai.com"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict[str, Path]:
    """Each scenario's received server events as a JSONL log, recorded once for the module."""
    return record_scenarios(scenario_names(), tmp_path_factory.mktemp("scenario_logs"))


def redacted_copy(path: Path, redactor: Redactor, tmp_path: Path) -> Path:
    """What `voxledger redact --jsonl` writes for the log."""
    result = CliRunner().invoke(
        redact_command,
        ["--jsonl"],
        input=path.read_bytes(),  # as it is: one fixture holds bytes that are not UTF-8
        obj={"redactor": redactor},
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / f"{path.stem}.redacted.jsonl"
    out.write_text(result.stdout, encoding="utf-8")
    return out


def decisions(path: Path, **where) -> list[tuple]:
    """Per session: verdict, deciding rules, language, and each finding's rule, action and
    evidence events: all a verdict is made of, none of the (redacted) excerpt text."""
    return [
        (
            s.verdict.verdict,
            s.verdict.deciding_rules,
            s.verdict.language,
            [(f.rule_id, f.action, tuple(e.seq for e in f.evidence)) for f in s.findings],
        )
        for s in check_log(path, load_policy(), **where).sessions
    ]


def test_every_shipped_scenario_declares_its_outcome() -> None:
    assert [n for n in scenario_names() if load_scenario(n).expect is None] == []


@pytest.mark.parametrize("name", scenario_names())
def test_a_scenario_gets_its_declared_outcome_raw_and_redacted(
    recorded, redactor: Redactor, tmp_path: Path, name: str
) -> None:
    expect = load_scenario(name).expect
    assert expect is not None
    raw, redacted = recorded[name], redacted_copy(recorded[name], redactor, tmp_path)
    placements = [{}, EU_CALL] if expect.in_eu else [{}]
    for where in placements:
        declared = expect.for_region(where.get("region"))
        (session,) = check_log(raw, load_policy(), **where).sessions
        got = (session.verdict.verdict, sorted(f.rule_id for f in session.findings))
        assert got == (declared.verdict, declared.findings), where
        assert decisions(redacted, **where) == decisions(raw, **where), where


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_policy_fixture_is_judged_the_same_raw_and_redacted(
    redactor: Redactor, tmp_path: Path, path: Path
) -> None:
    raw = decisions(path)
    assert raw, "the fixture holds sessions"
    assert decisions(redacted_copy(path, redactor, tmp_path)) == raw
