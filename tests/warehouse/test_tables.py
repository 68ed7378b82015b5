"""The view SQL's building blocks keep the meaning of the plain SQL they replace: the events'
replay filter, and payloads parsed once instead of once per field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from voxledger.config import Settings
from voxledger.warehouse import db, tables

Writer = Callable[[Path, str, int], int]

# The events view as first written: pick each envelope's first copy on narrow columns, then
# join every row back. The view now finds repeated keys by hash first; answers must not move.
REFERENCE_EVENTS = """
WITH firsts AS (
    SELECT session_id, envelope_id, min(kafka_offset) AS kafka_offset,
           arg_min(kafka_partition, kafka_offset) AS kafka_partition
    FROM _base_events GROUP BY session_id, envelope_id
)
SELECT b.envelope_id, b.session_id, b.seq, b.direction, b.type, b.observed_at, b.tenant,
       b.app, b.region, b.upstream_host, b.model, b.source, b.payload, b.extra, b.kafka_topic,
       b.kafka_partition, b.kafka_offset, b.date
FROM _base_events b
JOIN firsts f USING (session_id, envelope_id, kafka_partition, kafka_offset)
"""


def test_replayed_envelopes_count_once_as_the_plain_sql_says(
    tmp_path: Path, write_copy: Writer
) -> None:
    settings = Settings(data_dir=tmp_path)
    root = Path(db.warehouse_root(settings))
    write_copy(root, "replayed", 0)
    (first,) = root.glob("events/**/*.parquet")
    copies = {  # name: (columns changed, rows copied)
        # a replay of the first events at later offsets, then in another partition
        "replay": ("kafka_offset + 1000 AS kafka_offset", "seq < 5"),
        "other-partition": (
            "1 AS kafka_partition, kafka_offset + 2000 AS kafka_offset",
            "seq BETWEEN 3 AND 8",
        ),
        # the very same record twice (a merge's input left next to its output): kept twice,
        # as the join always did
        "same-record": ("kafka_offset AS kafka_offset", "seq = 9"),
        "no-envelope-id": ("NULL AS envelope_id, kafka_offset + 3000 AS kafka_offset", "seq = 10"),
    }
    con = duckdb.connect()
    (original,) = con.execute(f"SELECT count(*) FROM read_parquet('{first}')").fetchone() or (0,)
    assert original > 10
    for name, (changed, where) in copies.items():
        con.execute(
            f"COPY (SELECT * REPLACE ({changed}) FROM read_parquet('{first}') WHERE {where}) "
            f"TO '{first.parent / (name + '.parquet')}' (FORMAT parquet)"
        )
    con.close()
    view = db.connect(settings)

    def one(query: str) -> object:
        found = view.execute(query).fetchall()
        assert len(found) == 1 and len(found[0]) == 1, found
        return found[0][0]

    try:
        assert one("SELECT count(*) FROM _base_events") == original + 5 + 6 + 1 + 1
        assert one("SELECT count(*) FROM events") == original + 1  # the same record twice
        assert (
            one(
                f"WITH reference AS ({REFERENCE_EVENTS}) SELECT count(*) FROM ("
                "(FROM events EXCEPT ALL FROM reference) UNION ALL "
                "(FROM reference EXCEPT ALL FROM events))"
            )
            == 0
        )
        # The first copies are the ones kept.
        assert one("SELECT count(*) FROM events WHERE kafka_offset >= 1000") == 0
    finally:
        view.close()


PAYLOADS = [
    {"item_id": "item_1", "item": {"id": "item_2", "type": "message", "role": "user"}},
    {"item_id": 42, "delta": {"duration_ms": 40.0}},  # numbers as their JSON text
    {"delta": "a text delta", "item": "not an object"},  # paths through scalars: NULL
    {"item": {"id": {"nested": [1, 2]}}},  # objects as JSON text
    {"item_id": None, "transcript": "caf\u00e9 \u201cquoted\u201d\n<PERSON_1>"},
    {"ITEM_ID": "case matters"},
    {},
    [1, 2],
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_a_payload_parsed_once_reads_as_json_extract_string(payload: object) -> None:
    paths = ("item_id", "transcript", "delta.duration_ms", "item.id", "item.type", "item.role")
    parsed = tables._parsed(*paths, source="?::VARCHAR")
    text = json.dumps(payload)
    con = duckdb.connect()
    try:
        struct = con.execute(f"SELECT {parsed}", [text]).fetchone()
        assert struct is not None
        for path in paths:
            expected = con.execute("SELECT json_extract_string(?, ?)", [text, f"$.{path}"])
            value = struct[0]
            for part in path.split("."):
                value = None if value is None else value[part]
            assert value == expected.fetchone()[0], path  # type: ignore[index]
    finally:
        con.close()
