"""`voxledger eval disclosure`: the agent grammar on labeled assistant lines, raw and redacted."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from voxledger.processors.policy import load_policy
from voxledger.processors.policy.evaluation import (
    DisclosureLine,
    default_disclosure_files,
    evaluate_disclosure,
    judge,
)
from voxledger.processors.redaction import Redactor
from voxledger.processors.redaction_cli import eval_group


def test_every_shipped_set_meets_the_target_and_redaction_changes_no_judgement(
    redactor: Redactor,
) -> None:
    assert default_disclosure_files()
    result = CliRunner().invoke(
        eval_group, ["disclosure", "--check", "--misses"], obj={"redactor": redactor}
    )
    assert result.exit_code == 0, result.output
    assert "judgements redaction changed: 0" in result.output
    assert "| all |" in result.output


def test_the_grammar_reads_paraphrases_with_brand_slots_and_negations() -> None:
    policy = load_policy()
    cases = {
        "Le atiende un asistente virtual de inteligencia artificial.": "disclosure",
        "Hier spricht der digitale KI-Assistent von <ORGANIZATION_12>.": "disclosure",
        "Hi, I'm <PERSON_8205>'s AI assistant.": "disclosure",
        "This is Emma from Tailspin.": "neither",
        "I'm not a bot, I'm a real person.": "human_claim",
    }
    assert {text: judge(policy, text) for text in cases} == cases


def test_a_redaction_that_hid_a_disclosure_is_counted() -> None:
    lines = [DisclosureLine("x:1", "en", "disclosure", "Hi, I'm an AI assistant.")]
    hidden = ["Hi, I'm an <PERSON_1> assistant."]  # the role word taken for a name
    report = evaluate_disclosure(lines, load_policy(), hidden)
    assert report.changed_by_redaction == 1 and not report.meets_target()
    assert report.misses == [("x:1", "disclosure", "neither once redacted", hidden[0])]


def test_a_malformed_line_is_named(tmp_path: Path, redactor: Redactor) -> None:
    path = tmp_path / "disclosure_bad.txt"
    path.write_text("en maybe | Hello there\n", encoding="utf-8")
    result = CliRunner().invoke(eval_group, ["disclosure", str(path)], obj={"redactor": redactor})
    assert result.exit_code == 1
    assert "disclosure_bad.txt:1: expected 'LANG LABEL | text'" in result.output
