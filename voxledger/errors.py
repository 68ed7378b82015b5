"""One exception tree for VoxLedger, so callers can catch broadly or precisely."""


class VoxLedgerError(Exception):
    """A failure a user can act on; the CLI prints its message and exits 2."""


class ConfigError(VoxLedgerError):
    """The configuration file or environment is invalid."""


class BrokerError(VoxLedgerError):
    """The Kafka broker cannot be started, reached or stopped."""


class TopicError(VoxLedgerError):
    """A topic is missing or does not have the configured shape."""


class EnvelopeError(VoxLedgerError):
    """Bytes that do not decode to a valid Envelope v1."""
