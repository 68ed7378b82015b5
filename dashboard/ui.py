"""What every page shares: its guard and context, money formatting, charts with a CSV download."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from voxledger.config import Settings, load_settings
from voxledger.dashboard import auth
from voxledger.dashboard.data import Filters, Warehouse
from voxledger.errors import VoxLedgerError

# A day axis: one band per calendar day (a temporal axis would draw hours between days).
DAY = alt.X("yearmonthdate(day):O", title="day")


@dataclass(frozen=True)
class PageContext:
    settings: Settings
    warehouse: Warehouse
    filters: Filters
    user: str
    role: str


def page(key: str) -> PageContext:
    """Refuse the page unless the logged-in role may open it; else its context.

    app.py refuses first; this repeats the check so a page never renders on its own.
    """
    settings = load_settings()
    who = auth.current_user(settings)
    title = auth.PAGES[key][0]
    if who is None or not auth.allowed(who[1], key):
        role = who[1] if who else "anonymous"
        st.error(f"Access denied: the {role} role cannot open {title}.")
        st.stop()
    st.title(title)
    filters = st.session_state.get("filters") or Filters()
    return PageContext(settings, Warehouse(settings), filters, who[0], who[1])


def usd(value: Decimal | float | int | None) -> str:
    """Money as $: cents from $1, four decimals below, six below a hundredth of a cent."""
    if value is None:
        return "n/a"
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    size = abs(amount)
    places = 2 if size >= 1 or size == 0 else 4 if size >= Decimal("0.0001") else 6
    rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = "-" if rounded < 0 else ""
    return f"{sign}${abs(rounded):,.{places}f}"


def percent(value: float | Decimal | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value) * 100:.1f} %"


def millis(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):,.0f} ms"


def csv_download(frame: pd.DataFrame, name: str, label: str = "Download CSV") -> None:
    st.download_button(
        label,
        frame.to_csv(index=False).encode(),
        file_name=f"{name}.csv",
        mime="text/csv",
        key=f"csv-{name}",
        on_click="ignore",
    )


def chart(frame: pd.DataFrame, spec: alt.Chart, name: str) -> None:
    """An Altair chart with its data downloadable as CSV; a note when there is no data."""
    if frame.empty:
        st.info("No data for the selected filters.")
        return
    st.altair_chart(spec, width="stretch")
    csv_download(frame, name)


def table(frame: pd.DataFrame, name: str, **kwargs: Any) -> None:
    """A table with its rows downloadable as CSV."""
    if frame.empty:
        st.info("Nothing to show for the selected filters.")
        return
    st.dataframe(frame, hide_index=True, width="stretch", **kwargs)
    csv_download(frame, name)


def bar(frame: pd.DataFrame, x: str, y: str, *, color: str | None = None) -> alt.Chart:
    encoding: dict[str, Any] = {"x": alt.X(x, sort="-y"), "y": alt.Y(y), "tooltip": list(frame)}
    if color:
        encoding["color"] = color
    return alt.Chart(frame).mark_bar().encode(**encoding)


def show_error(exc: VoxLedgerError) -> None:
    st.error(str(exc))
    st.stop()
