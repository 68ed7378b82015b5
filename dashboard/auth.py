"""Who may open which page: users from the config (bcrypt hashes), roles, and the login page."""

from __future__ import annotations

import bcrypt
import streamlit as st

from voxledger.config import Settings

# Page key -> (title, file under dashboard/, Material icon). Not in `pages/`: Streamlit would
# take that folder for an old-style multipage app and run its scripts outside app.py.
PAGES: dict[str, tuple[str, str, str]] = {
    "spend": ("Spend", "app_pages/spend.py", ":material/payments:"),
    "quality": ("Quality", "app_pages/quality.py", ":material/speed:"),
    "compliance": ("Compliance", "app_pages/compliance.py", ":material/gavel:"),
    "residency": ("EU residency", "app_pages/residency.py", ":material/public:"),
    "transcript": ("Transcript audit", "app_pages/transcript.py", ":material/description:"),
    "sql": ("SQL", "app_pages/sql.py", ":material/terminal:"),
    "access_audit": ("Access audit", "app_pages/access_audit.py", ":material/policy:"),
}
# Finance never reads transcripts; engineers see no findings' evidence beyond quality.
ACCESS: dict[str, tuple[str, ...]] = {
    "finance": ("spend", "residency"),
    "compliance": ("compliance", "residency", "transcript", "access_audit"),
    "engineer": ("quality", "sql", "residency"),
    "admin": tuple(PAGES),
}
# Checked when the user name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=4))


def allowed(role: str | None, page: str) -> bool:
    return role is not None and page in ACCESS.get(role, ())


def hash_password(password: str) -> str:
    """The `password_bcrypt` value to store for a dashboard user."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def authenticate(settings: Settings, name: str, password: str) -> str | None:
    """The user's role when `password` matches the stored bcrypt hash, else None."""
    user = settings.dashboard.users.get(name.strip())
    stored = user.password_bcrypt.encode() if user else _DUMMY_HASH
    try:
        matches = bcrypt.checkpw(password.encode(), stored)
    except ValueError:  # a malformed hash in the config never logs anyone in
        return None
    return user.role if user and matches else None


def current_user(settings: Settings) -> tuple[str, str] | None:
    """(name, role) of the logged-in user, re-checked against the config on every run."""
    name = st.session_state.get("user")
    user = settings.dashboard.users.get(name) if name else None
    if user is None:
        return None
    return name, user.role


def login_form(settings: Settings) -> None:
    """The login page; on success the session remembers the user and the app reruns."""
    st.title("VoxLedger")
    if not settings.dashboard.users:
        st.warning(
            "No dashboard users are configured. Add `[dashboard.users.<name>]` with `role` and "
            "`password_bcrypt` (from `voxledger dashboard hash-password`) to voxledger.toml."
        )
        return
    with st.form("login"):
        name = st.text_input("User name", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        role = authenticate(settings, name, password)
        if role is None:
            st.error("Unknown user or wrong password.")
            return
        st.session_state["user"] = name.strip()
        st.rerun()


def logout() -> None:
    for key in ("user", "viewed_sessions"):
        st.session_state.pop(key, None)
