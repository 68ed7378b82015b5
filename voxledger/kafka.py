"""Kafka client settings shared by every layer, and where the broker is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from voxledger.config import Settings


def broker_state_file(settings: Settings) -> Path:
    """Where `voxledger broker start` records the embedded broker's pid and address."""
    return settings.data_dir / "broker" / "broker.json"


def bootstrap_servers(settings: Settings) -> str:
    """VOXLEDGER_BOOTSTRAP_SERVERS (or the config) wins; else the embedded broker, if running."""
    if settings.bootstrap_servers:
        return settings.bootstrap_servers
    state = broker_state_file(settings)
    if state.is_file():
        try:
            return json.loads(state.read_text())["bootstrap_servers"]
        except (ValueError, KeyError):
            pass
    return f"{settings.broker.host}:{settings.broker.port}"


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Common confluent-kafka config; callers add their role's keys."""
    return {"bootstrap.servers": bootstrap_servers(settings), **overrides}


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Idempotent, fully acknowledged, compressed: what every VoxLedger producer uses."""
    return client_config(
        settings,
        **{
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "zstd",
            "linger.ms": 5,
            **overrides,
        },
    )
