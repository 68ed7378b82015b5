"""The labeled set and `voxledger eval pii`: the set is sound and the redactor meets its targets."""

from __future__ import annotations

import itertools
from pathlib import Path

from click.testing import CliRunner

from voxledger.processors.redaction import Redactor
from voxledger.processors.redaction.evaluation import (
    build_labeled,
    default_eval_files,
    evaluate,
    load_labeled,
)
from voxledger.processors.redaction_cli import eval_group

EVAL_DIR = Path(__file__).resolve().parents[1] / "data" / "pii_eval"


def all_lines() -> list:
    return [line for path in default_eval_files() for line in load_labeled(path)]


def test_shipped_jsonl_is_generated_from_the_markup() -> None:
    built = build_labeled(EVAL_DIR)
    assert sorted(built) == default_eval_files()
    for path, text in built.items():
        assert path.read_text(encoding="utf-8") == text, f"regenerate {path.name}"


def test_the_set_is_large_varied_and_well_formed() -> None:
    lines = all_lines()
    assert len(lines) >= 300
    assert {line.lang for line in lines} == {"en", "es", "fr", "de", "ja"}
    assert {line.role for line in lines} == {"user", "assistant"}
    assert sum(not line.entities for line in lines) >= 100
    assert len({line.id for line in lines}) == len(lines)
    for line in lines:
        spans = sorted((e.start, e.end) for e in line.entities)
        assert all(0 <= s < e <= len(line.text) for s, e in spans)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), line.id


# speech_dev (disfluent, lower-case, agent-heavy speech) is issue 15's set, not yet at target:
# it must not fall below what the redactor measured when it was added.
UNFINISHED = "speech_dev.jsonl"
SPEECH_DEV_FLOOR = {"recall": 0.85, "clean_altered": 0.01, "agent_altered": 0.014}


def test_the_redactor_meets_its_targets_on_every_finished_set(redactor: Redactor) -> None:
    lines = [
        line
        for path in default_eval_files()
        if path.name != UNFINISHED
        for line in load_labeled(path)
    ]
    report = evaluate(lines, redactor)
    assert report.meets_targets(), report.markdown()


def test_the_redactor_holds_its_measured_floor_on_disfluent_speech(redactor: Redactor) -> None:
    report = evaluate(load_labeled(EVAL_DIR / UNFINISHED), redactor)
    score = report.ours
    assert score.overall_recall() >= SPEECH_DEV_FLOOR["recall"], report.markdown()
    assert score.altered_share() <= SPEECH_DEV_FLOOR["clean_altered"], report.markdown()
    assert score.agent_altered_share() <= SPEECH_DEV_FLOOR["agent_altered"], report.markdown()


def test_eval_prints_a_table_beside_stock_presidio(redactor: Redactor) -> None:
    path = EVAL_DIR / "heldout.jsonl"
    result = CliRunner().invoke(
        eval_group, ["pii", str(path), "--check"], obj={"redactor": redactor}
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"## heldout.jsonl: {len(load_labeled(path))} utterances"
    assert "| entity | n | ours | stock Presidio | target |" in lines
    phone = next(line for line in lines if line.startswith("| PHONE_NUMBER |"))
    assert phone.count("|") == 6 and "–" not in phone.split("|")[4]
    assert any(line.startswith("| PII-free lines altered |") for line in lines)
    assert "targets met: yes" in result.output
