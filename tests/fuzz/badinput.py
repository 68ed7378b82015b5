"""The bad-input corpus (tests/data/fuzz_corpus) and the hypothesis settings of the fuzz tests."""

from __future__ import annotations

import gzip
from pathlib import Path

from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "fuzz_corpus"
# Files of one bad input a line (JSONL, or what should have been JSONL).
LINE_FILES = (
    "malformed_json.jsonl",
    "deep_nesting.jsonl",
    "wrong_types.jsonl",
    "unknown_types.jsonl",
    "invalid_utf8.jsonl",
    "lone_surrogates.jsonl",
    "envelopes_v2.jsonl",
    "bad_envelopes.jsonl",
    "envelope_usage.jsonl",
    "truncated_log.jsonl",
)

# Reproducible in CI (derandomize), bounded in time, no flaky deadlines on a busy runner.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def corpus_bytes(name: str) -> bytes:
    """A corpus file's content; `.gz` files are stored compressed (the huge frames)."""
    data = (CORPUS / name).read_bytes()
    return gzip.decompress(data) if name.endswith(".gz") else data


def corpus_lines(name: str) -> list[bytes]:
    return [line for line in corpus_bytes(name).split(b"\n") if line]


def huge_frames() -> list[bytes]:
    """Three frames of about 2 MiB: a text item, an audio append, a non-JSON string."""
    return corpus_lines("huge_frame.jsonl.gz")
