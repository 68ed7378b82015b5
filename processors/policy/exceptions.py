"""Errors of the policy layer, all VoxLedgerError: the CLI prints them and exits 2."""

from voxledger.errors import VoxLedgerError


class PolicyError(VoxLedgerError):
    """Something the policy checker cannot work with."""


class PolicyFileError(PolicyError):
    """A policy or tenant override file is missing, not YAML, or does not fit the schema."""


class EventLogError(PolicyError):
    """An event log to check cannot be read or holds no event."""
