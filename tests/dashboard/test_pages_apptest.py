"""Each page rendered by Streamlit's AppTest, logged in with an allowed role, on a warehouse
built from real processor output: the numbers shown equal SQL over the same views."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from voxledger.dashboard.auth import ACCESS
from voxledger.dashboard.ui import usd
from voxledger.warehouse.budgets import budget_crossings
from voxledger.warehouse.db import connect

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
# What the pii_heavy_en caller says; none of it may reach a page.
PLANTED = ("Maria", "Garcia", "4155550199", "415-555", "Mission Street", "4532111122223333")


def open_page(role: str | None, page: str | None = None) -> AppTest:
    """The app logged in as `role` on `page` (else the role's first page), after one run."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    if role:
        at.session_state["user"] = role
    if page and (not role or ACCESS[role][0] != page):
        # Before a first run AppTest finds a page by its file name, which is its url_path
        # for every page but the role's first one (served at the root).
        at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def shown_text(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("markdown", "text", "caption", "error", "warning")
        for e in at.get(kind)
    ]
    parts += [df.value.to_csv() for df in at.dataframe]
    return "\n".join(str(p) for p in parts)


def test_spend_shows_costs_computed_in_sql(dashboard_env: Any) -> None:
    wh = dashboard_env
    at = open_page("finance", "spend")
    ((total, sessions, seconds),) = wh.sql(
        "SELECT (SELECT sum(cost_usd) FROM costs), count(*), sum(duration_s) FROM sessions"
    )
    shown = metrics(at)
    assert shown["Total cost"] == usd(total)
    assert shown["Sessions"] == str(sessions)
    assert shown["Cost per session"] == usd(total / sessions)
    per_minute = total / (Decimal(str(seconds)).quantize(Decimal("0.001")) / 60)
    assert shown["Cost per minute"] == usd(per_minute)
    ((waste,),) = wh.sql("SELECT sum(unplayed_audio_usd) FROM session_costs")
    assert shown["Unplayed-audio waste"] == usd(waste or 0)
    by_tenant = wh.sql("SELECT tenant, sum(cost_usd) FROM costs GROUP BY 1")
    downloads = {b.proto.id.rsplit("-csv-", 1)[-1] for b in at.get("download_button")}
    assert {"cost_by_day", "cost_by_tenant", "cost_by_model", "budget_burn"} <= downloads
    assert len(at.get("vega_lite_chart")) == 5  # day, tenant, app, model, modality
    # acme-us' per-session budget ($0.10) is passed by its most expensive session.
    ((largest,),) = wh.sql(
        "SELECT max(usd) FROM (SELECT sum(cost_usd) AS usd FROM costs WHERE tenant = 'acme-us' "
        "GROUP BY session_id)"
    )
    assert largest > Decimal("0.1")
    assert any(
        "acme-us" in e.value and usd(largest) in e.value and "over its budget" in e.value
        for e in at.error
    )
    assert dict(by_tenant)  # the warehouse has spend to show


def test_budget_burn_agrees_with_the_budget_findings(dashboard_env: Any) -> None:
    """The day and month the burn table shows are the periods budget findings are judged
    on (UTC date each cost was observed, the cost's tenant): same spend, same overruns."""
    wh = dashboard_env
    at = open_page("finance", "spend")
    burn = next(df.value for df in at.dataframe if {"period", "status"} <= set(df.value.columns))
    settings = wh.settings()
    con = connect(settings, read_only=True)
    try:
        findings = budget_crossings(settings, con)
    finally:
        con.close()
    judged = 0
    for row in burn.itertuples():
        unit, _, period = row.period.partition(" ")  # "day 2026-11-21", "month 2026-11"
        scope = {"day": "daily", "month": "monthly"}.get(unit)
        if scope is None:
            continue  # the largest-session row: judged by the cost agent, per session
        found = [
            f
            for f in findings
            if (f["tenant"], f["budget_scope"], f["budget_period"]) == (row.tenant, scope, period)
        ]
        if found:
            judged += 1
            assert row.spent == usd(Decimal(found[0]["spent_usd"]))
        overrun = any(f["severity"] == "high" for f in found)
        assert (row.status == "over 100 %") == overrun, row
        assert (row.status == "over 80 %") == bool(found and not overrun), row
    assert judged  # the fixture's budgets are crossed: the comparison is not vacuous


def test_spend_tenant_filter_scopes_every_figure(dashboard_env: Any) -> None:
    at = open_page("finance", "spend")
    at.multiselect(key="f_tenant").select("acme-eu").run()
    ((total, sessions),) = dashboard_env.sql(
        "SELECT sum(c.cost_usd), count(DISTINCT s.session_id) FROM sessions s "
        "LEFT JOIN costs c USING (session_id) WHERE s.tenant = 'acme-eu'"
    )
    shown = metrics(at)
    assert shown["Total cost"] == usd(total)
    assert shown["Sessions"] == str(sessions)


def test_quality_latency_and_errors_match_sql(dashboard_env: Any) -> None:
    at = open_page("engineer", "quality")
    ((p50, p95, rate, dead),) = dashboard_env.sql(
        "SELECT quantile_cont(ttf_audio_ms, 0.5), quantile_cont(ttf_audio_ms, 0.95), "
        "avg(CASE WHEN interrupted THEN 1.0 ELSE 0.0 END), "
        "(SELECT count(*) FROM errors WHERE kind = 'dead_letter') FROM latency"
    )
    shown = metrics(at)
    assert shown["Time to first audio p50"] == f"{p50:,.0f} ms"
    assert shown["Time to first audio p95"] == f"{p95:,.0f} ms"
    assert shown["Interruption rate"] == f"{rate * 100:.1f} %"
    assert shown["Dead letters"] == str(dead) and dead >= 1
    tools = next(df.value for df in at.dataframe if "success_rate" in df.value.columns)
    expected = dict(dashboard_env.sql("SELECT name, count(*) FROM tool_calls GROUP BY 1"))
    assert dict(zip(tools["name"], tools["calls"], strict=True)) == expected


def test_compliance_figures_and_pii_counts_match_sql(dashboard_env: Any) -> None:
    at = open_page("compliance", "compliance")
    ((judged, failed),) = dashboard_env.sql(
        "SELECT count(*) FILTER (WHERE verdict IS NOT NULL), "
        "count(*) FILTER (WHERE verdict = 'fail') FROM sessions"
    )
    shown = metrics(at)
    assert shown["Judged sessions"] == str(judged)
    assert shown["Fail"] == str(failed)
    pii = next(df.value for df in at.dataframe if "entity_type" in df.value.columns)
    expected = dict(
        dashboard_env.sql(
            "SELECT regexp_extract(p, '<([A-Z_]+)_[0-9]+>', 1), count(*) FROM (SELECT "
            "unnest(regexp_extract_all(text, '<[A-Z_]+_[0-9]+>')) AS p FROM turns) GROUP BY 1"
        )
    )
    assert dict(zip(pii["entity_type"], pii["mentions"], strict=True)) == expected
    assert "PERSON" in expected  # the PII scenario's caller was redacted, and is counted
    refunds = dashboard_env.sql("SELECT count(*) FROM findings WHERE rule_id = 'refund_limit'")
    refund_table = [df.value for df in at.dataframe if "message" in df.value.columns]
    assert refunds[0][0] >= 1
    assert any((t["rule_id"] == "refund_limit").sum() == refunds[0][0] for t in refund_table)
    assert not any(value in shown_text(at) for value in PLANTED)


def test_mark_reviewed_records_the_review_and_closes_the_finding(
    dashboard_env: Any,
) -> None:
    at = open_page("compliance", "compliance")
    finding = at.selectbox(key="review_finding")
    picked = finding.value
    at.text_area(key="review_comment").input("Checked the call: escalated off-line.")
    next(b for b in at.button if b.label == "Mark reviewed").click().run()
    assert not at.exception
    import duckdb

    con = duckdb.connect(str(dashboard_env.data_dir / "dashboard-audit.duckdb"), read_only=True)
    rows = con.execute("SELECT finding_id, reviewer, comment FROM reviews").fetchall()
    con.close()
    assert rows == [(picked, "compliance", "Checked the call: escalated off-line.")]
    assert picked not in at.selectbox(key="review_finding").options


def test_residency_counts_violations_per_tenant(dashboard_env: Any) -> None:
    at = open_page("compliance", "residency")
    ((violations,),) = dashboard_env.sql(
        "SELECT count(*) FROM sessions WHERE eu_residency = 'violation'"
    )
    assert violations >= 1
    assert metrics(at)["Residency violations"] == str(violations)
    per_tenant = at.dataframe[0].value
    assert per_tenant.set_index("tenant")["violations"].to_dict() == dict(
        dashboard_env.sql(
            "SELECT tenant, count(*) FILTER (WHERE eu_residency = 'violation') "
            "FROM sessions GROUP BY 1"
        )
    )
    assert any(b.label == "Export DPO summary (CSV)" for b in at.get("download_button"))


def test_transcript_shows_redacted_turns_and_logs_the_view(
    dashboard_env: Any,
) -> None:
    at = open_page("compliance", "transcript")
    at.text_input(key="t_session").input("pii").run()
    texts = [
        t
        for (t,) in dashboard_env.sql(
            "SELECT text FROM turns WHERE session_id = 'pii' AND text IS NOT NULL "
            "ORDER BY turn_index"
        )
    ]
    shown = [t.value.strip() for t in at.text]
    assert shown == [t.strip() for t in texts]
    assert any("<PERSON_" in t for t in shown)
    assert not any(value in shown_text(at) for value in PLANTED)
    ((cost,),) = dashboard_env.sql("SELECT cost_usd FROM sessions WHERE session_id = 'pii'")
    assert metrics(at)["Cost"] == usd(cost)
    labels = {b.label for b in at.get("download_button")}
    assert {"Export audit record (PDF)", "Export audit record (JSON)"} <= labels
    assert dashboard_env.audit_rows() == [("compliance", "compliance", "view_transcript", "pii")]
    at.run()  # a rerun of the same view is not a second access
    assert len(dashboard_env.audit_rows()) == 1


def test_access_audit_page_lists_views(dashboard_env: Any) -> None:
    at = open_page("compliance", "transcript")
    at.text_input(key="t_session").input("refund").run()
    admin = open_page("admin", "access_audit")
    log = admin.dataframe[0].value
    assert list(log[["who", "action", "target"]].itertuples(index=False, name=None)) == [
        ("compliance", "view_transcript", "refund")
    ]


def test_sql_page_runs_a_select_and_refuses_writes(dashboard_env: Any) -> None:
    at = open_page("engineer", "sql")
    query = "SELECT tenant, count(*) AS n FROM sessions GROUP BY 1 ORDER BY 1"
    at.text_area(key="sql_query").input(query)
    next(b for b in at.button if b.label == "Run").click().run()
    result = at.dataframe[0].value
    assert list(result.itertuples(index=False, name=None)) == dashboard_env.sql(query)
    at.text_area(key="sql_query").input("COPY sessions TO '/tmp/leak.csv'")
    next(b for b in at.button if b.label == "Run").click().run()
    assert any("only SELECT" in e.value for e in at.error)
    at.text_area(key="sql_query").input("SELECT * FROM read_text('/etc/passwd')")
    next(b for b in at.button if b.label == "Run").click().run()
    assert any("Query failed" in e.value for e in at.error)
    assert not at.exception


@pytest.mark.parametrize(
    ("role", "page"),
    [
        ("finance", "transcript"),
        ("finance", "sql"),
        ("engineer", "compliance"),
        ("compliance", "sql"),
    ],
)
def test_a_forbidden_page_is_refused(dashboard_env: Any, role: str, page: str) -> None:
    at = open_page(role, page)
    assert any("Access denied" in e.value for e in at.error)
    assert not at.metric and not at.dataframe
    assert dashboard_env.audit_rows() == []


def test_menu_lists_only_the_roles_pages(dashboard_env: Any) -> None:
    at = open_page("finance")
    assert metrics(at)["Total cost"]  # finance lands on Spend
    assert at.session_state["user"] == "finance"


def test_audit_record_exports_as_pdf_and_json(dashboard_env: Any) -> None:
    import json
    from datetime import UTC, datetime

    from voxledger.dashboard import data, export

    settings = dashboard_env.settings()
    record = data.session_record(data.Warehouse(settings), "refund")
    assert record is not None
    content = export.audit_record(
        record, exported_by="compliance", exported_at=datetime(2026, 11, 27, tzinfo=UTC)
    )
    parsed = json.loads(export.to_json(content))
    turns = dashboard_env.sql("SELECT count(*) FROM turns WHERE session_id = 'refund'")[0][0]
    assert len(parsed["turns"]) == turns
    rules = {f["rule_id"] for f in parsed["findings"]}
    assert "refund_limit" in rules
    placed = [i for t in parsed["turns"] for i in t["findings"]]
    assert sorted(placed + parsed["findings_not_at_a_turn"]) == sorted(
        f["finding_id"] for f in parsed["findings"]
    )
    assert parsed["session"]["cost_usd"] == str(
        dashboard_env.sql("SELECT cost_usd FROM sessions WHERE session_id = 'refund'")[0][0]
    )
    keys = {"turn_index", "role", "item_id", "response_id", "text", "started_at", "ended_at"}
    keys |= {"audio_ms", "seq", "findings", "cost_usd"}  # audio as its duration only
    assert all(set(turn) == keys for turn in parsed["turns"])
    pdf = export.to_pdf(content)
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
