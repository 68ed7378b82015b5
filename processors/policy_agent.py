"""Agent `policy`: redacted → findings, as soon as decidable, and one verdict per session."""

from __future__ import annotations

from typing import Any

from voxledger.envelope import Envelope
from voxledger.processors.policy import Policy, SessionPolicy
from voxledger.processors.session_agent import SessionAgent


class PolicyAgent(SessionAgent):
    """Judges each session against the policy; records are `{kind: finding|verdict, ...}`."""

    name = "policy"

    def __init__(self, settings: Any, policy: Policy) -> None:
        super().__init__(settings)
        self.policy = policy

    def start(self, envelope: Envelope) -> SessionPolicy:
        return SessionPolicy(self.policy, envelope.session_id)

    def judge(self, state: SessionPolicy, envelope: Envelope) -> list[dict[str, Any]]:
        return [{"kind": "finding", **finding.to_dict()} for finding in state.add(envelope)]

    def conclude(self, state: SessionPolicy) -> list[dict[str, Any]]:
        findings, verdict = state.close()
        records = [{"kind": "finding", **finding.to_dict()} for finding in findings]
        return [*records, {"kind": "verdict", **verdict.to_dict()}]
