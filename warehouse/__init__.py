"""VoxLedger warehouse layer."""
