"""PII redaction for Realtime transcripts, text and tool calls, with per-session pseudonyms."""

from voxledger.processors.redaction._engine import Finding, RedactedText, Redactor, Span
from voxledger.processors.redaction._lexicon import ENTITY_TYPES, LANGUAGES, load_lexicon
from voxledger.processors.redaction._pseudonyms import Pseudonyms
from voxledger.processors.redaction._session import REDACTOR_VERSION, SessionRedactor
from voxledger.processors.redaction.exceptions import LexiconError, RedactionError

__all__ = [
    "ENTITY_TYPES",
    "LANGUAGES",
    "REDACTOR_VERSION",
    "Finding",
    "LexiconError",
    "Pseudonyms",
    "RedactedText",
    "RedactionError",
    "Redactor",
    "SessionRedactor",
    "Span",
    "load_lexicon",
]
