"""Spend (finance): where the money goes, what caching saved, what was wasted, budget burn."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import cache

import altair as alt
import streamlit as st

from voxledger.dashboard import data, ui
from voxledger.errors import VoxLedgerError

WARN_AT = Decimal("0.8")  # budget thresholds: 80 % warns, 100 % is over


@cache
def cached_price_gaps() -> tuple[tuple[str, str, Decimal], ...]:
    """(price_entry, kind, USD saved per cached token) from the shipped price catalog."""
    from voxledger.processors.cost import default_catalog

    catalog = default_catalog()
    unit = Decimal(catalog.tokens_per_price_unit)
    rows = []
    for entry in catalog.models:
        for kind in ("text", "audio", "image"):
            full, cached = entry.prices.of(f"{kind}_in"), entry.prices.of(f"{kind}_cached")
            if full is not None and cached is not None:
                rows.append((entry.entry_id, kind, (full - cached) / unit))
    return tuple(rows)


def burn_status(spent: Decimal, budget: Decimal | None) -> str:
    if budget is None:
        return "no budget"
    ratio = spent / budget
    return "over 100 %" if ratio >= 1 else "over 80 %" if ratio >= WARN_AT else "ok"


def budget_rows(ctx: ui.PageContext, day: date) -> list[dict[str, object]]:
    tenants = [
        t for t in ctx.settings.tenants if not ctx.filters.tenants or t.name in ctx.filters.tenants
    ]
    spent = {
        r["tenant"]: r for r in data.budget_spend(ctx.warehouse, [t.name for t in tenants], day)
    }
    rows: list[dict[str, object]] = []
    for tenant in tenants:
        got = spent.get(tenant.name, {})
        b = tenant.budgets
        for period, used, budget in (
            (f"day {day}", got.get("day_usd", Decimal(0)), b.daily_usd),
            (f"month {day:%Y-%m}", got.get("month_usd", Decimal(0)), b.monthly_usd),
            (
                "largest session this month",
                got.get("max_session_usd", Decimal(0)),
                b.per_session_usd,
            ),
        ):
            rows.append(
                {
                    "tenant": tenant.name,
                    "period": period,
                    "spent": ui.usd(used),
                    "budget": ui.usd(budget) if budget is not None else "none",
                    "burn": ui.percent(used / budget) if budget else "",
                    "status": burn_status(used, budget),
                }
            )
    return rows


def render(ctx: ui.PageContext) -> None:
    wh, f = ctx.warehouse, ctx.filters
    totals = data.spend_totals(wh, f)
    savings = data.cached_token_savings(wh, f, cached_price_gaps())
    waste = data.unplayed_audio(wh, f)
    cols = st.columns(5)
    cols[0].metric("Total cost", ui.usd(totals.get("total_usd")))
    cols[1].metric("Sessions", f"{totals.get('sessions', 0):,}")
    cols[2].metric("Cost per session", ui.usd(totals.get("usd_per_session")))
    cols[3].metric("Cost per minute", ui.usd(totals.get("usd_per_minute")))
    cols[4].metric("Conversation minutes", f"{float(totals.get('minutes') or 0):,.1f}")
    cols = st.columns(3)
    cols[0].metric("Cached-token savings", ui.usd(savings.get("saved_usd")))
    cols[1].metric("Cached input tokens", f"{int(savings.get('cached_tokens') or 0):,}")
    cols[2].metric(
        "Unplayed-audio waste",
        ui.usd(waste.get("usd")),
        help=f"{float(waste.get('seconds') or 0):,.1f} s of generated audio never played",
    )

    by_day = data.spend_by(wh, f, "day")
    st.subheader("Cost by day")
    ui.chart(
        by_day,
        alt.Chart(by_day).mark_bar().encode(x=ui.DAY, y="cost_usd:Q", tooltip=list(by_day)),
        "cost_by_day",
    )
    left, right = st.columns(2)
    for column, dimension in ((left, "tenant"), (right, "app"), (left, "model")):
        with column:
            st.subheader(f"Cost by {dimension}")
            frame = data.spend_by(wh, f, dimension)
            ui.chart(frame, ui.bar(frame, f"{dimension}:N", "cost_usd:Q"), f"cost_by_{dimension}")
    with right:
        st.subheader("Cost by modality")
        frame = data.spend_by_modality(wh, f)
        ui.chart(frame, ui.bar(frame, "modality:N", "cost_usd:Q"), "cost_by_modality")

    st.subheader("Budget burn")
    day = f.end or date.today()
    rows = budget_rows(ctx, day)
    if rows:
        import pandas as pd

        frame = pd.DataFrame(rows)
        for row in rows:
            if row["status"] == "over 100 %":
                st.error(
                    f"{row['tenant']}: {row['period']} spend {row['spent']} "
                    f"is over its budget {row['budget']}."
                )
            elif row["status"] == "over 80 %":
                st.warning(
                    f"{row['tenant']}: {row['period']} spend {row['spent']} "
                    f"passed 80 % of {row['budget']}."
                )
        ui.table(frame, "budget_burn")
    else:
        st.info("No tenants configured.")

    alerts = data.budget_findings(wh, f)
    if not alerts.empty:
        st.caption("Budget findings raised by the pipeline")
        ui.table(alerts, "budget_findings")

    st.subheader("Unknown models and unpriced usage")
    unpriced = data.unpriced_records(wh, f)
    if unpriced.empty:
        st.success("Every cost record was priced.")
    else:
        st.warning(
            f"{int(unpriced['records'].sum())} cost records could not be fully priced "
            "(they are never counted as $0)."
        )
        ui.table(unpriced, "unpriced_records")


ctx = ui.page("spend")
try:
    render(ctx)
except VoxLedgerError as exc:
    ui.show_error(exc)
