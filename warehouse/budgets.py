"""Daily and monthly budgets: findings when a tenant's spend crosses 80 % and 100 % of a limit.

Per-session budgets are judged in the stream by the cost agent, which sees a whole session.
A tenant's day or month spans every partition, so it is judged here, over the warehouse's
`costs`, where each cost record is counted once however often it was delivered. The finding
names the session whose cost crossed the threshold (the running sum in observed order), and
its id comes from tenant, scope, period and threshold: checking again sends the same finding.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import duckdb
from confluent_kafka import Producer

from voxledger.config import Settings
from voxledger.kafka import producer_config
from voxledger.processors.cost.budgets import THRESHOLDS, budget_finding, budget_limit
from voxledger.processors.cost.records import money

log = logging.getLogger("voxledger.warehouse")

# period format per scope, in UTC
_PERIODS = {"daily": "%Y-%m-%d", "monthly": "%Y-%m"}

# The first cost record, in observed order, at which a period's running spend reached `limit`.
_CROSSING_SQL = """
WITH priced AS (
    SELECT session_id, record_id, kind, ref, cost_usd,
           strftime(CAST(observed_at AS TIMESTAMPTZ) AT TIME ZONE 'UTC', $fmt) AS period,
           CAST(observed_at AS TIMESTAMPTZ) AS seen_at
    FROM costs
    WHERE tenant = $tenant AND cost_usd IS NOT NULL
), running AS (
    SELECT *,
           sum(cost_usd) OVER w AS spent,
           row_number() OVER w AS n,
           sum(cost_usd) OVER (PARTITION BY period) AS total
    FROM priced
    WINDOW w AS (PARTITION BY period ORDER BY seen_at, record_id)
)
SELECT period, arg_min(session_id, n), arg_min(kind || ' ' || ref, n),
       strftime(arg_min(seen_at, n) AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ'), max(total)
FROM running
WHERE spent >= $limit
GROUP BY period
ORDER BY period
"""


def budget_crossings(settings: Settings, db: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every daily/monthly budget finding the warehouse's costs call for, oldest first."""
    findings: list[dict[str, Any]] = []
    for tenant in settings.tenants:
        for scope, fmt in _PERIODS.items():
            limit = budget_limit(tenant.budgets, scope)
            if limit is None:
                continue
            for share, _severity in THRESHOLDS:
                params = {"tenant": tenant.name, "fmt": fmt, "limit": limit * share}
                for period, session_id, ref, observed_at, total in db.execute(
                    _CROSSING_SQL, params
                ).fetchall():
                    excerpt = f"{ref} took spend to ${money(limit * share)} or more"
                    findings.append(
                        budget_finding(
                            tenant=tenant.name,
                            scope=scope,
                            period=period,
                            limit=limit,
                            share=share,
                            spent=total,
                            session_id=session_id,
                            observed_at=observed_at,
                            evidence=[{"seq": None, "envelope_id": None, "excerpt": excerpt}],
                        )
                    )
    return findings


class BudgetAlerts:
    """Sends each budget finding to the findings topic once per process lifetime."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sent: set[str] = set()
        self.producer: Producer | None = None

    def check(self, db: duckdb.DuckDBPyConnection) -> int:
        """Send the findings not sent yet; returns how many were sent."""
        new = [f for f in budget_crossings(self.settings, db) if f["finding_id"] not in self.sent]
        if not new:
            return 0
        if self.producer is None:
            self.producer = Producer(producer_config(self.settings))
        topic = self.settings.topics.findings.name
        for finding in new:
            self.producer.produce(topic, json.dumps(finding).encode(), finding["session_id"])
        self.producer.flush(30)
        self.sent.update(f["finding_id"] for f in new)
        log.info("sent %d budget finding(s)", len(new))
        return len(new)
