"""The dashboard's entry: login, the pages the user's role may open, and the shared filters.

Run by `voxledger dashboard` (streamlit run on this file). Every page is registered so a
deep link resolves; pages a role may not open are hidden from its menu and refused.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import streamlit as st

from voxledger.config import Settings, load_settings
from voxledger.dashboard import auth
from voxledger.dashboard.data import Filters, Warehouse, filter_options
from voxledger.errors import VoxLedgerError

HERE = Path(__file__).resolve().parent


def _default_page(role: str | None) -> str:
    allowed = auth.ACCESS.get(role or "", ())
    return allowed[0] if allowed else "spend"


def _pages(role: str | None) -> dict[str, st.Page]:
    allowed = auth.ACCESS.get(role or "", ())
    default = _default_page(role)
    return {
        key: st.Page(
            str(HERE / path),
            title=title,
            icon=icon,
            url_path=key,
            default=key == default,
            visibility="visible" if key in allowed else "hidden",
        )
        for key, (title, path, icon) in auth.PAGES.items()
    }


def _sidebar_filters(settings: Settings) -> Filters:
    """The filters shared by every page; options come from the sessions in the warehouse."""
    try:
        options = filter_options(Warehouse(settings))
    except VoxLedgerError as exc:
        st.sidebar.warning(str(exc))
        return Filters()
    st.sidebar.subheader("Filters")
    if options.get("as_of"):  # pages read a mart: say how recent its data is
        st.sidebar.caption(f"Data as of {options['as_of']:%Y-%m-%d %H:%M:%S} UTC")
    first, last = options["first"], options["last"]
    start = end = None
    if first and last:
        picked = st.sidebar.date_input(
            "Dates", value=(first, last), min_value=first, max_value=last, key="f_dates"
        )
        span = list(picked) if isinstance(picked, tuple | list) else [picked]
        start = span[0] if span and isinstance(span[0], date) else None
        end = span[-1] if span and isinstance(span[-1], date) else None
    chosen = {
        column: tuple(st.sidebar.multiselect(label, options[column], key=f"f_{column}"))
        for column, label in (
            ("tenant", "Tenant"),
            ("app", "App"),
            ("model", "Model"),
            ("region", "Region"),
        )
    }
    return Filters(
        start=start,
        end=end,
        tenants=chosen["tenant"],
        apps=chosen["app"],
        models=chosen["model"],
        regions=chosen["region"],
    )


def main() -> None:
    st.set_page_config(page_title="VoxLedger", page_icon=":material/graphic_eq:", layout="wide")
    try:
        settings = load_settings()
    except VoxLedgerError as exc:
        st.error(str(exc))
        st.stop()
    who = auth.current_user(settings)
    if who is None:
        page = st.navigation(list(_pages(None).values()), position="hidden")
        # Where the user arrived: "" is the app's root, a deep link names its page.
        st.session_state["arrived_at"] = page.url_path
        auth.login_form(settings)
        st.stop()
    name, role = who
    pages = _pages(role)
    page = st.navigation(list(pages.values()))
    key = page.url_path or _default_page(role)  # the default page's url_path is ""
    arrived_at = st.session_state.pop("arrived_at", None)
    if not auth.allowed(role, key) and arrived_at == "":
        st.switch_page(pages[_default_page(role)])  # logged in at the root: the role's home
    st.sidebar.caption(f"Logged in as **{name}** ({role})")
    if st.sidebar.button("Log out", key="logout"):
        auth.logout()
        st.rerun()
    if not auth.allowed(role, key):
        st.error(f"Access denied: the {role} role cannot open {page.title}.")
        st.stop()
    st.session_state["filters"] = _sidebar_filters(settings)
    page.run()


main()
