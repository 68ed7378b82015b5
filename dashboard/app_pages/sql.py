"""SQL (engineers): one read-only query over the warehouse views; errors shown as a message."""

from __future__ import annotations

import streamlit as st

from voxledger.dashboard import data, ui
from voxledger.errors import VoxLedgerError

EXAMPLE = (
    "SELECT tenant, count(*) AS sessions, sum(cost_usd) AS cost_usd\n"
    "FROM sessions GROUP BY 1 ORDER BY 2 DESC"
)
VIEWS = (
    "events, sessions, turns, responses, tool_calls, findings, verdicts, costs, "
    "cost_modalities, session_costs, latency, errors, transcriptions, erasures"
)

ctx = ui.page("sql")
st.caption(f"Views: {VIEWS}. One SELECT at a time; at most {data.SQL_ROW_LIMIT} rows are shown.")
with st.form("sql"):
    query = st.text_area("Query", value=EXAMPLE, height=160, key="sql_query")
    submitted = st.form_submit_button("Run", type="primary")
if submitted and query.strip():
    try:
        result = data.run_user_query(ctx.settings, query)
    except VoxLedgerError as exc:
        st.error(f"Query failed: {exc}")
    else:
        st.caption(f"{len(result)} row(s)")
        ui.table(result, "query_result")
