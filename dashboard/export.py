"""A session's audit record as JSON and as PDF: redacted turns, findings inline, costs.

Audio is described by its duration only; the record holds nothing the warehouse does not
(and the warehouse holds only redacted text).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

# A Unicode font when the system has one (Debian's fonts-dejavu-core); else core Helvetica.
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _parsed(value: Any) -> Any:
    """JSON text columns (evidence, deciding rules) as JSON, other values unchanged."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def audit_record(record: dict[str, Any], *, exported_by: str, exported_at: datetime) -> dict:
    """The export's content: the warehouse rows of one session, findings placed at their turn."""
    findings = [{**f, "evidence": _parsed(f.get("evidence"))} for f in record["findings"]]
    turns = [dict(t) for t in record["turns"]]
    by_response = {r["response_id"]: r for r in record["responses"] if r.get("response_id")}
    for turn in turns:
        turn["findings"] = []
        cost = by_response.get(turn.get("response_id"))
        turn["cost_usd"] = cost.get("cost_usd") if cost else None
    unplaced = []
    for finding in findings:
        turn = _turn_of(turns, finding)
        (turn["findings"] if turn else unplaced).append(finding["finding_id"])
    session = {
        **record["session"],
        "deciding_rules": _parsed(record["session"].get("deciding_rules")),
    }
    return _plain(
        {
            "format": "voxledger.audit-record.v1",
            "exported_by": exported_by,
            "exported_at": exported_at,
            "session": session,
            "costs": record["costs"],
            "responses": record["responses"],
            "findings": findings,
            "turns": turns,
            "findings_not_at_a_turn": unplaced,
        }
    )


def _turn_of(turns: list[dict[str, Any]], finding: dict[str, Any]) -> dict[str, Any] | None:
    """The turn a finding's first evidence falls in: the first turn ending at or after it."""
    evidence = finding.get("evidence")
    seqs = (
        [e.get("seq") for e in evidence if isinstance(e, dict)]
        if isinstance(evidence, list)
        else []
    )
    seqs = [s for s in seqs if isinstance(s, int)]
    if not seqs:
        return None
    return next((t for t in turns if t.get("seq") is not None and t["seq"] >= min(seqs)), None)


def to_json(record: dict[str, Any]) -> bytes:
    return json.dumps(record, indent=2, ensure_ascii=False).encode()


def _new_pdf() -> Any:
    """An A4 document with a text helper; fpdf2 is imported here, only when a PDF is made."""
    from fpdf import FPDF

    class AuditPdf(FPDF):
        def __init__(self) -> None:
            super().__init__(format="A4")
            self.unicode = _add_fonts(self)
            self.set_auto_page_break(auto=True, margin=15)
            self.add_page()

        def text_block(self, text: str, size: float = 10, bold: bool = False) -> None:
            family = "DejaVu" if self.unicode else "Helvetica"
            self.set_font(family, "B" if bold else "", size)
            if not self.unicode:  # core fonts are Latin-1 only
                text = text.encode("latin-1", "replace").decode("latin-1")
            self.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")

    return AuditPdf()


def _add_fonts(pdf: Any) -> bool:
    for directory in FONT_DIRS:
        regular, bold = directory / "DejaVuSans.ttf", directory / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            pdf.add_font("DejaVu", "", str(regular))
            pdf.add_font("DejaVu", "B", str(bold))
            return True
    return False


def to_pdf(record: dict[str, Any]) -> bytes:
    """The audit record for a reader: header, costs, findings, then the transcript."""
    pdf = _new_pdf()
    session = record["session"]
    pdf.text_block(f"VoxLedger audit record: session {session['session_id']}", 14, bold=True)
    pdf.text_block(f"Exported by {record['exported_by']} at {record['exported_at']}", 8)
    pdf.ln(2)
    for key in (
        "tenant",
        "app",
        "region",
        "upstream_host",
        "model",
        "language",
        "started_at",
        "ended_at",
        "duration_s",
        "verdict",
        "deciding_rules",
        "eu_residency",
        "cost_usd",
    ):
        pdf.text_block(f"{key}: {_show(session.get(key))}", 9)
    costs = record.get("costs") or {}
    if costs:
        unplayed = f"{_show(costs.get('unplayed_audio_s'))} s"
        pdf.text_block(
            f"total_usd: {_show(costs.get('total_usd'))}; unplayed audio: {unplayed} "
            f"({_show(costs.get('unplayed_audio_usd'))} USD)",
            9,
        )
    pdf.ln(3)
    pdf.text_block(f"Findings ({len(record['findings'])})", 12, bold=True)
    for finding in record["findings"]:
        pdf.text_block(
            f"[{finding['severity']}] {finding['rule_id']} ({finding['action']}, "
            f"{finding.get('status')}): {finding['message']}",
            9,
        )
    pdf.ln(3)
    pdf.text_block(f"Transcript ({len(record['turns'])} turns, redacted)", 12, bold=True)
    names = {f["finding_id"]: f["rule_id"] for f in record["findings"]}
    for turn in record["turns"]:
        audio = f", audio {turn['audio_ms'] / 1000:.1f} s" if turn.get("audio_ms") else ""
        cost = f", {turn['cost_usd']} USD" if turn.get("cost_usd") else ""
        pdf.text_block(f"#{turn['turn_index']} {turn['role']}{audio}{cost}", 9, bold=True)
        pdf.text_block(turn.get("text") or "(no text)", 9)
        for finding_id in turn["findings"]:
            pdf.text_block(f"  finding: {names.get(finding_id, finding_id)}", 8, bold=True)
    return bytes(pdf.output())


def _show(value: Any) -> str:
    if value is None:
        return "-"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)
