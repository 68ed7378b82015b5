"""Exact token costs from a versioned price catalog, context-window use and truncation."""

from voxledger.processors.cost.catalog import (
    MODALITIES,
    ModelEntry,
    PriceCatalog,
    ResidencyUplift,
    TokenPrices,
    TranscriptionEntry,
    default_catalog,
    load_catalog,
    parse_catalog,
)
from voxledger.processors.cost.exceptions import CatalogError, CostError
from voxledger.processors.cost.logs import cost_log
from voxledger.processors.cost.records import (
    COST_NAMESPACE,
    CostRecord,
    SessionSummary,
    money,
    record_id,
)
from voxledger.processors.cost.session import SessionCost

__all__ = [
    "COST_NAMESPACE",
    "MODALITIES",
    "CatalogError",
    "CostError",
    "CostRecord",
    "ModelEntry",
    "PriceCatalog",
    "ResidencyUplift",
    "SessionCost",
    "SessionSummary",
    "TokenPrices",
    "TranscriptionEntry",
    "cost_log",
    "default_catalog",
    "load_catalog",
    "money",
    "parse_catalog",
    "record_id",
]
