"""Fuzz fixtures: the redactor's NLP engines load once for the CLI tests that need them."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # no network at import


@pytest.fixture(scope="session")
def fuzz_redactor():
    """A Redactor for `voxledger redact --lang en`, passed as ctx.obj: English only, as
    loading all five languages takes ~20 s and the bad input fails the same way in each."""
    from voxledger.processors.redaction import Redactor

    return Redactor(languages=("en",))
