"""Shared fixtures: one real tansu broker for the whole test session, isolated topics per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port

from voxledger.broker import start_broker, stop_broker
from voxledger.config import Settings, load_settings
from voxledger.topics import ensure_topics

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "examples" / "voxledger.toml"


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka-protocol broker (embedded tansu) on a free port; yields its address."""
    data_dir = tmp_path_factory.mktemp("broker")
    settings = Settings(data_dir=data_dir)
    state, _ = start_broker(settings, free_port())
    try:
        yield state.bootstrap_servers
    finally:
        stop_broker(settings)


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The demo config, a private data dir, and no stray VOXLEDGER_* from the caller's shell."""
    for name in list(os.environ):
        if name.startswith("VOXLEDGER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VOXLEDGER_CONFIG", str(EXAMPLE_CONFIG))
    monkeypatch.setenv("VOXLEDGER_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture
def pipeline_settings(kafka: str, demo_env: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Demo settings on the session broker with topics of their own, created up front."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("VOXLEDGER_BOOTSTRAP_SERVERS", kafka)
    for role in ("raw", "redacted", "findings", "costs", "deadletter"):
        monkeypatch.setenv(f"VOXLEDGER_TOPICS__{role.upper()}__NAME", f"{prefix}.{role}")
    settings = load_settings()
    ensure_topics(settings)
    return settings
