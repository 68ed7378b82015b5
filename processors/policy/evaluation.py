"""`voxledger eval disclosure`: how well the agent grammar tells a disclosure, a human claim
and neither apart, on labeled assistant utterances, before and after redaction.

A labeled file holds one utterance a line, `LANG LABEL | text`, LABEL one of `disclosure`,
`human_claim`, `neither`; `#` starts a comment. An utterance is judged the way the policy
reads a turn: every language's disclosure and human-claim patterns on its normalised text.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from voxledger.processors.policy._model import LANGUAGES, Policy
from voxledger.processors.policy._text import normalise
from voxledger.processors.policy.exceptions import PolicyError

if TYPE_CHECKING:
    from voxledger.processors.redaction import Redactor

Label = Literal["disclosure", "human_claim", "neither", "both"]
LABELS: tuple[str, ...] = get_args(Label)[:3]  # "both" is a judgement, never a label
TARGET = 0.95  # share of lines judged right, raw and redacted alike


@dataclass(frozen=True)
class DisclosureLine:
    id: str
    lang: str
    label: str
    text: str


def load_disclosure_lines(path: Path) -> list[DisclosureLine]:
    """The labeled lines of a file; PolicyError naming the line when one is malformed."""
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        head, sep, text = raw.partition(" | ")
        parts = head.split()
        if not sep or len(parts) != 2 or parts[0] not in LANGUAGES or parts[1] not in LABELS:
            raise PolicyError(
                f"{path.name}:{number}: expected 'LANG LABEL | text' with LABEL one of "
                f"{', '.join(LABELS)}, got {raw[:40]!r}"
            )
        lines.append(DisclosureLine(f"{path.stem}:{number}", parts[0], parts[1], text.strip()))
    return lines


def judge(policy: Policy, text: str) -> Label:
    """What the policy reads in one assistant utterance."""
    norm = normalise(text)
    discloses = any(p.search(norm) for _, p in policy.disclosure_patterns)
    claims = any(p.search(norm) for _, p in policy.human_claim_patterns)
    if discloses and claims:
        return "both"
    return "disclosure" if discloses else "human_claim" if claims else "neither"


@dataclass
class DisclosureReport:
    lines: int = 0
    right: Counter[str] = field(default_factory=Counter)  # per language
    right_redacted: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    changed_by_redaction: int = 0
    misses: list[tuple[str, str, str, str]] = field(default_factory=list)  # id, label, got, text

    def share(self, counts: Counter[str]) -> float:
        return sum(counts.values()) / self.lines if self.lines else 1.0

    def meets_target(self) -> bool:
        return (
            self.share(self.right) >= TARGET
            and self.share(self.right_redacted) >= TARGET
            and self.changed_by_redaction == 0
        )

    def markdown(self) -> str:
        rows = ["| language | lines | right | right after redaction |", "|---|---:|---:|---:|"]
        for lang in sorted(self.total):
            n = self.total[lang]
            right, after = self.right[lang] / n, self.right_redacted[lang] / n
            rows.append(f"| {lang} | {n} | {right:.3f} | {after:.3f} |")
        rows.append(
            f"| all | {self.lines} | {self.share(self.right):.3f} |"
            f" {self.share(self.right_redacted):.3f} |"
        )
        rows.append(f"\njudgements redaction changed: {self.changed_by_redaction}")
        return "\n".join(rows)


def evaluate_disclosure(
    lines: list[DisclosureLine], policy: Policy, redacted: list[str] | None = None
) -> DisclosureReport:
    """Each line judged as said and as `redacted` gives it (see `redact_lines`)."""
    redacted = redacted if redacted is not None else [line.text for line in lines]
    report = DisclosureReport()
    for line, after in zip(lines, redacted, strict=True):
        got, got_after = judge(policy, line.text), judge(policy, after)
        report.lines += 1
        report.total[line.lang] += 1
        report.right[line.lang] += got == line.label
        report.right_redacted[line.lang] += got_after == line.label
        report.changed_by_redaction += got != got_after
        if got != line.label:
            report.misses.append((line.id, line.label, got, line.text))
        elif got_after != line.label:
            report.misses.append((line.id, line.label, f"{got_after} once redacted", after))
    return report


def redact_lines(lines: list[DisclosureLine], redactor: Redactor) -> list[str]:
    """Each line as the redacted topic would carry it: said by the assistant."""
    from voxledger.processors.redaction import Context, Pseudonyms

    session = Pseudonyms("eval-disclosure", b"eval only: tokens are never compared")
    return [
        redactor.redact_texts([line.text], line.lang, session, Context("assistant"))[0].text
        for line in lines
    ]


def default_disclosure_files() -> list[Path]:
    """The labeled sets shipped in the repository (tests/data/policy), when it is there."""
    folder = Path(__file__).resolve().parents[2] / "tests" / "data" / "policy"
    return sorted(folder.glob("disclosure_*.txt"))
