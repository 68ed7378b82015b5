"""EU residency: per tenant and session, where traffic went and on which model; a DPO export."""

from __future__ import annotations

from functools import cache

import streamlit as st

from voxledger.dashboard import audit, data, ui
from voxledger.errors import VoxLedgerError


@cache
def eligible_models() -> tuple[str, ...]:
    """The models the policy lists as served with EU data residency."""
    from voxledger.processors.policy import load_policy

    return tuple(load_policy().rules.eu_residency.eligible_models)


def render(ctx: ui.PageContext) -> None:
    wh, f = ctx.warehouse, ctx.filters
    eligible = eligible_models()
    tenants = data.residency_by_tenant(wh, f, eligible)
    violations = int(tenants["violations"].sum()) if not tenants.empty else 0
    cols = st.columns(3)
    cols[0].metric("Sessions", f"{int(tenants['sessions'].sum()) if not tenants.empty else 0:,}")
    cols[1].metric("Residency violations", f"{violations:,}")
    cols[2].metric("Tenants", f"{tenants['tenant'].nunique() if not tenants.empty else 0:,}")
    if violations:
        st.error(
            f"{violations} session(s) of an EU-residency tenant left the EU host or model list."
        )
    st.subheader("Per tenant")
    st.dataframe(tenants, hide_index=True, width="stretch")
    st.download_button(
        "Export DPO summary (CSV)",
        lambda: _export(ctx, tenants.to_csv(index=False)),
        file_name="eu-residency-summary.csv",
        mime="text/csv",
        key="dpo-summary",
        on_click="ignore",
    )
    st.subheader("Per session")
    ui.table(data.residency_sessions(wh, f, eligible), "eu_residency_sessions")
    st.caption("Eligible models: " + ", ".join(eligible))


def _export(ctx: ui.PageContext, csv: str) -> bytes:
    audit.record_access(ctx.settings, ctx.user, ctx.role, "export_residency_csv", "summary")
    return csv.encode()


ctx = ui.page("residency")
try:
    render(ctx)
except VoxLedgerError as exc:
    ui.show_error(exc)
