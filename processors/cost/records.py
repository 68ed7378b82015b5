"""Cost records and session summaries: what the cost processor emits, and their JSON."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from voxledger.processors.cost.catalog import MODALITIES

__all__ = ["COST_NAMESPACE", "CostRecord", "SessionSummary", "money", "record_id"]

COST_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://voxledger.dev/cost-records")


def record_id(session_id: str, ref: str) -> str:
    """The deterministic id of a cost record: uuid5 of session id and response/item id."""
    return str(uuid.uuid5(COST_NAMESPACE, f"{session_id}/{ref}"))


def money(value: Decimal | None) -> str | None:
    """A Decimal as a plain JSON string ('0.00123'), without exponent."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class CostRecord:
    """The priced usage of one response.done or one input transcription."""

    record_id: str
    session_id: str
    kind: str  # "response" | "transcription"
    ref: str  # response_id or item_id
    model: str | None
    usage: dict[str, Any] | None
    tokens: dict[str, int]
    cost_by_modality: dict[str, Decimal]
    cost_usd: Decimal | None  # None: nothing could be priced
    complete: bool  # every token was priced
    price_entry: str | None
    catalog_version: str
    uplift_factor: Decimal | None = None
    status: str | None = None
    status_reason: str | None = None
    context_window: int | None = None
    context_used_ratio: Decimal | None = None
    truncation_inferred: bool = False
    estimated_tokens_dropped: int | None = None
    observed_at: str | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "record_id": self.record_id,
            "session_id": self.session_id,
            "kind": self.kind,
            ("response_id" if self.kind == "response" else "item_id"): self.ref,
            "model": self.model,
            "status": self.status,
            "usage": self.usage,
            "tokens": dict(self.tokens),
            "cost_by_modality": {k: money(v) for k, v in self.cost_by_modality.items()},
            "cost_usd": money(self.cost_usd),
            "complete": self.complete,
            "price_entry": self.price_entry,
            "catalog_version": self.catalog_version,
            "uplift_factor": money(self.uplift_factor),
            "observed_at": self.observed_at,
            "warnings": list(self.warnings),
        }
        if self.kind == "response":
            out["status_reason"] = self.status_reason
            out["context_window"] = self.context_window
            out["context_used_ratio"] = money(self.context_used_ratio)
            out["truncation_inferred"] = self.truncation_inferred
            out["estimated_tokens_dropped"] = self.estimated_tokens_dropped
        return out


@dataclass
class SessionSummary:
    """Totals of one session (or several, merged): what `voxledger cost` prints."""

    catalog_version: str
    session_ids: list[str] = field(default_factory=list)
    total_usd: Decimal = Decimal(0)
    by_model: dict[str, Decimal] = field(default_factory=dict)
    by_modality: dict[str, Decimal] = field(default_factory=dict)
    responses: list[CostRecord] = field(default_factory=list)
    transcriptions: list[CostRecord] = field(default_factory=list)
    unknown_models: list[str] = field(default_factory=list)
    truncations: list[dict[str, Any]] = field(default_factory=list)
    unplayed_audio: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add_record(self, record: CostRecord) -> None:
        (self.responses if record.kind == "response" else self.transcriptions).append(record)
        if record.cost_usd is None:
            return
        self.total_usd += record.cost_usd
        name = record.model or "(unknown)"
        self.by_model[name] = self.by_model.get(name, Decimal(0)) + record.cost_usd
        for modality, cost in record.cost_by_modality.items():
            key = f"transcription_{modality}" if record.kind == "transcription" else modality
            self.by_modality[key] = self.by_modality.get(key, Decimal(0)) + cost

    def merge(self, other: SessionSummary) -> None:
        self.session_ids.extend(other.session_ids)
        for record in [*other.responses, *other.transcriptions]:
            self.add_record(record)
        for name in other.unknown_models:
            if name not in self.unknown_models:
                self.unknown_models.append(name)
        self.truncations.extend(other.truncations)
        self.unplayed_audio.extend(other.unplayed_audio)
        self.warnings.extend(other.warnings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_usd": money(self.total_usd),
            "by_model": {k: money(v) for k, v in sorted(self.by_model.items())},
            "by_modality": {k: money(v) for k, v in _modality_order(self.by_modality)},
            "responses": [_response_row(r) for r in self.responses],
            "transcriptions": [_transcription_row(r) for r in self.transcriptions],
            "unknown_models": list(self.unknown_models),
            "truncations": self.truncations,
            "unplayed_audio": self.unplayed_audio,
            "catalog_version": self.catalog_version,
            "sessions": list(self.session_ids),
            "warnings": list(self.warnings),
        }


def _modality_order(costs: dict[str, Decimal]) -> list[tuple[str, Decimal]]:
    order = {m: i for i, m in enumerate(MODALITIES)}
    return sorted(
        costs.items(),
        key=lambda kv: (
            kv[0].startswith("transcription"),
            order.get(kv[0].removeprefix("transcription_"), 99),
            kv[0],
        ),
    )


def _response_row(r: CostRecord) -> dict[str, Any]:
    return {
        "response_id": r.ref,
        "session_id": r.session_id,
        "record_id": r.record_id,
        "model": r.model,
        "status": r.status,
        "status_reason": r.status_reason,
        "usage": r.usage,
        "tokens": r.tokens,
        "cost_usd": money(r.cost_usd),
        "cost_by_modality": {k: money(v) for k, v in r.cost_by_modality.items()},
        "complete": r.complete,
        "price_entry": r.price_entry,
        "uplift_factor": money(r.uplift_factor),
        "context_window": r.context_window,
        "context_used_ratio": money(r.context_used_ratio),
        "truncation_inferred": r.truncation_inferred,
        "estimated_tokens_dropped": r.estimated_tokens_dropped,
    }


def _transcription_row(r: CostRecord) -> dict[str, Any]:
    return {
        "item_id": r.ref,
        "session_id": r.session_id,
        "record_id": r.record_id,
        "model": r.model,
        "usage": r.usage,
        "tokens": r.tokens,
        "cost_usd": money(r.cost_usd),
        "complete": r.complete,
        "price_entry": r.price_entry,
        "uplift_factor": money(r.uplift_factor),
    }
