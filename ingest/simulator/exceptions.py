"""Errors raised by the Realtime simulator and its scenario library."""

from __future__ import annotations

from voxledger.errors import VoxLedgerError


class SimulatorError(VoxLedgerError):
    """The simulator cannot start or serve as asked."""


class ScenarioError(SimulatorError):
    """A scenario file is missing or does not match the scenario schema."""


class ClientEventError(Exception):
    """A client event the simulator rejects; becomes an `error` server event, not a disconnect."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
