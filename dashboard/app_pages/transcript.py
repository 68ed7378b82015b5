"""Transcript audit: find a session, read its redacted turns with findings and costs, export.

Every transcript shown and every export is written to the access audit (who, what, when).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import streamlit as st

from voxledger.dashboard import audit, data, export, ui
from voxledger.errors import VoxLedgerError

SEVERITY_ICON = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "⚪"}


def finding_line(finding: dict[str, Any]) -> str:
    icon = SEVERITY_ICON.get(finding["severity"], "")
    return f"{icon} {finding['rule_id']} ({finding['severity']}): {finding['message']}"


def search(ctx: ui.PageContext) -> str | None:
    """The search fields and the matching sessions; the session id picked, if any."""
    cols = st.columns(4)
    session_id = cols[0].text_input("Session id (or its start)", key="t_session").strip()
    day = cols[1].date_input("Date", value=None, key="t_day")
    rules = ["", *data.rule_ids(ctx.warehouse)]
    rule_id = cols[2].selectbox("With a finding of rule", rules, key="t_rule")
    tenants = ["", *sorted(t.name for t in ctx.settings.tenants)]
    tenant = cols[3].selectbox("Tenant", tenants, key="t_tenant")
    found = data.find_sessions(
        ctx.warehouse, ctx.filters, session_id=session_id, day=day, rule_id=rule_id, tenant=tenant
    )
    if found.empty:
        st.info("No session matches.")
        return None
    st.caption(f"{len(found)} session(s), newest first (at most 200)")
    st.dataframe(found, hide_index=True, width="stretch", height=200)
    ids = found["session_id"].tolist()
    # A transcript opens only when asked for (or when the search names one session): every
    # opening is an access to record.
    if len(ids) == 1:
        return ids[0]
    return st.selectbox(
        "Open session", ids, index=None, key="t_open", placeholder="Pick a session to read"
    )


def log_view(ctx: ui.PageContext, session_id: str) -> None:
    """One access-audit row per transcript opened in this browser session."""
    viewed: set[str] = st.session_state.setdefault("viewed_sessions", set())
    if session_id not in viewed:
        audit.record_access(ctx.settings, ctx.user, ctx.role, "view_transcript", session_id)
        viewed.add(session_id)


def exporter(ctx: ui.PageContext, record: dict[str, Any], kind: str):
    """A deferred download: the file is built, and the export logged, only on click."""

    def build() -> bytes:
        audit.record_access(
            ctx.settings, ctx.user, ctx.role, f"export_{kind}", record["session"]["session_id"]
        )
        content = export.audit_record(record, exported_by=ctx.user, exported_at=datetime.now(UTC))
        return export.to_pdf(content) if kind == "pdf" else export.to_json(content)

    return build


def show(ctx: ui.PageContext, session_id: str) -> None:
    record = data.session_record(ctx.warehouse, session_id)
    if record is None:
        st.warning(f"Session {session_id} is not in the warehouse.")
        return
    log_view(ctx, session_id)
    s = record["session"]
    cols = st.columns(5)
    cols[0].metric("Tenant", s["tenant"] or "-")
    cols[1].metric("Verdict", s["verdict"] or "open")
    cols[2].metric("Cost", ui.usd(s["cost_usd"]))
    cols[3].metric("Duration", f"{float(s['duration_s'] or 0):,.1f} s")
    cols[4].metric("Findings", len(record["findings"]))
    st.caption(
        f"{s['app']} · {s['region']} · {s['upstream_host']} · {s['model']} · "
        f"{s['language'] or 'language ?'} · started {s['started_at']}"
    )
    left, right = st.columns(2)
    left.download_button(
        "Export audit record (PDF)",
        exporter(ctx, record, "pdf"),
        file_name=f"audit-{session_id}.pdf",
        mime="application/pdf",
        key="export-pdf",
        on_click="ignore",
    )
    right.download_button(
        "Export audit record (JSON)",
        exporter(ctx, record, "json"),
        file_name=f"audit-{session_id}.json",
        mime="application/json",
        key="export-json",
        on_click="ignore",
    )
    placed = export.audit_record(record, exported_by=ctx.user, exported_at=datetime.now(UTC))
    findings = {f["finding_id"]: f for f in placed["findings"]}
    st.subheader("Transcript (redacted)")
    for turn in placed["turns"]:
        with st.chat_message("user" if turn["role"] == "user" else "assistant"):
            extras = []
            if turn.get("audio_ms"):
                extras.append(f"audio {turn['audio_ms'] / 1000:.1f} s")
            if turn.get("cost_usd") is not None:
                extras.append(ui.usd(turn["cost_usd"]))
            st.caption(
                f"turn {turn['turn_index']} · {turn['role']}" + "".join(f" · {e}" for e in extras)
            )
            st.text(turn.get("text") or "(no text)")
            for finding_id in turn["findings"]:
                f = findings[finding_id]
                st.warning(finding_line(f))
    rest = [findings[i] for i in placed["findings_not_at_a_turn"]]
    if rest:
        st.subheader("Findings of the whole session")
        for f in rest:
            st.warning(finding_line(f))
    if record["responses"]:
        st.subheader("Responses and costs")
        st.dataframe(record["responses"], hide_index=True, width="stretch")


ctx = ui.page("transcript")
try:
    picked = search(ctx)
    if picked:
        show(ctx, picked)
except VoxLedgerError as exc:
    ui.show_error(exc)
