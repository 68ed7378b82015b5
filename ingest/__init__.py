"""VoxLedger ingest layer."""
