"""PII redaction for Realtime transcripts, text and tool calls, with per-session pseudonyms."""

from voxledger.processors.redaction._agent import NO_ALLOW, AllowList
from voxledger.processors.redaction._engine import Context, Finding, RedactedText, Redactor, Span
from voxledger.processors.redaction._lexicon import ENTITY_TYPES, LANGUAGES, load_lexicon
from voxledger.processors.redaction._pseudonyms import Pseudonyms
from voxledger.processors.redaction._session import REDACTOR_VERSION, SessionRedactor
from voxledger.processors.redaction.exceptions import LexiconError, RedactionError

__all__ = [
    "ENTITY_TYPES",
    "LANGUAGES",
    "NO_ALLOW",
    "REDACTOR_VERSION",
    "AllowList",
    "Context",
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
