"""The versioned price catalog (catalog.yaml), data validated by voxledger.processors.cost."""
