"""VoxLedger processors layer."""
