"""Agent `policy`: redacted → findings, as soon as decidable, and one verdict per session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voxledger.config import Settings
from voxledger.envelope import Envelope
from voxledger.processors.policy import Policy, SessionPolicy, load_policy
from voxledger.processors.session_agent import SessionAgent


@dataclass(frozen=True)
class TenantPolicies:
    """The policy each session is judged by: its tenant's override, else the base policy."""

    base: Policy
    by_tenant: dict[str, Policy]

    def for_tenant(self, tenant: str | None) -> Policy:
        return self.by_tenant.get(tenant or "", self.base)


def tenant_policies(settings: Settings) -> TenantPolicies:
    """Load the base policy and every tenant override once, at start-up (errors name the line)."""
    base_file = settings.processors.policy_file
    by_tenant = {
        tenant.name: load_policy(base_file, tenant.policy_file)
        for tenant in settings.tenants
        if tenant.policy_file is not None
    }
    return TenantPolicies(load_policy(base_file), by_tenant)


class PolicyAgent(SessionAgent):
    """Judges each session against its tenant's policy; records are `{kind: finding|verdict}`."""

    name = "policy"

    def __init__(self, settings: Any, policies: TenantPolicies | Policy) -> None:
        super().__init__(settings)
        if isinstance(policies, Policy):
            policies = TenantPolicies(policies, {})
        self.policies = policies

    def start(self, envelope: Envelope) -> SessionPolicy:
        return SessionPolicy(self.policies.for_tenant(envelope.tenant), envelope.session_id)

    def judge(self, state: SessionPolicy, envelope: Envelope) -> list[dict[str, Any]]:
        return [{"kind": "finding", **finding.to_dict()} for finding in state.add(envelope)]

    def conclude(self, state: SessionPolicy) -> list[dict[str, Any]]:
        findings, verdict = state.close()
        records = [{"kind": "finding", **finding.to_dict()} for finding in findings]
        return [*records, {"kind": "verdict", **verdict.to_dict()}]
