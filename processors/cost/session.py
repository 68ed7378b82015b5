"""One session's events → exact costs per response and transcription, context use and barge-ins.

Billing rules (copy to the README):

- Cached tokens are a SUBSET of input tokens. Per modality, billed uncached input =
  input tokens − cached tokens, and the cached tokens are billed at the cached price:
  never both. Per-modality cached counts come from `cached_tokens_details`.
- Older usage carries only `cached_tokens` (no details). It is split proportionally to the
  modality's share of the input tokens: cached_text = floor(cached × text / input),
  cached_image = floor(cached × image / input), cached_audio = the rest, where input =
  text + audio + image tokens; should the rest exceed the audio input (only when the counts
  disagree), the excess goes to text, then image, never beyond their input. The split is
  flagged in the record's warnings.
- Input transcription (`conversation.item.input_audio_transcription.completed.usage`) is
  billed at the transcription model named in the session's config: {type: tokens} per 1M
  tokens, {type: duration, seconds} per minute of audio.
- The EU data-residency uplift multiplies every priced token kind of an eligible entry
  (released on or after the catalog's date) when the envelope's upstream_host is a
  residency host, or, without a host (imported logs), when its region is a residency region.
- Cancelled, failed and incomplete responses are priced like completed ones: their usage
  is what was billed.
- Nothing is priced as zero silently: an unknown model, a missing usage, a token kind
  without a price or an unknown usage field leaves that part unpriced and adds a warning.
- Money is Decimal, exact (token prices divide by 10^6 exactly; per-minute prices and
  prorations are rounded half-even to 1e-12 USD). JSON carries it as strings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from voxledger.envelope import (
    UNPARSED_TYPE,
    Envelope,
    audio_bytes_per_ms,
    audio_summary,
    elide_audio,
    parse_frame,
)
from voxledger.processors.cost._usage import number, response_tokens, transcription_tokens
from voxledger.processors.cost.catalog import (
    ModelEntry,
    PriceCatalog,
    TranscriptionEntry,
    default_catalog,
)
from voxledger.processors.cost.records import (
    COST_NAMESPACE,
    CostRecord,
    SessionSummary,
    money,
    record_id,
)

__all__ = ["SessionCost"]

_PICO = Decimal("1e-12")
_RATIO = Decimal("0.0001")
_AUDIO_DELTAS = frozenset({"response.output_audio.delta", "response.audio.delta"})
_TRUNCATE_EVENTS = frozenset({"conversation.item.truncate", "conversation.item.truncated"})
_TRANSCRIBED = "conversation.item.input_audio_transcription.completed"
_ITEM_ADDED = frozenset({"conversation.item.added", "conversation.item.created"})
_ITEM_DELETED = frozenset({"conversation.item.delete", "conversation.item.deleted"})
# The server reports prompt-cache hits in blocks; a cache that went backwards was reset.
_CACHE_TOLERANCE = 32
# Audio tokenisation of user speech: about 1 token per 100 ms.
_USER_AUDIO_MS_PER_TOKEN = 100


@dataclass
class _Previous:
    response_id: str
    input_tokens: int
    cached_tokens: int
    output_audio_tokens: int
    output_text_tokens: int


class SessionCost:
    """Accumulates one session's cost: `add` each event in order, then `summary()`.

    Accepts Envelope v1 objects and plain Realtime events (dicts, or JSON text as sent),
    which it wraps as envelopes the way ingest does. Pure and deterministic: the same
    events give the same records, ids and totals.
    """

    def __init__(
        self,
        catalog: PriceCatalog | None = None,
        *,
        session_id: str | None = None,
        price_date: date | None = None,
        upstream_host: str | None = None,
        region: str | None = None,
    ) -> None:
        self.catalog = catalog or default_catalog()
        self.session_id = session_id
        self.price_date = price_date  # None: each envelope's observed_at date
        self.upstream_host = upstream_host  # for plain events
        self.region = region
        self.model: str | None = None
        self.transcription_model: str | None = None
        self.truncation: Any = None  # the session's truncation setting, as sent
        self.records: list[CostRecord] = []
        self.unknown_models: list[str] = []
        self.truncations: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self._seen: set[str] = set()
        self._seq = 0
        self._output_bytes_per_ms = audio_bytes_per_ms(None)
        self._previous: _Previous | None = None
        self._items_added = 0
        self._items_deleted = 0
        self._user_audio_ms = 0.0
        self._speech_started: dict[str, float] = {}
        self._audio_ms_by_item: dict[str, float] = {}
        self._response_of_item: dict[str, str] = {}
        self._truncated_items: dict[str, tuple[int, str]] = {}  # item -> (audio_end_ms, type)
        self._response_records: dict[str, CostRecord] = {}

    # -- input ---------------------------------------------------------------------------------

    def add(self, event: Envelope | dict[str, Any] | str | bytes) -> list[CostRecord]:
        """Take one event; returns the cost records it completed (usually none or one)."""
        envelope = event if isinstance(event, Envelope) else self._wrap(event)
        if self.session_id is None:
            self.session_id = envelope.session_id
        elif envelope.session_id != self.session_id:
            self._warn(
                f"event {envelope.type} of session {envelope.session_id} ignored: "
                f"this accumulator costs session {self.session_id}"
            )
            return []
        payload = envelope.payload
        etype = envelope.type
        if etype in ("session.created", "session.updated", "session.update"):
            self._learn_session(payload.get("session"), server=etype != "session.update")
        elif etype in _AUDIO_DELTAS:
            self._audio_delta(payload)
        elif etype in ("response.output_item.added", "response.output_item.done"):
            item = payload.get("item")
            if isinstance(item, dict) and isinstance(payload.get("response_id"), str):
                self._response_of_item.setdefault(str(item.get("id")), payload["response_id"])
        elif etype in _TRUNCATE_EVENTS:
            self._truncated(payload, etype)
        elif etype in _ITEM_ADDED:
            self._items_added += 1
        elif etype in _ITEM_DELETED and envelope.direction == "server":
            self._items_deleted += 1
        elif etype == "input_audio_buffer.speech_started":
            self._speech(payload, started=True)
        elif etype == "input_audio_buffer.speech_stopped":
            self._speech(payload, started=False)
        elif etype == "response.done":
            return self._response_done(envelope)
        elif etype == _TRANSCRIBED:
            return self._transcribed(envelope)
        elif etype == UNPARSED_TYPE and _looks_like(payload, b"response.done"):
            self._warn(
                f"seq {envelope.seq}: a response.done line could not be read "
                f"({payload.get('parse_error')}); its usage is not priced"
            )
        return []

    def _wrap(self, event: dict[str, Any] | str | bytes) -> Envelope:
        from voxledger.ingest.importer import event_direction

        if isinstance(event, dict):
            etype = event.get("type") if isinstance(event.get("type"), str) else UNPARSED_TYPE
            payload = (
                event
                if etype != UNPARSED_TYPE
                else {"raw_text": str(event)[:2000], "parse_error": "no string `type`"}
            )
        else:
            etype, payload = parse_frame(event)
        session = payload.get("session") if etype == "session.created" else None
        if isinstance(session, dict) and isinstance(session.get("id"), str):
            if self.session_id is None:
                self.session_id = session["id"]
            elif session["id"] != self.session_id:
                self._warn(
                    f"a second session ({session['id']}) began in this stream; its events are "
                    f"costed as {self.session_id}: cost one session per SessionCost (cost_log "
                    "splits files)"
                )
        has_event_id = isinstance(payload.get("event_id"), str)
        seq = self._seq
        self._seq += 1
        return Envelope.model_validate(
            {
                "envelope_id": str(uuid.uuid5(COST_NAMESPACE, f"plain/{seq}")),
                "session_id": self.session_id or "plain-session",
                "seq": seq,
                "direction": event_direction(etype, has_event_id),
                "type": etype,
                "observed_at": "1970-01-01T00:00:00Z",
                "upstream_host": self.upstream_host,
                "region": self.region,
                "model": self.model,
                "source": "import",
                "payload": elide_audio(payload, self._output_bytes_per_ms),
            }
        )

    def _learn_session(self, session: Any, server: bool) -> None:
        if not isinstance(session, dict):
            return
        if server and isinstance(session.get("model"), str):
            self.model = session["model"]
        if "truncation" in session:
            self.truncation = session["truncation"]
        audio = session.get("audio") if isinstance(session.get("audio"), dict) else {}
        audio_in = audio.get("input") if isinstance(audio.get("input"), dict) else {}
        audio_out = audio.get("output") if isinstance(audio.get("output"), dict) else {}
        for config in (audio_in.get("transcription"), session.get("input_audio_transcription")):
            if isinstance(config, dict) and isinstance(config.get("model"), str):
                self.transcription_model = config["model"]
        fmt = audio_out.get("format")
        fmt = (
            fmt.get("type") if isinstance(fmt, dict) else fmt or session.get("output_audio_format")
        )
        if isinstance(fmt, str):
            self._output_bytes_per_ms = audio_bytes_per_ms(fmt)

    def _audio_delta(self, payload: dict[str, Any]) -> None:
        item_id = payload.get("item_id")
        if not isinstance(item_id, str):
            return
        delta = payload.get("delta")
        if isinstance(delta, str):  # audio capture kept the base64: measure it the same way
            delta = audio_summary(delta, self._output_bytes_per_ms)
        ms = 0.0
        if isinstance(delta, dict) and isinstance(delta.get("duration_ms"), int | float):
            ms = float(delta["duration_ms"])
        self._audio_ms_by_item[item_id] = self._audio_ms_by_item.get(item_id, 0.0) + ms
        if isinstance(payload.get("response_id"), str):
            self._response_of_item.setdefault(item_id, payload["response_id"])

    def _truncated(self, payload: dict[str, Any], etype: str) -> None:
        item_id, end = payload.get("item_id"), payload.get("audio_end_ms")
        if isinstance(item_id, str) and isinstance(end, int | float):
            self._truncated_items[item_id] = (int(end), etype)

    def _speech(self, payload: dict[str, Any], started: bool) -> None:
        item_id = str(payload.get("item_id"))
        if started and isinstance(payload.get("audio_start_ms"), int | float):
            self._speech_started[item_id] = float(payload["audio_start_ms"])
        elif not started and isinstance(payload.get("audio_end_ms"), int | float):
            start = self._speech_started.pop(item_id, None)
            if start is not None:
                self._user_audio_ms += max(0.0, float(payload["audio_end_ms"]) - start)

    # -- pricing -------------------------------------------------------------------------------

    def _day(self, envelope: Envelope) -> date | None:
        if self.price_date is not None:
            return self.price_date
        day = envelope.observed_at.date()
        return None if day.year == 1970 else day  # plain events carry no time of their own

    def _model_entry(self, model: str | None, day: date | None) -> ModelEntry | None:
        entry = self.catalog.resolve(model, day) if model else None
        if entry is None:
            name = model or "(unknown)"
            if name not in self.unknown_models:
                self.unknown_models.append(name)
        return entry

    def _response_done(self, envelope: Envelope) -> list[CostRecord]:
        response = envelope.payload.get("response")
        where = f"seq {envelope.seq}"
        if not isinstance(response, dict):
            self._warn(
                f"{where}: response.done without a response object ({response!r}); "
                "its usage is not priced"
            )
            return []
        response_id = response.get("id") if isinstance(response.get("id"), str) else None
        ref = response_id or f"seq-{envelope.seq}"
        if ref in self._seen:
            self._warn(f"response {ref}: response.done seen again; counted once")
            return []
        self._seen.add(ref)
        for item in response.get("output") or []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                self._response_of_item.setdefault(item["id"], ref)
        status = response.get("status") if isinstance(response.get("status"), str) else None
        details = response.get("status_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        model = self.model or envelope.model
        if isinstance(response.get("model"), str):
            model = response["model"]
        usage = response.get("usage")
        warnings: list[str] = []
        if not isinstance(usage, dict):
            self._warn(f"response {ref} ({status}): no usage ({usage!r}); not priced")
            self._previous = None
            return []
        tokens, totals = response_tokens(usage, warnings)
        day = self._day(envelope)
        entry = self._model_entry(model, day)
        record_warnings = [f"response {ref}: {w}" for w in warnings]
        costs, factor, complete = self._price_tokens(entry, tokens, envelope, record_warnings, ref)
        complete = complete and not totals["unpriced"]
        if entry is None:
            record_warnings.append(
                f"response {ref}: model {model or '(unknown)'} is not in "
                f"price catalog {self.catalog.version}; not priced"
            )
        input_tokens = totals["input"]
        window = entry.context_window if entry else None
        ratio = (
            (Decimal(input_tokens) / Decimal(window)).quantize(_RATIO, ROUND_HALF_EVEN)
            if window and input_tokens is not None
            else None
        )
        dropped = self._infer_truncation(ref, tokens, input_tokens)
        record = CostRecord(
            record_id=record_id(envelope.session_id, ref),
            session_id=envelope.session_id,
            kind="response",
            ref=ref,
            model=model,
            usage=usage,
            tokens=tokens,
            cost_by_modality=costs,
            cost_usd=(
                sum(costs.values(), Decimal(0))
                if entry is not None and (costs or not totals["unpriced"])
                else None
            ),
            complete=complete and entry is not None,
            price_entry=entry.entry_id if entry else None,
            catalog_version=self.catalog.version,
            uplift_factor=factor,
            status=status,
            status_reason=reason,
            context_window=window,
            context_used_ratio=ratio,
            truncation_inferred=dropped is not None,
            estimated_tokens_dropped=dropped,
            observed_at=_observed(envelope),
            warnings=tuple(record_warnings),
        )
        self.warnings.extend(record_warnings)
        self.records.append(record)
        self._response_records[ref] = record
        return [record]

    def _price_tokens(
        self,
        entry: ModelEntry | TranscriptionEntry | None,
        tokens: dict[str, int],
        envelope: Envelope,
        warnings: list[str],
        ref: str,
    ) -> tuple[dict[str, Decimal], Decimal | None, bool]:
        if entry is None:
            return {}, None, False
        prices = entry.prices
        factor = self.catalog.residency_uplift.factor(
            entry, envelope.upstream_host or self.upstream_host, envelope.region or self.region
        )
        unit = Decimal(self.catalog.tokens_per_price_unit)
        costs: dict[str, Decimal] = {}
        complete = True
        for modality, count in tokens.items():
            price = prices.of(modality) if prices else None
            if price is None:
                if count:
                    complete = False
                    warnings.append(
                        f"{count} {modality} tokens not priced: {entry.entry_id} "
                        "has no price for them"
                    )
                continue
            cost = Decimal(count) * price / unit
            if factor is not None:
                cost *= factor
            costs[modality] = cost
        return costs, factor, complete

    def _infer_truncation(
        self, ref: str, tokens: dict[str, int], input_tokens: int | None
    ) -> int | None:
        """Estimated tokens the server dropped before this response, or None.

        The server drops the oldest items without an event when the conversation outgrows
        the window. Inferred when the conversation grew since the previous response (items
        added, none deleted) and yet input tokens fell, or the prompt cache went backwards,
        while fewer input tokens were billed than expected. Expected = previous input +
        the previous reply (its audio tokens, or text tokens for a text reply) + the user's
        speech since (1 token per 100 ms). Never inferred with truncation "disabled".
        """
        previous = self._previous
        grew = self._items_added > 0 and self._items_deleted == 0
        user_tokens = int(self._user_audio_ms // _USER_AUDIO_MS_PER_TOKEN)
        self._items_added = self._items_deleted = 0
        self._user_audio_ms = 0.0
        cached = (
            tokens.get("text_cached", 0)
            + tokens.get("audio_cached", 0)
            + tokens.get("image_cached", 0)
        )
        if input_tokens is None:
            self._previous = None
            return None
        self._previous = _Previous(
            ref, input_tokens, cached, tokens.get("audio_out", 0), tokens.get("text_out", 0)
        )
        if previous is None or not grew:
            return None
        fell = input_tokens < previous.input_tokens
        cache_reset = cached + _CACHE_TOLERANCE < previous.cached_tokens
        reply = previous.output_audio_tokens or previous.output_text_tokens
        expected = previous.input_tokens + reply + user_tokens
        if not (fell or cache_reset) or input_tokens + _CACHE_TOLERANCE >= expected:
            return None
        setting = self.truncation
        if setting == "disabled":
            self._warn(
                f"response {ref}: input tokens fell to {input_tokens} from "
                f"{previous.input_tokens} although truncation is disabled"
            )
            return None
        dropped = expected - input_tokens
        self.truncations.append(
            {
                "session_id": self.session_id,
                "response_id": ref,
                "previous_response_id": previous.response_id,
                "input_tokens": input_tokens,
                "previous_input_tokens": previous.input_tokens,
                "expected_input_tokens": expected,
                "estimated_tokens_dropped": dropped,
                "cached_tokens": cached,
                "previous_cached_tokens": previous.cached_tokens,
                "truncation_setting": setting if setting is not None else "auto (default)",
            }
        )
        return dropped

    def _transcribed(self, envelope: Envelope) -> list[CostRecord]:
        payload = envelope.payload
        item_id = payload.get("item_id") if isinstance(payload.get("item_id"), str) else None
        ref = item_id or f"seq-{envelope.seq}"
        key = f"transcription/{ref}/{payload.get('content_index', 0)}"
        if key in self._seen:
            self._warn(f"transcription of {ref} seen again; counted once")
            return []
        self._seen.add(key)
        usage = payload.get("usage")
        if not isinstance(usage, dict):
            self._warn(f"transcription of item {ref}: no usage ({usage!r}); not priced")
            return []
        model = self.transcription_model
        day = self._day(envelope)
        entry = self.catalog.resolve_transcription(model, day) if model else None
        warnings: list[str] = []
        tokens: dict[str, int] = {}
        costs: dict[str, Decimal] = {}
        factor = None
        complete = False
        if entry is None:
            name = model or "(unknown transcription model)"
            if name not in self.unknown_models:
                self.unknown_models.append(name)
            warnings.append(
                f"transcription model {name} is not in price catalog "
                f"{self.catalog.version}; not priced"
            )
        elif usage.get("type") == "duration":
            seconds = number(usage.get("seconds"))
            if seconds is None:
                warnings.append(f"duration usage without seconds ({usage!r}); not priced")
            elif entry.usd_per_minute is None:
                warnings.append(
                    f"{seconds} s of audio not priced: {entry.entry_id} is priced "
                    "per token, the usage is a duration"
                )
            else:
                factor = self.catalog.residency_uplift.factor(
                    entry,
                    envelope.upstream_host or self.upstream_host,
                    envelope.region or self.region,
                )
                cost = seconds * entry.usd_per_minute / 60 * (factor or 1)
                costs["audio_duration"] = cost.quantize(_PICO, ROUND_HALF_EVEN)
                complete = True
        elif usage.get("type") == "tokens":
            tokens = transcription_tokens(usage, warnings)
            if entry.prices is None:
                warnings.append(f"token usage not priced: {entry.entry_id} is priced per minute")
            else:
                costs, factor, complete = self._price_tokens(entry, tokens, envelope, warnings, ref)
        else:
            warnings.append(f"unknown transcription usage type {usage.get('type')!r}; not priced")
        warnings = [f"transcription of item {ref}: {w}" for w in warnings]
        record = CostRecord(
            record_id=record_id(envelope.session_id, ref),
            session_id=envelope.session_id,
            kind="transcription",
            ref=ref,
            model=model,
            usage=usage,
            tokens=tokens,
            cost_by_modality=costs,
            cost_usd=sum(costs.values(), Decimal(0)) if costs else None,
            complete=complete,
            price_entry=entry.entry_id if entry else None,
            catalog_version=self.catalog.version,
            uplift_factor=factor,
            observed_at=_observed(envelope),
            warnings=tuple(warnings),
        )
        self.warnings.extend(warnings)
        self.records.append(record)
        return [record]

    # -- output --------------------------------------------------------------------------------

    def unplayed_audio(self) -> list[dict[str, Any]]:
        """Per truncated assistant item: audio generated but never played, and its cost.

        Unplayed = audio generated for the item (sum of its audio deltas' duration_ms) −
        audio_end_ms of the truncate. Its tokens are the response's output audio tokens
        prorated by unplayed ms / all audio ms the response generated; its cost is those
        tokens at the response's output audio price (with its uplift).
        """
        rows = []
        for item_id, (end_ms, etype) in self._truncated_items.items():
            generated = self._audio_ms_by_item.get(item_id, 0.0)
            response_id = self._response_of_item.get(item_id)
            row: dict[str, Any] = {
                "session_id": self.session_id,
                "item_id": item_id,
                "response_id": response_id,
                "event": etype,
                "audio_end_ms": end_ms,
                "generated_ms": _ms(generated),
                "unplayed_ms": _ms(max(0.0, generated - end_ms)),
                "unplayed_seconds": None,
                "unplayed_tokens": None,
                "cost_usd": None,
            }
            unplayed = Decimal(str(row["unplayed_ms"]))
            row["unplayed_seconds"] = money(unplayed / 1000)
            record = self._response_records.get(response_id or "")
            if not generated:
                self._warn(
                    f"item {item_id} was truncated but no audio deltas of it were seen; "
                    "its unplayed audio is unknown"
                )
            elif record is None:
                self._warn(
                    f"item {item_id} was truncated but its response.done was not seen; "
                    "the unplayed audio is not priced"
                )
            else:
                response_ms = sum(
                    ms
                    for item, ms in self._audio_ms_by_item.items()
                    if self._response_of_item.get(item) == response_id
                )
                audio_out = Decimal(record.tokens.get("audio_out", 0))
                tokens = (audio_out * unplayed / Decimal(str(_ms(response_ms)))).quantize(
                    _PICO, ROUND_HALF_EVEN
                )
                row["unplayed_tokens"] = money(tokens)
                per_token = _per_token(record, "audio_out")
                if per_token is not None:
                    row["cost_usd"] = money((tokens * per_token).quantize(_PICO, ROUND_HALF_EVEN))
            rows.append(row)
        return rows

    def summary(self) -> SessionSummary:
        summary = SessionSummary(self.catalog.version)
        if self.session_id:
            summary.session_ids.append(self.session_id)
        unplayed = self.unplayed_audio()
        for record in self.records:
            summary.add_record(record)
        summary.unknown_models = list(self.unknown_models)
        summary.truncations = list(self.truncations)
        summary.unplayed_audio = unplayed
        summary.warnings = list(dict.fromkeys(self.warnings))
        return summary

    def _warn(self, message: str) -> None:
        self.warnings.append(message)


def _per_token(record: CostRecord, modality: str) -> Decimal | None:
    count = record.tokens.get(modality)
    cost = record.cost_by_modality.get(modality)
    if not count or cost is None:
        return None
    return cost / Decimal(count)


def _ms(value: float) -> float:
    return round(value, 3)


def _observed(envelope: Envelope) -> str | None:
    day = envelope.observed_at
    return None if day.year == 1970 else envelope.model_dump(mode="json")["observed_at"]


def _looks_like(payload: dict[str, Any], marker: bytes) -> bool:
    raw = payload.get("raw_text")
    return isinstance(raw, str) and marker.decode() in raw
