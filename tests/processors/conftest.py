"""Redaction fixtures: the NLP engines load once per test session, shared by every test."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # no network at import

from voxledger.processors.redaction import Pseudonyms, Redactor

SECRET = b"test secret, not for production"


@pytest.fixture(scope="session")
def redactor() -> Redactor:
    """All five languages' engines: spaCy NER for en/es/fr, patterns for de/ja."""
    return Redactor()


@pytest.fixture
def pseudonyms() -> Pseudonyms:
    return Pseudonyms("session-under-test", SECRET)
