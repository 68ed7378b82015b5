"""Daily and monthly budgets judged over the warehouse's costs, and sent once as findings."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from helpers import read_topic

from voxledger.config import Settings, Tenant
from voxledger.warehouse.budgets import BudgetAlerts, budget_crossings
from voxledger.warehouse.db import connect

if TYPE_CHECKING:  # only a type: importing `conftest` at run time picks whichever loaded first
    from conftest import Warehouse


def with_budgets(warehouse: Warehouse, **budgets: str) -> Settings:
    tenant = Tenant(
        name="acme", app="support", region="us", client_key_sha256="0" * 64, budgets=budgets
    )
    return warehouse.settings.model_copy(update={"tenants": (tenant,)})


def spend_by_day(db, tenant: str) -> dict[str, Decimal]:
    rows = db.execute(
        "SELECT strftime(CAST(observed_at AS TIMESTAMPTZ) AT TIME ZONE 'UTC', '%Y-%m-%d'),"
        " sum(cost_usd) FROM costs WHERE tenant = ? GROUP BY 1",
        [tenant],
    ).fetchall()
    return dict(rows)


def test_each_day_over_its_budget_gets_a_warning_and_an_overrun(warehouse: Warehouse) -> None:
    with connect(warehouse.settings) as db:
        days = spend_by_day(db, "acme")
    assert days  # the fixture's acme sessions were priced
    limit = min(days.values())  # every day reaches it; the cheapest day exactly
    settings = with_budgets(warehouse, daily_usd=str(limit))
    with connect(settings) as db:
        findings = budget_crossings(settings, db)
        again = budget_crossings(settings, db)
    assert findings == again  # deterministic: checking again finds the same findings
    by_day = {}
    for finding in findings:
        assert finding["rule_id"] == "budget.daily" and finding["tenant"] == "acme"
        by_day.setdefault(finding["budget_period"], []).append(finding["severity"])
    assert set(by_day) == set(days)
    assert all(sorted(severities) == ["high", "medium"] for severities in by_day.values())
    assert len({f["finding_id"] for f in findings}) == len(findings)
    # The finding names the acme session whose cost crossed the threshold.
    with connect(settings) as db:
        acme = {
            s
            for (s,) in db.execute("SELECT session_id FROM sessions WHERE tenant='acme'").fetchall()
        }
    assert {f["session_id"] for f in findings} <= acme


def test_a_budget_not_reached_gives_no_finding(warehouse: Warehouse) -> None:
    settings = with_budgets(warehouse, daily_usd="1000", monthly_usd="5000")
    with connect(settings) as db:
        assert budget_crossings(settings, db) == []


def test_alerts_send_each_finding_once(warehouse: Warehouse, kafka: str, monkeypatch) -> None:
    settings = with_budgets(warehouse, monthly_usd="0.000001")
    settings = settings.model_copy(update={"bootstrap_servers": kafka})
    topic = f"budget-test-{id(settings)}"
    settings = settings.model_copy(
        update={
            "topics": settings.topics.model_copy(
                update={"findings": settings.topics.findings.model_copy(update={"name": topic})}
            )
        }
    )
    from voxledger.topics import ensure_topics

    ensure_topics(settings)
    alerts = BudgetAlerts(settings)
    with connect(settings) as db:
        sent = alerts.check(db)
        assert alerts.check(db) == 0  # already sent
    assert sent >= 2
    records = read_topic(settings, topic, sent)
    assert {r["rule_id"] for r in records} == {"budget.monthly"}
    assert sorted({r["severity"] for r in records}) == ["high", "medium"]
