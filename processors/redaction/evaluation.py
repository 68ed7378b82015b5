"""Recall per entity type and false alterations on a labeled set, ours beside stock Presidio."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex

from voxledger.processors.redaction._engine import Context, Redactor
from voxledger.processors.redaction._lexicon import ENTITY_TYPES, LANGUAGES
from voxledger.processors.redaction.exceptions import RedactionError

# Recall targets per entity type and over all entities; the most PII-free lines, and agent
# greetings and brand mentions (lines tagged +agent), we may alter.
TARGETS = {
    "PHONE_NUMBER": 0.97,
    "EMAIL_ADDRESS": 0.97,
    "CREDIT_CARD": 0.97,
    "US_SSN": 0.97,
    "IBAN_CODE": 0.97,
    "VIN": 0.97,
    "IP_ADDRESS": 0.97,
    "PERSON": 0.95,
    "LOCATION": 0.90,
}
OVERALL_TARGET = 0.95
MAX_CLEAN_ALTERED = 0.02
MAX_AGENT_ALTERED = 0.01
AGENT_TAG = "agent"
_MARK = regex.compile(r"\[([^\[\]]+)\]\{([A-Z_]+)\}")


@dataclass(frozen=True)
class Entity:
    type: str
    start: int
    end: int


@dataclass(frozen=True)
class LabeledLine:
    """One utterance with the character spans of the PII in it."""

    id: str
    lang: str
    role: str
    text: str
    entities: tuple[Entity, ...]
    tags: tuple[str, ...] = ()  # "agent": the agent's greeting or brand talk

    def to_json(self) -> str:
        entities = [{"type": e.type, "start": e.start, "end": e.end} for e in self.entities]
        record: dict[str, Any] = {"id": self.id, "lang": self.lang, "role": self.role}
        if self.tags:
            record["tags"] = list(self.tags)
        record["text"] = self.text
        return json.dumps({**record, "entities": entities}, ensure_ascii=False)


def parse_markup(line: str, line_id: str) -> LabeledLine:
    """`en user | my name is [john smith]{PERSON}` → a labeled line with spans;
    `en assistant +agent | …` tags a line of agent speech."""
    head, sep, body = line.partition(" | ")
    parts = head.split()
    tags = tuple(p[1:] for p in parts[2:] if p.startswith("+"))
    if not sep or len(parts) - len(tags) != 2 or parts[0] not in LANGUAGES:
        raise RedactionError(f"{line_id}: expected 'LANG ROLE [+tag] | text', got {line[:40]!r}")
    text, entities, pos = "", [], 0
    for m in _MARK.finditer(body):
        if m[2] not in ENTITY_TYPES:
            raise RedactionError(f"{line_id}: unknown entity type {m[2]}")
        text += body[pos : m.start()]
        entities.append(Entity(m[2], len(text), len(text) + len(m[1])))
        text += m[1]
        pos = m.end()
    text += body[pos:]
    return LabeledLine(line_id, parts[0], parts[1], text, tuple(entities), tags)


def markup_file_lines(path: Path) -> list[LabeledLine]:
    lines = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw.strip() and not raw.startswith("#"):
            lines.append(parse_markup(raw, f"{path.stem}-{n:04d}"))
    return lines


def build_labeled(folder: Path) -> dict[Path, str]:
    """The JSONL text of each markup source in folder/source/*.txt (as `voxledger` ships them)."""
    out = {}
    for source in sorted((folder / "source").glob("*.txt")):
        lines = markup_file_lines(source)
        out[folder / f"{source.stem}.jsonl"] = "".join(line.to_json() + "\n" for line in lines)
    return out


def load_labeled(path: Path) -> list[LabeledLine]:
    """A labeled set: JSON lines of {id, lang, role, text, entities: [{type, start, end}]}."""
    lines = []
    try:
        rows = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RedactionError(f"cannot read {path}: {exc.strerror}") from None
    for n, raw in enumerate(rows, 1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            entities = tuple(Entity(e["type"], e["start"], e["end"]) for e in data["entities"])
            tags = tuple(data.get("tags") or ())
            lines.append(
                LabeledLine(data["id"], data["lang"], data["role"], data["text"], entities, tags)
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise RedactionError(f"{path}:{n}: not a labeled line ({exc})") from None
    return lines


@dataclass
class Score:
    """How one system did: entities covered per type, PII-free lines changed, precision."""

    found: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    total: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    clean_lines: int = 0
    clean_altered: int = 0
    agent_lines: int = 0
    agent_altered: int = 0  # agent lines with a redacted character outside every labeled value
    redacted_chars: int = 0
    redacted_pii_chars: int = 0
    misses: list[tuple[str, str, str]] = field(default_factory=list)  # (line id, type, value)
    # Words redacted that no label covers: (line id, the words)
    false_alarms: list[tuple[str, str]] = field(default_factory=list)

    def recall(self, entity_type: str) -> float | None:
        total = self.total.get(entity_type, 0)
        return self.found.get(entity_type, 0) / total if total else None

    def overall_recall(self) -> float | None:
        total = sum(self.total.values())
        return sum(self.found.values()) / total if total else None

    def altered_share(self) -> float:
        return self.clean_altered / self.clean_lines if self.clean_lines else 0.0

    def agent_altered_share(self) -> float:
        return self.agent_altered / self.agent_lines if self.agent_lines else 0.0

    def precision(self) -> float:
        return self.redacted_pii_chars / self.redacted_chars if self.redacted_chars else 1.0

    def add(self, line: LabeledLine, predicted: Iterable[tuple[int, int]]) -> None:
        covered = _covered(len(line.text), predicted)
        if not line.entities:
            self.clean_lines += 1
            self.clean_altered += any(covered)
        labeled = _covered(len(line.text), [(e.start, e.end) for e in line.entities])
        wrong = "".join(
            ch if c and not lab else " "
            for ch, c, lab in zip(line.text, covered, labeled, strict=True)
        ).split()
        if wrong:
            self.false_alarms.append((line.id, " ".join(wrong)))
        if AGENT_TAG in line.tags:
            self.agent_lines += 1
            outside = (c and not lab for c, lab in zip(covered, labeled, strict=True))
            self.agent_altered += any(outside)
        self.redacted_chars += sum(covered)
        self.redacted_pii_chars += sum(c and lab for c, lab in zip(covered, labeled, strict=True))
        for e in line.entities:
            self.total[e.type] += 1
            # Recalled means no letter or digit of the value is left in the clear.
            if all(covered[i] for i in range(e.start, e.end) if line.text[i].isalnum()):
                self.found[e.type] += 1
            else:
                self.misses.append((line.id, e.type, line.text[e.start : e.end]))


def _covered(length: int, spans: Iterable[tuple[int, int]]) -> list[bool]:
    covered = [False] * length
    for start, end in spans:
        for i in range(max(start, 0), min(end, length)):
            covered[i] = True
    return covered


@dataclass
class EvalReport:
    lines: int
    ours: Score
    stock: Score | None

    def meets_targets(self) -> bool:
        recall_ok = all(
            (self.ours.recall(t) is None or self.ours.recall(t) >= goal)
            for t, goal in TARGETS.items()
        )
        overall = self.ours.overall_recall()
        return (
            recall_ok
            and (overall is None or overall >= OVERALL_TARGET)
            and self.ours.altered_share() <= MAX_CLEAN_ALTERED
            and self.ours.agent_altered_share() <= MAX_AGENT_ALTERED
        )

    def markdown(self) -> str:
        rows = ["| entity | n | ours | stock Presidio | target |", "|---|---:|---:|---:|---:|"]
        types = sorted(self.ours.total, key=lambda t: (t not in TARGETS, ENTITY_TYPES.index(t)))
        for t in types:
            goal = f"≥ {TARGETS[t]:.2f}" if t in TARGETS else ""
            stock = _fmt(self.stock.recall(t)) if self.stock else "–"
            rows.append(
                f"| {t} | {self.ours.total[t]} | {_fmt(self.ours.recall(t))} | {stock} | {goal} |"
            )
        total = sum(self.ours.total.values())
        stock_all = _fmt(self.stock.overall_recall()) if self.stock else "–"
        rows.append(
            f"| all entities | {total} | {_fmt(self.ours.overall_recall())} | {stock_all} "
            f"| ≥ {OVERALL_TARGET:.2f} |"
        )
        stock_clean = f"{self.stock.altered_share():.1%}" if self.stock else "–"
        rows.append(
            f"| PII-free lines altered | {self.ours.clean_lines} | {self.ours.altered_share():.1%} "
            f"| {stock_clean} | ≤ {MAX_CLEAN_ALTERED:.0%} |"
        )
        if self.ours.agent_lines:
            stock_agent = f"{self.stock.agent_altered_share():.1%}" if self.stock else "–"
            rows.append(
                f"| agent greetings and brand mentions altered | {self.ours.agent_lines} "
                f"| {self.ours.agent_altered_share():.1%} | {stock_agent} "
                f"| ≤ {MAX_AGENT_ALTERED:.0%} |"
            )
        stock_precision = f"{self.stock.precision():.1%}" if self.stock else "–"
        rows.append(
            f"| redacted characters that are PII | | {self.ours.precision():.1%} "
            f"| {stock_precision} | |"
        )
        return "\n".join(rows)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def evaluate(
    lines: Sequence[LabeledLine], redactor: Redactor, stock: Any | None = None
) -> EvalReport:
    """Score the redactor (and stock Presidio, when given) on labeled lines."""
    ours, theirs = Score(), Score() if stock else None
    by_language: dict[str, list[LabeledLine]] = defaultdict(list)
    for line in lines:
        by_language[line.lang].append(line)
    for language, group in sorted(by_language.items()):
        found = redactor.spans_many(
            [(line.text, language, "text") for line in group],
            [Context(speaker=line.role) for line in group],
        )
        for line, spans in zip(group, found, strict=True):
            ours.add(line, [(s.start, s.end) for s in spans])
        if stock is not None and theirs is not None:
            stock_found = stock.spans_many([line.text for line in group], language)
            for line, spans in zip(group, stock_found, strict=True):
                theirs.add(line, [(s, e) for _, s, e in spans])
    return EvalReport(len(lines), ours, theirs)


def default_eval_files() -> list[Path]:
    """The labeled sets shipped in the repository (tests/data/pii_eval), when it is there."""
    folder = Path(__file__).resolve().parents[2] / "tests" / "data" / "pii_eval"
    return sorted(folder.glob("*.jsonl"))
