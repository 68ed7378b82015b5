"""The redaction package's errors, under VoxLedger's one exception tree."""

from voxledger.errors import VoxLedgerError


class RedactionError(VoxLedgerError):
    """Something the redactor cannot do with the input it was given."""


class LexiconError(RedactionError):
    """A word-list data file is missing, malformed or does not match its schema."""
