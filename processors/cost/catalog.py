"""The price catalog: versioned YAML data, validated by pydantic, resolved per model and date."""

from __future__ import annotations

import itertools
import re
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from voxledger.processors.cost.exceptions import CatalogError

__all__ = [
    "MODALITIES",
    "ModelEntry",
    "PriceCatalog",
    "ResidencyUplift",
    "TokenPrices",
    "TranscriptionEntry",
    "default_catalog",
    "load_catalog",
]

# Billed token kinds, in the order tables show them.
MODALITIES = (
    "text_in",
    "text_cached",
    "text_out",
    "audio_in",
    "audio_cached",
    "audio_out",
    "image_in",
    "image_cached",
)
# A family entry prices its dated snapshots (gpt-realtime-2025-08-28), never other models.
_SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenPrices(_Strict):
    """USD per `tokens_per_price_unit` (1M) tokens; a missing price is unknown, never zero."""

    text_in: Decimal | None = Field(None, ge=0)
    text_cached: Decimal | None = Field(None, ge=0)
    text_out: Decimal | None = Field(None, ge=0)
    audio_in: Decimal | None = Field(None, ge=0)
    audio_cached: Decimal | None = Field(None, ge=0)
    audio_out: Decimal | None = Field(None, ge=0)
    image_in: Decimal | None = Field(None, ge=0)
    image_cached: Decimal | None = Field(None, ge=0)

    def of(self, modality: str) -> Decimal | None:
        return getattr(self, modality)


class _Dated(_Strict):
    id: str = Field(min_length=1)
    released: date
    residency_eligible: bool
    effective_from: date
    effective_to: date | None = None  # exclusive
    notes: str | None = None

    @property
    def entry_id(self) -> str:
        """What a priced record names: the id and the date this entry took effect."""
        return f"{self.id}@{self.effective_from.isoformat()}"

    def effective_on(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)

    @model_validator(mode="after")
    def _dates_in_order(self) -> _Dated:
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise ValueError("effective_to must be after effective_from")
        return self


_E = TypeVar("_E", bound=_Dated)


class ModelEntry(_Dated):
    """A realtime model family or one dated snapshot priced differently from its family."""

    kind: Literal["family", "snapshot"]
    family: str | None = None
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    prices: TokenPrices


class TranscriptionEntry(_Dated):
    """An input transcription model: priced per minute of audio or per 1M tokens."""

    usd_per_minute: Decimal | None = Field(None, ge=0)
    prices: TokenPrices | None = None

    @model_validator(mode="after")
    def _one_price_kind(self) -> TranscriptionEntry:
        if (self.usd_per_minute is None) == (self.prices is None):
            raise ValueError("give exactly one of usd_per_minute and prices")
        return self


class ResidencyUplift(_Strict):
    """Data-residency endpoints cost `percent` more for eligible models released on/after a date."""

    percent: Decimal = Field(ge=0)
    released_on_or_after: date
    hosts: list[str]
    regions: list[str]

    def factor(self, entry: _Dated, host: str | None, region: str | None) -> Decimal | None:
        """The multiplier (e.g. 1.10) when the uplift applies to this entry and endpoint."""
        on_residency = (host in self.hosts) or (host is None and region in self.regions)
        if (
            on_residency
            and entry.residency_eligible
            and entry.released >= self.released_on_or_after
        ):
            return 1 + self.percent / 100
        return None


class PriceCatalog(_Strict):
    """The whole catalog; `resolve` and `resolve_transcription` find the entry for a model."""

    version: str = Field(min_length=1)
    currency: Literal["USD"]
    tokens_per_price_unit: int = Field(gt=0)
    residency_uplift: ResidencyUplift
    models: list[ModelEntry]
    transcription_models: list[TranscriptionEntry] = []

    @field_validator("models", "transcription_models")
    @classmethod
    def _no_overlaps(cls, entries: list[_E]) -> list[_E]:
        by_id: dict[str, list[_Dated]] = {}
        for entry in entries:
            by_id.setdefault(entry.id, []).append(entry)
            if isinstance(entry, ModelEntry) and entry.kind == "snapshot" and not entry.family:
                raise ValueError(f"snapshot {entry.id} needs its family")
        for entry_id, same in by_id.items():
            same.sort(key=lambda e: e.effective_from)
            for before, after in itertools.pairwise(same):
                if before.effective_to is None or before.effective_to > after.effective_from:
                    raise ValueError(f"entries for {entry_id} overlap in time")
        return entries

    def resolve(self, model: str, day: date | None = None) -> ModelEntry | None:
        """The entry pricing `model` on `day`: exact id first, then its family."""
        exact = [e for e in self.models if e.id == model]
        if exact:
            return _on(exact, day)
        family = [
            e
            for e in self.models
            if e.kind == "family"
            and model.startswith(e.id)
            and _SNAPSHOT_SUFFIX.fullmatch(model[len(e.id) :])
        ]
        if not family:
            return None
        longest = max(len(e.id) for e in family)
        return _on([e for e in family if len(e.id) == longest], day)

    def resolve_transcription(
        self, model: str, day: date | None = None
    ) -> TranscriptionEntry | None:
        exact = [e for e in self.transcription_models if e.id == model]
        if not exact:
            family = [
                e
                for e in self.transcription_models
                if model.startswith(e.id) and _SNAPSHOT_SUFFIX.fullmatch(model[len(e.id) :])
            ]
            exact = [max(family, key=lambda e: len(e.id))] if family else []
            exact = [e for e in self.transcription_models if exact and e.id == exact[0].id]
        return _on(exact, day) if exact else None

    def context_window(self, model: str, day: date | None = None) -> int | None:
        entry = self.resolve(model, day)
        return entry.context_window if entry else None


def _on(entries: list[_E], day: date | None) -> _E:
    """The entry effective on `day`; without a day, or before any took effect, the latest."""
    ordered = sorted(entries, key=lambda e: e.effective_from)
    if day is not None:
        for entry in reversed(ordered):
            if entry.effective_on(day):
                return entry
        earlier = [e for e in ordered if e.effective_from <= day]
        if earlier:
            return earlier[-1]
        return ordered[0]
    return ordered[-1]


class _DecimalLoader(yaml.SafeLoader):
    """YAML whose floats read as exact Decimals: 0.006 stays 0.006."""


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    return Decimal(loader.construct_scalar(node).replace("_", ""))


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _decimal)


def parse_catalog(text: str, source: str = "catalog") -> PriceCatalog:
    """Validate catalog YAML; CatalogError names the line and field of the first problem."""
    try:
        data = yaml.load(text, Loader=_DecimalLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CatalogError(f"{source}:{line}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{source}: line 1: the catalog must be a mapping")
    try:
        return PriceCatalog.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_input=False)[0]
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        where = ".".join(str(p) for p in loc) or "catalog"
        line = _line_of(text, loc)
        raise CatalogError(f"{source}: line {line}: {where}: {err['msg']}") from None


def _line_of(text: str, loc: list[Any]) -> int:
    """The 1-based line of the YAML node at `loc` (or of its nearest existing parent)."""
    node: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    line = node.start_mark.line + 1 if node else 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and (0 <= part < len(node.value))
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def load_catalog(path: str | Path | None = None) -> PriceCatalog:
    """The catalog at `path`, or the one shipped with VoxLedger."""
    if path is None:
        return default_catalog()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read price catalog {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(
            f"price catalog {path} is not UTF-8 text (byte {exc.start}): is it a YAML file?"
        ) from None
    return parse_catalog(text, str(path))


def shipped_catalog_text() -> str:
    return resources.files("voxledger.processors.prices").joinpath("catalog.yaml").read_text()


@cache
def default_catalog() -> PriceCatalog:
    """The shipped catalog, parsed once."""
    return parse_catalog(shipped_catalog_text(), "voxledger/processors/prices/catalog.yaml")
