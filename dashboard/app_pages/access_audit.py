"""Access audit (compliance, admin): every transcript view and export, and every review mark."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from voxledger.dashboard import audit, ui
from voxledger.errors import VoxLedgerError

ctx = ui.page("access_audit")
try:
    log = pd.DataFrame(
        audit.access_log(ctx.settings), columns=["who", "role", "action", "target", "at"]
    )
    marks = pd.DataFrame(
        audit.reviews(ctx.settings), columns=["finding_id", "reviewer", "comment", "at"]
    )
except VoxLedgerError as exc:
    ui.show_error(exc)
st.metric("Access events", f"{len(log):,}")
st.subheader("Transcript views and exports (newest first)")
ui.table(log, "access_audit")
st.subheader("Findings marked reviewed")
ui.table(marks, "reviews")
