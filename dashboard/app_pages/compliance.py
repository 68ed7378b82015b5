"""Compliance: verdicts, AI disclosure, deception and safety, PII found, refunds, open findings."""

from __future__ import annotations

import altair as alt
import streamlit as st

from voxledger.dashboard import audit, data, ui
from voxledger.errors import VoxLedgerError


def review_form(ctx: ui.PageContext) -> None:
    """Open findings; marking one reviewed needs a comment and is recorded with the reviewer."""
    open_findings = data.findings_list(
        ctx.warehouse, ctx.filters, exclude=audit.reviewed_ids(ctx.settings)
    )
    st.subheader(f"Open findings to review ({len(open_findings)})")
    if open_findings.empty:
        st.success("No open findings.")
        return
    ui.table(open_findings, "open_findings")
    labels = {
        row.finding_id: f"{row.rule_id} · {row.severity} · {row.session_id} · {row.message[:60]}"
        for row in open_findings.itertuples()
    }
    with st.form("review", clear_on_submit=True):
        finding_id = st.selectbox(
            "Finding", list(labels), format_func=labels.get, key="review_finding"
        )
        comment = st.text_area("Comment", key="review_comment")
        if st.form_submit_button("Mark reviewed"):
            if not comment.strip():
                st.error("A review needs a comment.")
            else:
                audit.record_review(ctx.settings, finding_id, ctx.user, comment)
                st.success(f"Finding {finding_id} marked reviewed.")
                st.rerun()


def render(ctx: ui.PageContext) -> None:
    wh, f = ctx.warehouse, ctx.filters
    totals = data.compliance_totals(wh, f)
    judged = int(totals.get("judged") or 0)
    disclosed = int(totals.get("disclosed") or 0)
    cols = st.columns(5)
    cols[0].metric("Judged sessions", f"{judged:,}")
    cols[1].metric("Disclosure rate", ui.percent(disclosed / judged if judged else None))
    cols[2].metric("Pass", f"{int(totals.get('passed') or 0):,}")
    cols[3].metric("Fail", f"{int(totals.get('failed') or 0):,}")
    cols[4].metric("Needs review", f"{int(totals.get('needs_review') or 0):,}")

    st.subheader("Verdicts over time")
    verdicts = data.verdicts_by_day(wh, f)
    ui.chart(
        verdicts,
        alt.Chart(verdicts)
        .mark_bar()
        .encode(x=ui.DAY, y="sessions:Q", color="verdict:N", tooltip=list(verdicts)),
        "verdicts_by_day",
    )
    left, right = st.columns(2)
    with left:
        st.subheader("Deception and safety findings")
        frame = data.findings_by_rule(wh, f, deception_and_safety=True)
        ui.chart(
            frame, ui.bar(frame, "rule_id:N", "findings:Q", color="severity:N"), "deception_safety"
        )
    with right:
        st.subheader("PII found, by type")
        frame = data.pii_by_type(wh, f)
        ui.chart(frame, ui.bar(frame, "entity_type:N", "mentions:Q"), "pii_by_type")
        if not frame.empty:
            st.dataframe(frame, hide_index=True, width="stretch")
    st.subheader("All findings by rule and severity")
    ui.table(data.findings_by_rule(wh, f, deception_and_safety=False), "findings_by_rule")
    st.subheader("Business-rule violations: refund limit")
    ui.table(data.findings_list(wh, f, rule_ids=["refund_limit"], open_only=False), "refund_limit")
    review_form(ctx)


ctx = ui.page("compliance")
try:
    render(ctx)
except VoxLedgerError as exc:
    ui.show_error(exc)
