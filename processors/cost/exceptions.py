"""Errors of the cost processor, under VoxLedgerError so the CLI exits 2 with the message."""

from voxledger.errors import VoxLedgerError


class CostError(VoxLedgerError):
    """A session log cannot be costed (unreadable, or no Realtime event in it)."""


class CatalogError(CostError):
    """The price catalog is missing or invalid; the message names the line and field."""
