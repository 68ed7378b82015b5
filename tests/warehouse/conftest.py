"""A real warehouse to query: recorded and simulated sessions run offline through the real
processors (redaction, policy, cost), their records turned into rows by the sink's own
`record_to_row`, and written as hive-partitioned Parquet under a temporary root.

`build_warehouse(root, sessions)` is the reusable part (the dashboard tests use it too);
`warehouse` is a session-scoped fixture holding the default library of sessions, with what
the processors produced, so tests compare the views against the processors' own output.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # no network at import

from voxledger.config import Settings
from voxledger.deadletter import DeadLetter
from voxledger.envelope import Envelope
from voxledger.ingest.capture import SESSION_CLOSED
from voxledger.processors.cost import SessionCost
from voxledger.processors.cost.catalog import default_catalog
from voxledger.processors.cost.logs import read_envelopes
from voxledger.processors.policy import SessionPolicy, load_policy
from voxledger.processors.redaction import Redactor, SessionRedactor
from voxledger.warehouse.schema import KafkaRecord, record_to_row, to_arrow
from voxledger.warehouse.storage import data_file_name, open_store

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / "tests" / "data" / "realtime_logs"
HERE = Path(__file__).resolve().parent
SECRET = b"warehouse test secret"
TOPICS = {
    "redacted": "voxledger.events.redacted",
    "findings": "voxledger.findings",
    "costs": "voxledger.costs",
    "deadletter": "voxledger.deadletter",
}
STEP = timedelta(milliseconds=10)  # recorded logs carry no timing: events are 10 ms apart


@dataclass(frozen=True)
class SessionSpec:
    """One session to put in the warehouse: where its events come from, and where it ran."""

    session_id: str
    log: Path | None = None  # a recorded JSONL log (plain events or envelopes)
    scenario: str | None = None  # or a simulator scenario, played offline
    tenant: str = "acme"
    app: str = "support"
    region: str = "us"
    upstream_host: str = "api.openai.com"
    model: str | None = None
    start: datetime = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@dataclass
class Produced:
    """What the processors made of each session, by session id."""

    envelopes: dict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    findings: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    costs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)


DEFAULT_SESSIONS = (
    SessionSpec(
        "ga-support",
        log=LOGS / "ga_support_call.jsonl",
        region="eu",
        upstream_host="eu.api.openai.com",
        model="gpt-realtime",
    ),
    SessionSpec("beta-booking", log=LOGS / "beta_booking.jsonl", tenant="bistro", app="booking"),
    SessionSpec("mcp-tools", scenario="mcp_tools_en"),
    SessionSpec(
        "barge-in", scenario="barge_in_en", start=datetime(2026, 11, 21, 23, 59, 59, tzinfo=UTC)
    ),
    SessionSpec("content-filter", scenario="content_filter_en", tenant="bistro", app="booking"),
    SessionSpec("eu-wrong-host", scenario="eu_wrong_host_en", region="eu"),
    # Hand-written: a function call with its output, a denied MCP approval, an error event,
    # a failed response, and user text typed by the client.
    SessionSpec("edge-cases", log=HERE / "data" / "edge_cases.jsonl", tenant="bistro"),
)


def play_scenarios(names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The server events of each scenario, played through the fast simulator (no network)."""
    from voxledger.ingest.scenario_client import run_scenario
    from voxledger.ingest.simulator import start_simulator

    async def main() -> dict[str, list[dict[str, Any]]]:
        server = await start_simulator(fast=True)
        try:
            out = {}
            for name in names:
                result = await run_scenario(
                    name, base_url=server.url, api_key="sk-simulated", record_events=True
                )
                assert result.completed, f"{name}: {result.aborted}"
                out[name] = result.events or []
            return out
        finally:
            await server.close()

    return asyncio.run(main())


def session_envelopes(spec: SessionSpec, log: Path) -> list[Envelope]:
    """The log as the proxy would have captured it: one session, stamped with where it ran."""
    envelopes, problems = read_envelopes(log)
    assert not problems, problems
    first = envelopes[0].session_id
    return [
        e.model_copy(
            update={
                "session_id": spec.session_id,
                "tenant": spec.tenant,
                "app": spec.app,
                "region": spec.region,
                "upstream_host": spec.upstream_host,
                "model": spec.model or e.model,
                "observed_at": spec.start + e.seq * STEP,
            }
        )
        for e in envelopes
        if e.session_id == first
    ]


def process(envelopes: list[Envelope], redactor: Redactor, produced: Produced) -> None:
    """Run one session through redaction, then policy and cost on the redacted envelopes."""
    session_id = envelopes[0].session_id
    redacting = SessionRedactor(redactor, session_id, SECRET, "en")
    redacted: list[Envelope] = []
    for envelope in envelopes:
        redacted.extend(redacting.process(envelope))
    redacted.extend(redacting.flush())
    if redacted[-1].type != SESSION_CLOSED:
        closing = {"type": SESSION_CLOSED, "reason": "end of log"}
        redacted.append(
            redacted[-1].model_copy(
                update={
                    "envelope_id": f"{session_id}-closed",
                    "seq": redacted[-1].seq + 1,
                    "type": SESSION_CLOSED,
                    "payload": closing,
                    "direction": "client",
                }
            )
        )
    policy = SessionPolicy(load_policy(), session_id)
    cost = SessionCost(default_catalog(), session_id=session_id)
    for envelope in redacted:
        produced.findings[session_id].extend(
            {"kind": "finding", **f.to_dict()} for f in policy.add(envelope)
        )
        produced.costs[session_id].extend(r.to_dict() for r in cost.add(envelope))
    findings, verdict = policy.close()
    known = {f["finding_id"] for f in produced.findings[session_id]}
    produced.findings[session_id].extend(
        {"kind": "finding", **f.to_dict()} for f in findings if f.finding_id not in known
    )
    produced.verdicts[session_id] = {"kind": "verdict", **verdict.to_dict()}
    produced.summaries[session_id] = {
        "kind": "session_summary",
        "session_id": session_id,
        **cost.summary().to_dict(),
    }
    produced.envelopes[session_id] = redacted


class _Batch:
    """Rows of one simulated sink batch, by table and day, with the offsets they came from."""

    def __init__(self) -> None:
        self.offsets = dict.fromkeys(TOPICS.values(), 0)
        self.rows: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        self.ranges: dict[tuple[str, str, str], list[int]] = {}

    def add(self, role: str, value: bytes, when: datetime | None = None) -> None:
        topic = TOPICS[role]
        offset = self.offsets[topic]
        self.offsets[topic] += 1
        stamp = int((when or datetime(2026, 11, 22, tzinfo=UTC)).timestamp() * 1000)
        row = record_to_row(KafkaRecord(topic, 0, offset, value, stamp), role)  # type: ignore[arg-type]
        key = (row.table, row.date, topic)
        self.rows[key].append(row.values)
        self.ranges.setdefault(key, [offset, offset])[1] = offset

    def write(self, root: Path, offset_base: int = 0) -> None:
        store = open_store(Settings(data_dir=root.parent, warehouse={"url": str(root)}))
        for (table, day, topic), rows in self.rows.items():
            first, last = self.ranges[(table, day, topic)]
            name = data_file_name(topic, 0, first + offset_base, last + offset_base)
            store.write_table(store.file_path(table, day, name), to_arrow(table, rows))


def build_warehouse(
    root: Path,
    specs: tuple[SessionSpec, ...] = DEFAULT_SESSIONS,
    redactor: Redactor | None = None,
) -> Produced:
    """Process `specs` offline and write every record as the sink would, under `root`."""
    redactor = redactor or Redactor(languages=("en",))
    scenarios = play_scenarios([s.scenario for s in specs if s.scenario])
    produced = Produced()
    scratch = root.parent / "scenario-logs"
    scratch.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        log = spec.log
        if spec.scenario:
            log = scratch / f"{spec.session_id}.jsonl"
            log.write_text("".join(json.dumps(e) + "\n" for e in scenarios[spec.scenario]))
        assert log is not None
        process(session_envelopes(spec, log), redactor, produced)
    batch = _Batch()
    for session_id, envelopes in produced.envelopes.items():
        for envelope in envelopes:
            batch.add("redacted", envelope.to_bytes(), envelope.observed_at)
        for record in [*produced.findings[session_id], produced.verdicts[session_id]]:
            batch.add("findings", json.dumps(record).encode())
        for record in [*produced.costs[session_id], produced.summaries[session_id]]:
            batch.add("costs", json.dumps(record).encode())
    letter = DeadLetter.of(
        agent="cost",
        error="ValueError: usage is not an object",
        topic=TOPICS["redacted"],
        partition=0,
        offset=7,
        original=b'{"v": 1, "broken": true}',
        session_id=specs[0].session_id,
    )
    produced.dead_letters.append(json.loads(letter.to_bytes()))
    batch.add("deadletter", letter.to_bytes())
    batch.write(root)
    # A replay: the first session's cost records delivered again at later offsets.
    replay = _Batch()
    replay.offsets = dict(batch.offsets)
    for record in produced.costs[specs[0].session_id]:
        replay.add("costs", json.dumps(record).encode())
    replay.write(root)
    return produced


@dataclass(frozen=True)
class Warehouse:
    """A built warehouse: its settings (data_dir, root) and what the processors produced."""

    settings: Settings
    produced: Produced

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir


def warehouse_settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir)


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    data_dir = tmp_path_factory.mktemp("warehouse-data")
    produced = build_warehouse(data_dir / "warehouse")
    yield Warehouse(warehouse_settings(data_dir), produced)


@pytest.fixture
def write_copy(warehouse: Warehouse) -> Callable[[Path, str, int], int]:
    """Writes ga-support's events again as session `session_id` under a warehouse root,
    from Kafka offset `first` on, as one sink file; returns the next offset."""

    def write(root: Path, session_id: str, first: int = 0) -> int:
        batch = _Batch()
        batch.offsets[TOPICS["redacted"]] = first
        for e in warehouse.produced.envelopes["ga-support"]:
            copy = e.model_copy(
                update={"session_id": session_id, "envelope_id": f"{session_id}-{e.seq}"}
            )
            batch.add("redacted", copy.to_bytes(), copy.observed_at)
        batch.write(root)
        return batch.offsets[TOPICS["redacted"]]

    return write


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No VOXLEDGER_* from the caller's shell, and no voxledger.toml in the working dir."""
    for name in list(os.environ):
        if name.startswith("VOXLEDGER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path
