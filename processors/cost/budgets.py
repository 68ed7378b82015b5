"""Budget findings: a tenant's spend crossing 80 % and 100 % of a configured limit.

A budget is a (tenant, scope, period) with a limit: `per_session` (the period is the session),
`daily` (a UTC date) or `monthly` (a UTC month). Each threshold crossed gives one finding, whose
id comes from tenant, scope, period and threshold: whoever computes it again (a replay, the
warehouse's periodic check) sends the same finding, and the warehouse keeps one row per id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from voxledger.config import Budgets
from voxledger.processors.cost.records import money

__all__ = ["BUDGET_NAMESPACE", "THRESHOLDS", "BudgetWatch", "budget_finding", "budget_findings"]

BUDGET_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://voxledger.dev/budget-findings")
BUDGET_VERSION = "budgets-v1"  # what `policy_version` says on budget findings: config, not policy

Scope = Literal["per_session", "daily", "monthly"]

# (share of the limit, severity): 80 % warns, 100 % is an overrun.
THRESHOLDS: tuple[tuple[Decimal, str], ...] = ((Decimal("0.8"), "medium"), (Decimal("1"), "high"))


def budget_limit(budgets: Budgets, scope: Scope) -> Decimal | None:
    return {
        "per_session": budgets.per_session_usd,
        "daily": budgets.daily_usd,
        "monthly": budgets.monthly_usd,
    }[scope]


def budget_finding(
    *,
    tenant: str,
    scope: Scope,
    period: str,
    limit: Decimal,
    share: Decimal,
    spent: Decimal,
    session_id: str,
    observed_at: str,
    evidence: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The finding for spend having reached `share` of a budget (`spent` so far)."""
    severity = dict(THRESHOLDS)[share]
    label = "overrun" if share >= 1 else f"{share * 100:.0f} % reached"
    return {
        "kind": "finding",
        "finding_id": str(uuid.uuid5(BUDGET_NAMESPACE, f"{tenant}|{scope}|{period}|{share}")),
        "session_id": session_id,
        "rule_id": f"budget.{scope}",
        "policy_version": BUDGET_VERSION,
        "severity": severity,
        "status": "open",
        "action": "needs_review",
        "message": (
            f"{scope.replace('_', ' ')} budget {label} for tenant {tenant} ({period}): "
            f"${money(spent)} of ${money(limit)}"
        ),
        "evidence": evidence or [],
        "observed_at": observed_at,
        "tenant": tenant,
        "budget_scope": scope,
        "budget_period": period,
        "budget_limit_usd": money(limit),
        "spent_usd": money(spent),
    }


def budget_findings(
    *,
    spent_before: Decimal,
    spent_after: Decimal,
    limit: Decimal,
    **finding: Any,
) -> list[dict[str, Any]]:
    """The findings for thresholds that spend crossed going from `spent_before` to `spent_after`."""
    return [
        budget_finding(limit=limit, share=share, spent=spent_after, **finding)
        for share, _severity in THRESHOLDS
        if spent_before < limit * share <= spent_after
    ]


@dataclass
class BudgetWatch:
    """Running spend of one budget period, turning each increase into its threshold findings."""

    tenant: str
    scope: Scope
    period: str
    limit: Decimal
    spent: Decimal = field(default=Decimal(0))

    def add(
        self,
        amount: Decimal,
        *,
        session_id: str,
        observed_at: str,
        evidence: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        before, self.spent = self.spent, self.spent + amount
        return budget_findings(
            tenant=self.tenant,
            scope=self.scope,
            period=self.period,
            limit=self.limit,
            spent_before=before,
            spent_after=self.spent,
            session_id=session_id,
            observed_at=observed_at,
            evidence=evidence,
        )
