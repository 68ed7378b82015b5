"""VoxLedger dashboard layer."""
