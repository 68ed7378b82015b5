"""Agent `cost`: redacted → costs, one record per priced response and transcription, and a
session summary (`kind: session_summary`) when the session closes."""

from __future__ import annotations

from typing import Any

from voxledger.config import Settings
from voxledger.envelope import Envelope
from voxledger.processors.cost import PriceCatalog, SessionCost
from voxledger.processors.session_agent import SessionAgent


class CostAgent(SessionAgent):
    """Prices each session from its usage events with the versioned catalog."""

    name = "cost"

    def __init__(self, settings: Settings, catalog: PriceCatalog) -> None:
        super().__init__(settings)
        self.catalog = catalog

    def start(self, envelope: Envelope) -> SessionCost:
        return SessionCost(self.catalog, session_id=envelope.session_id)

    def judge(self, state: SessionCost, envelope: Envelope) -> list[dict[str, Any]]:
        return [record.to_dict() for record in state.add(envelope)]

    def conclude(self, state: SessionCost) -> list[dict[str, Any]]:
        summary = state.summary().to_dict()
        return [{"kind": "session_summary", "session_id": state.session_id, **summary}]
