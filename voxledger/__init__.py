"""VoxLedger core: what every layer shares (envelope, config, topics, errors, cli)."""

__version__ = "0.1.0"
