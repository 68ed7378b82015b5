"""Processor fixtures: the NLP engines load once per test session, shared by every test, and
`voxledger processors` as a child process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Processors, free_port

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # no network at import

from voxledger.config import Settings
from voxledger.processors.redaction import Pseudonyms, Redactor

SECRET = b"test secret, not for production"


@pytest.fixture(scope="session")
def redactor() -> Redactor:
    """All five languages' engines: spaCy NER for en/es/fr, patterns for de/ja."""
    return Redactor()


@pytest.fixture
def pseudonyms() -> Pseudonyms:
    return Pseudonyms("session-under-test", SECRET)


@pytest.fixture
def processors(pipeline_settings: Settings, tmp_path: Path, monkeypatch) -> Iterator[Processors]:
    monkeypatch.setenv("VOXLEDGER_PROCESSORS__PSEUDONYM_SECRET", "test secret")
    monkeypatch.setenv("VOXLEDGER_PROCESSORS__METRICS_PORT", str(free_port()))
    # Imported envelopes may end mid-stream with no close marker: release them soon.
    monkeypatch.setenv("VOXLEDGER_PROCESSORS__IDLE_RELEASE_S", "3")
    runner = Processors(tmp_path / "processors.log")
    yield runner
    if runner.process and runner.process.poll() is None:
        runner.process.kill()
        runner.process.wait()
