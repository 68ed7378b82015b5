"""Quality (engineers): latency, barge-ins, failed responses, errors, context use, tools."""

from __future__ import annotations

import altair as alt
import streamlit as st

from voxledger.dashboard import data, ui
from voxledger.errors import VoxLedgerError


def render(ctx: ui.PageContext) -> None:
    wh, f = ctx.warehouse, ctx.filters
    latency = data.latency_summary(wh, f)
    context = data.context_use(wh, f)
    cols = st.columns(4)
    cols[0].metric("Time to first audio p50", ui.millis(latency.get("ttfa_p50")))
    cols[1].metric("Time to first audio p95", ui.millis(latency.get("ttfa_p95")))
    cols[2].metric("Interruption rate", ui.percent(latency.get("interruption_rate")))
    cols[3].metric("Responses", f"{int(latency.get('responses') or 0):,}")
    cols = st.columns(4)
    cols[0].metric("Context use p50", ui.percent(context.get("p50")))
    cols[1].metric("Context use p95", ui.percent(context.get("p95")))
    cols[2].metric("Inferred truncations", f"{int(context.get('truncations') or 0):,}")
    cols[3].metric("Tokens dropped (est.)", f"{int(context.get('tokens_dropped') or 0):,}")

    st.subheader("Time to first audio by day")
    by_day = data.latency_by_day(wh, f)
    long = by_day.melt("day", var_name="percentile", value_name="ms")
    ui.chart(
        by_day,
        alt.Chart(long)
        .mark_line(point=True)
        .encode(x=ui.DAY, y="ms:Q", color="percentile:N", tooltip=list(long)),
        "ttfa_by_day",
    )
    left, right = st.columns(2)
    with left:
        st.subheader("Responses not completed, by reason")
        frame = data.responses_not_completed(wh, f)
        ui.chart(
            frame,
            ui.bar(frame, "reason:N", "responses:Q", color="status:N"),
            "responses_not_completed",
        )
    with right:
        st.subheader("Context window use")
        frame = data.context_histogram(wh, f)
        ui.chart(
            frame,
            alt.Chart(frame)
            .mark_bar()
            .encode(
                x=alt.X("bucket:Q", title="share of context window", bin=alt.Bin(step=0.1)),
                y="responses:Q",
                tooltip=list(frame),
            ),
            "context_use",
        )
    st.subheader("Errors and dead letters")
    errors = data.errors_by_kind(wh, f)
    dead = (
        int(errors.loc[errors["kind"] == "dead_letter", "occurrences"].sum())
        if not errors.empty
        else 0
    )
    st.metric("Dead letters", f"{dead:,}")
    ui.table(errors, "errors")
    st.subheader("Tool calls")
    ui.table(
        data.tool_call_stats(wh, f),
        "tool_calls",
        column_config={"success_rate": st.column_config.NumberColumn(format="percent")},
    )


ctx = ui.page("quality")
try:
    render(ctx)
except VoxLedgerError as exc:
    ui.show_error(exc)
