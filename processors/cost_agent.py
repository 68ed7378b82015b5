"""Agent `cost`: redacted → costs, one record per priced response and transcription, and a
session summary (`kind: session_summary`) when the session closes. A session crossing 80 % or
100 % of its tenant's per-session budget also sends a finding to the findings topic."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import faust

from voxledger.config import Settings, TopicSpec
from voxledger.envelope import Envelope
from voxledger.processors.app import raw_topic
from voxledger.processors.cost import PriceCatalog, SessionCost
from voxledger.processors.cost.budgets import BudgetWatch
from voxledger.processors.session_agent import SessionAgent


@dataclass
class CostedSession:
    cost: SessionCost
    tenant: str | None
    budget: BudgetWatch | None  # the tenant's per-session budget, if it has one


class CostAgent(SessionAgent):
    """Prices each session from its usage events with the versioned catalog."""

    name = "cost"

    def __init__(self, settings: Settings, catalog: PriceCatalog) -> None:
        super().__init__(settings)
        self.catalog = catalog
        self.tenants = {tenant.name: tenant for tenant in settings.tenants}

    def register(self, app: faust.App, source: TopicSpec, output: TopicSpec) -> None:
        findings = self.settings.topics.findings
        self.findings_out = raw_topic(app, findings.name, findings.partitions)
        super().register(app, source, output)

    def destination(self, record: dict[str, Any]) -> faust.TopicT:
        return self.findings_out if record.get("kind") == "finding" else self.out

    def start(self, envelope: Envelope) -> CostedSession:
        cost = SessionCost(self.catalog, session_id=envelope.session_id)
        tenant = self.tenants.get(envelope.tenant or "")
        limit = tenant.budgets.per_session_usd if tenant else None
        budget = None
        if tenant and limit:
            budget = BudgetWatch(tenant.name, "per_session", envelope.session_id, limit)
        return CostedSession(cost, envelope.tenant, budget)

    def judge(self, state: CostedSession, envelope: Envelope) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for record in state.cost.add(envelope):
            out.append({**record.to_dict(), "tenant": state.tenant})
            if state.budget and record.cost_usd:
                evidence = [
                    {
                        "seq": envelope.seq,
                        "envelope_id": envelope.envelope_id,
                        "excerpt": f"{record.kind} {record.ref}: ${record.cost_usd}",
                    }
                ]
                out += state.budget.add(
                    Decimal(record.cost_usd),
                    session_id=envelope.session_id,
                    observed_at=record.observed_at or "",
                    evidence=evidence,
                )
        return out

    def conclude(self, state: CostedSession) -> list[dict[str, Any]]:
        summary = state.cost.summary().to_dict()
        session_id = state.cost.session_id
        return [
            {"kind": "session_summary", "session_id": session_id, "tenant": state.tenant, **summary}
        ]
