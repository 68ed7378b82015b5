"""A recorded session log (JSONL of Realtime events or envelopes) → one SessionSummary.

Lines are read the way `voxledger import` reads them (ingest.importer): envelopes as they
are, plain events split into sessions at each session.created, unreadable lines kept as
voxledger.unparsed. Each session is costed on its own; the summaries are merged.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from voxledger.envelope import UNPARSED_TYPE, Envelope
from voxledger.processors.cost.catalog import PriceCatalog, default_catalog
from voxledger.processors.cost.exceptions import CostError
from voxledger.processors.cost.session import SessionCost, SessionSummary


def read_envelopes(path: Path) -> tuple[list[Envelope], list[str]]:
    """Every line of the log as an envelope, in order, and the lines that could not be."""
    # The one reader of recorded logs, shared with `policy check` and `voxledger import`.
    from voxledger.ingest.importer import SessionSplitter, as_envelope, read_log

    envelopes: list[Envelope] = []
    problems: list[str] = []
    splitter = SessionSplitter(path, envelopes.append)
    for number, line in read_log(path):
        envelope = as_envelope(line)
        if isinstance(envelope, Envelope):
            envelopes.append(envelope)
        elif isinstance(envelope, str):
            problems.append(f"line {number}: {envelope}; not costed")
        else:
            splitter.line(line)
    splitter.finish()
    return envelopes, problems


def cost_log(
    path: str | Path,
    catalog: PriceCatalog | None = None,
    *,
    region: str | None = None,
    upstream_host: str | None = None,
    price_date: date | None = None,
) -> SessionSummary:
    """Cost every session in a log; CostError when it cannot be read or holds no event.

    `region`/`upstream_host` stand in for envelopes that carry none (plain event logs).
    """
    from voxledger.ingest.capture import SESSION_CLOSED

    path = Path(path)
    catalog = catalog or default_catalog()
    try:
        envelopes, problems = read_envelopes(path)
    except CostError:
        raise
    except OSError as exc:
        raise CostError(f"cannot read {path}: {exc.strerror}") from None
    events = [e for e in envelopes if e.type not in (UNPARSED_TYPE, SESSION_CLOSED)]
    if not events:
        raise CostError(f"{path} holds no Realtime event")
    sessions: dict[str, SessionCost] = {}
    for envelope in envelopes:
        if envelope.type == SESSION_CLOSED:
            continue
        if envelope.region is None and envelope.upstream_host is None and (region or upstream_host):
            envelope = envelope.model_copy(
                update={"region": region, "upstream_host": upstream_host}
            )
        accumulator = sessions.get(envelope.session_id)
        if accumulator is None:
            accumulator = sessions[envelope.session_id] = SessionCost(
                catalog, session_id=envelope.session_id, price_date=price_date
            )
        accumulator.add(envelope)
    total = SessionSummary(catalog.version)
    total.warnings.extend(problems)
    unparsed = sum(1 for e in envelopes if e.type == UNPARSED_TYPE)
    if unparsed:
        total.warnings.append(f"{unparsed} line(s) could not be read as events")
    for accumulator in sessions.values():
        total.merge(accumulator.summary())
    return total
