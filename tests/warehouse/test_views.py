"""The public views answer with what the processors produced for recorded and simulated sessions."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from voxledger.config import Settings
from voxledger.envelope import Envelope
from voxledger.warehouse import db, tables


@pytest.fixture(scope="module")
def con(warehouse: Warehouse) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = db.connect(warehouse.settings)
    yield connection
    connection.close()


def rows(con: duckdb.DuckDBPyConnection, query: str, *params: Any) -> list[tuple[Any, ...]]:
    return con.execute(query, list(params)).fetchall()


def one(con: duckdb.DuckDBPyConnection, query: str, *params: Any) -> Any:
    found = rows(con, query, *params)
    assert len(found) == 1, found
    return found[0][0] if len(found[0]) == 1 else found[0]


def of_type(envelopes: list[Envelope], *types: str) -> list[Envelope]:
    return [e for e in envelopes if e.type in types]


# -- events -----------------------------------------------------------------------------------


Warehouse = Any  # the `warehouse` fixture of conftest.py: .settings, .produced
STEP = timedelta(milliseconds=10)  # conftest.py spaces a session's events 10 ms apart


def test_events_hold_every_redacted_envelope_once(con, warehouse: Warehouse) -> None:
    for session_id, envelopes in warehouse.produced.envelopes.items():
        stored = rows(con, "SELECT envelope_id FROM events WHERE session_id = ?", session_id)
        assert sorted(r[0] for r in stored) == sorted(e.envelope_id for e in envelopes)
    payload = one(con, "SELECT payload FROM events WHERE session_id = 'ga-support' AND seq = 0")
    assert json.loads(payload)["type"] == "session.update"
    assert one(con, "SELECT count(*) FROM events WHERE payload LIKE '%4471-2290%'") == 0


def test_events_carry_the_hive_date(con) -> None:
    # barge-in starts 23:59:59 UTC: its events straddle two date partitions.
    dates = rows(
        con, "SELECT DISTINCT date FROM events WHERE session_id = 'barge-in' ORDER BY date"
    )
    assert [str(d[0]) for d in dates] == ["2026-11-21", "2026-11-22"]


# -- turns ------------------------------------------------------------------------------------


def test_turns_of_the_ga_support_call(con) -> None:
    turns = rows(
        con,
        "SELECT turn_index, role, text, response_id FROM turns "
        "WHERE session_id = 'ga-support' ORDER BY turn_index",
    )
    assert [(t[0], t[1]) for t in turns] == [(1, "user"), (2, "assistant"), (3, "user")]
    assert turns[0][2] == "Hi, my internet has been down since this morning."
    assert turns[1][2] == "Sure, I can help with that. Could you tell me your order number?"
    assert turns[1][3] == "resp_CGa9v7"
    # The order number the caller typed is redacted to a pseudonym.
    assert turns[2][2].startswith("It's order <ACCOUNT_NUMBER_")
    assert "4471" not in turns[2][2]


def test_turns_with_beta_names_and_user_audio_timing(con) -> None:
    turns = rows(
        con,
        "SELECT role, text, audio_ms, ended_at - started_at FROM turns "
        "WHERE session_id = 'beta-booking' ORDER BY turn_index",
    )
    assert [(t[0], t[1]) for t in turns] == [
        ("user", "Hi, I'd like to book a table for Friday."),
        ("assistant", "Of course! For how many people, and what time?"),
        ("user", "Four people at 8pm."),
        ("assistant", "Booked: 4 people, Friday 8pm."),
    ]
    assert turns[0][2] == 2210 - 64  # speech_stopped.audio_end_ms − speech_started.audio_start_ms
    assert turns[0][3] == 2 * STEP  # speech_started → speech_stopped, two events apart


def test_turn_counts_match_the_transcripts(con, warehouse: Warehouse) -> None:
    for session_id, envelopes in warehouse.produced.envelopes.items():
        transcribed = of_type(envelopes, "conversation.item.input_audio_transcription.completed")
        spoken = of_type(
            envelopes,
            "response.output_audio_transcript.done",
            "response.audio_transcript.done",
            "response.output_text.done",
            "response.text.done",
        )
        user, assistant = one(
            con,
            "SELECT count(*) FILTER (WHERE role = 'user' AND audio_ms IS NOT NULL), "
            "count(*) FILTER (WHERE role = 'assistant') FROM turns WHERE session_id = ?",
            session_id,
        )
        assert (user, assistant) == (len(transcribed), len(spoken)), session_id


# -- responses, latency and costs ------------------------------------------------------------


def test_responses_match_response_done(con, warehouse: Warehouse) -> None:
    for session_id, envelopes in warehouse.produced.envelopes.items():
        done = {e.payload["response"]["id"]: e for e in of_type(envelopes, "response.done")}
        stored = rows(
            con,
            "SELECT response_id, status, input_tokens, output_tokens FROM responses "
            "WHERE session_id = ?",
            session_id,
        )
        assert {r[0] for r in stored} == set(done), session_id
        for response_id, status, input_tokens, output_tokens in stored:
            response = done[response_id].payload["response"]
            assert status == response["status"]
            assert input_tokens == response["usage"]["input_tokens"]
            assert output_tokens == response["usage"]["output_tokens"]
    assert one(con, "SELECT count(*) FROM responses WHERE session_id = 'mcp-tools'") == 4


def test_response_details(con) -> None:
    cached, model = one(
        con,
        "SELECT cached_tokens, model FROM responses WHERE response_id = 'resp_BkP4b2'",
    )
    assert (cached, model) == (128, "gpt-4o-realtime-preview-2024-12-17")
    statuses = rows(
        con,
        "SELECT status, status_reason, interrupted FROM responses "
        "WHERE session_id = 'barge-in' ORDER BY created_at",
    )
    assert statuses == [
        ("completed", None, False),
        ("cancelled", "turn_detected", True),
        ("cancelled", "turn_detected", True),
        ("completed", None, False),
    ]
    failed = one(con, "SELECT status, error_code FROM responses WHERE response_id = 'resp_E003'")
    assert failed == ("failed", "server_error")


def test_response_costs_equal_the_cost_records(con, warehouse: Warehouse) -> None:
    stored = {
        (r[0], r[1]): r[2]
        for r in rows(con, "SELECT session_id, response_id, cost_usd FROM responses")
    }
    expected = {
        (session_id, r["response_id"]): Decimal(r["cost_usd"])
        for session_id, records in warehouse.produced.costs.items()
        for r in records
        if r["kind"] == "response"
    }
    assert len(expected) == len(stored) == 22
    assert stored == expected


def _first_seq(envelopes: list[Envelope], response_id: str, *types: str) -> int | None:
    seqs = [
        e.seq for e in of_type(envelopes, *types) if e.payload.get("response_id") == response_id
    ]
    return min(seqs) if seqs else None


def test_latency_from_observed_times(con, warehouse: Warehouse) -> None:
    """Events are 10 ms apart by seq, so each latency is exactly 10 ms per event between."""
    checked = 0
    for session_id, envelopes in warehouse.produced.envelopes.items():
        for created in of_type(envelopes, "response.created"):
            response_id = created.payload["response"]["id"]
            audio = _first_seq(
                envelopes, response_id, "response.output_audio.delta", "response.audio.delta"
            )
            ttf_audio = one(
                con,
                "SELECT ttf_audio_ms FROM latency WHERE session_id = ? AND response_id = ?",
                session_id,
                response_id,
            )
            if audio is None:
                assert ttf_audio is None
            else:
                assert ttf_audio == pytest.approx((audio - created.seq) * 10.0)
                checked += 1
    assert checked >= 15
    stopped_to_audio = one(
        con,
        "SELECT speech_stopped_to_first_audio_ms FROM latency WHERE response_id = 'resp_CGa9v7'",
    )
    ga = warehouse.produced.envelopes["ga-support"]
    stopped = of_type(ga, "input_audio_buffer.speech_stopped")[0].seq
    audio = _first_seq(ga, "resp_CGa9v7", "response.output_audio.delta")
    assert audio is not None
    assert stopped_to_audio == pytest.approx((audio - stopped) * 10.0)
    # The greeting, sent before the caller spoke, has no speech_stopped to measure from.
    assert rows(
        con,
        "SELECT speech_stopped_to_first_audio_ms FROM latency l JOIN responses r "
        "USING (session_id, response_id) WHERE session_id = 'mcp-tools' ORDER BY r.created_at",
    )[0] == (None,)


def test_session_cost_is_the_sum_of_its_cost_records(con, warehouse: Warehouse) -> None:
    view_sums = dict(rows(con, "SELECT session_id, sum(cost_usd) FROM costs GROUP BY ALL"))
    session_costs = dict(rows(con, "SELECT session_id, cost_usd FROM sessions"))
    for session_id, records in warehouse.produced.costs.items():
        expected = sum(Decimal(r["cost_usd"]) for r in records if r["cost_usd"] is not None)
        summary = Decimal(warehouse.produced.summaries[session_id]["total_usd"])
        assert view_sums[session_id] == expected == session_costs[session_id] == summary


def test_a_replayed_cost_record_counts_once(con, warehouse: Warehouse) -> None:
    # build_warehouse wrote ga-support's cost records a second time, at later offsets.
    stored = one(con, "SELECT count(*) FROM _base_costs WHERE session_id = 'ga-support'")
    records = len(warehouse.produced.costs["ga-support"])
    assert stored == 2 * records
    assert one(con, "SELECT count(*) FROM costs WHERE session_id = 'ga-support'") == records


def test_cost_modalities_add_up_to_each_record(con) -> None:
    mismatched = rows(
        con,
        "SELECT c.record_id FROM costs c JOIN cost_modalities m USING (record_id) "
        "GROUP BY c.record_id, c.cost_usd HAVING sum(m.cost_usd) <> c.cost_usd",
    )
    assert mismatched == []
    assert one(con, "SELECT count(DISTINCT modality) FROM cost_modalities") >= 3


def test_session_costs_and_unplayed_audio(con, warehouse: Warehouse) -> None:
    for session_id, summary in warehouse.produced.summaries.items():
        total, unplayed_s = one(
            con,
            "SELECT total_usd, unplayed_audio_s FROM session_costs WHERE session_id = ?",
            session_id,
        )
        assert total == Decimal(summary["total_usd"])
        expected = sum(Decimal(u["unplayed_seconds"]) for u in summary["unplayed_audio"])
        assert unplayed_s == expected
    # The caller cut off two replies in barge-in: both truncated items are accounted for.
    truncated = one(
        con,
        "SELECT json_array_length(unplayed_audio) FROM session_costs WHERE session_id = 'barge-in'",
    )
    assert truncated == 2


def test_transcriptions_with_their_cost(con, warehouse: Warehouse) -> None:
    for session_id, records in warehouse.produced.costs.items():
        for record in (r for r in records if r["kind"] == "transcription"):
            model, cost, text = one(
                con,
                "SELECT model, cost_usd, text FROM transcriptions "
                "WHERE session_id = ? AND item_id = ?",
                session_id,
                record["item_id"],
            )
            assert (model, cost) == (record["model"], Decimal(record["cost_usd"]))
            assert text
    ga = one(
        con, "SELECT model, usage_type, tokens FROM transcriptions WHERE item_id = 'item_CGa9u1'"
    )
    assert ga == ("gpt-4o-mini-transcribe", "tokens", 31)


# -- tool calls, findings, verdicts, errors ---------------------------------------------------


def test_tool_calls_function_and_mcp(con) -> None:
    calls = rows(
        con,
        "SELECT session_id, kind, name, server_label, approval, outcome, duration_ms, arguments "
        "FROM tool_calls ORDER BY session_id, seq",
    )
    by_name = {c[2]: c for c in calls}
    assert by_name["issue_refund"][1:7] == (
        "function",
        "issue_refund",
        None,
        None,
        "output_returned",
        30.0,
    )
    assert by_name["charge_card"][1:6] == ("mcp", "charge_card", "billing", "denied", "denied")
    assert by_name["get_order_status"][4:6] == ("not_required", "completed")
    assert by_name["update_delivery_address"][4:6] == ("not_required", "failed")
    assert by_name["lookup_order"][5] == "no_output"
    # Arguments are the redacted ones: no order number or street address survives.
    for call in calls:
        assert "5518" not in call[7] and "Main Street" not in call[7] and "4471" not in call[7]


def test_findings_and_verdicts_match_the_policy(con, warehouse: Warehouse) -> None:
    tenants = dict(rows(con, "SELECT session_id, tenant FROM sessions"))
    for session_id, findings in warehouse.produced.findings.items():
        stored = rows(
            con, "SELECT finding_id, rule_id, tenant FROM findings WHERE session_id = ?", session_id
        )
        assert sorted(r[0] for r in stored) == sorted({f["finding_id"] for f in findings})
        assert {r[2] for r in stored} <= {tenants[session_id]}
        verdict = warehouse.produced.verdicts[session_id]
        assert one(
            con, "SELECT verdict, deciding_rules FROM verdicts WHERE session_id = ?", session_id
        ) == (verdict["verdict"], verdict["deciding_rules"])


def test_errors_of_every_kind(con) -> None:
    kinds = rows(con, "SELECT session_id, kind, code FROM errors ORDER BY session_id, kind, code")
    assert ("edge-cases", "error_event", "invalid_value") in kinds
    assert ("edge-cases", "failed_response", "server_error") in kinds
    assert ("content-filter", "incomplete_response", "content_filter") in kinds
    assert kinds.count(("barge-in", "cancelled_response", "turn_detected")) == 2
    assert ("ga-support", "dead_letter", "cost") in kinds


# -- sessions ---------------------------------------------------------------------------------


def test_sessions_aggregate_everything(con, warehouse: Warehouse) -> None:
    found = {
        r[0]: r[1:]
        for r in rows(
            con,
            "SELECT session_id, tenant, region, user_turns, assistant_turns, responses, "
            "interruptions, tool_calls, verdict, eu_residency, date FROM sessions",
        )
    }
    assert set(found) == set(warehouse.produced.envelopes)
    assert found["ga-support"][:8] == ("acme", "eu", 2, 1, 2, 0, 1, "fail")
    assert found["barge-in"][4:6] == (4, 2)  # 4 responses, 2 cut off by the caller
    assert found["mcp-tools"][6] == 2  # two MCP calls
    for session_id, envelopes in warehouse.produced.envelopes.items():
        transcripts = of_type(envelopes, "conversation.item.input_audio_transcription.completed")
        assert found[session_id][2] >= len(transcripts), session_id
    assert {s: f[8] for s, f in found.items()} == {
        "ga-support": "ok",  # eu, relayed to eu.api.openai.com
        "eu-wrong-host": "violation",  # eu, relayed to api.openai.com
        "beta-booking": "not_applicable",
        "mcp-tools": "not_applicable",
        "barge-in": "not_applicable",
        "content-filter": "not_applicable",
        "edge-cases": "not_applicable",
    }
    assert str(found["barge-in"][9]) == "2026-11-21"
    for session_id, verdict in warehouse.produced.verdicts.items():
        assert found[session_id][7] == verdict["verdict"]


def test_filter_other_views_through_sessions(con) -> None:
    bistro = rows(
        con,
        "SELECT DISTINCT t.session_id FROM turns t JOIN sessions s USING (session_id) "
        "WHERE s.tenant = 'bistro' ORDER BY 1",
    )
    assert bistro == [("beta-booking",), ("content-filter",), ("edge-cases",)]


# -- empty and growing warehouses -------------------------------------------------------------


def test_an_empty_warehouse_gives_empty_views(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    con = db.connect(settings)
    try:
        for view in tables.VIEWS:
            assert rows(con, f"SELECT count(*) FROM {view.name}") == [(0,)], view.name
            described = [r[0] for r in rows(con, f"DESCRIBE {view.name}")]
            assert described == [c.name for c in view.columns]
    finally:
        con.close()
    assert db.database_path(settings) == tmp_path / "warehouse.duckdb"
    assert db.warehouse_root(settings) == str((tmp_path / "warehouse").resolve())


Writer = Callable[[Path, str, int], int]


def test_new_files_are_visible_without_a_refresh(tmp_path: Path, write_copy: Writer) -> None:
    settings = Settings(data_dir=tmp_path)
    root = tmp_path / "warehouse"
    next_offset = write_copy(root, "first", 0)
    con = db.connect(settings)
    try:
        assert one(con, "SELECT count(*) FROM sessions") == 1
        write_copy(root, "second", next_offset)
        # Same connection, no refresh: the glob sees the new file.
        assert rows(con, "SELECT session_id FROM sessions ORDER BY 1") == [
            ("first",),
            ("second",),
        ]
        assert one(con, "SELECT count(*) FROM costs") == 0  # still no cost files
    finally:
        con.close()


def test_a_table_getting_its_first_file_refreshes_the_views(
    tmp_path: Path, write_copy: Writer
) -> None:
    settings = Settings(data_dir=tmp_path)
    db.connect(settings).close()  # views built while every table is empty
    write_copy(tmp_path / "warehouse", "arrived", 0)
    con = db.connect(settings)
    try:
        assert rows(con, "SELECT session_id FROM sessions") == [("arrived",)]
    finally:
        con.close()


def test_readers_in_parallel_with_a_stale_file_get_fresh_views(
    tmp_path: Path, write_copy: Writer
) -> None:
    """A reader holding the file keeps a refresh from writing it: the next reader gets its
    own TEMP views, which see the new table, and neither fails."""
    settings = Settings(data_dir=tmp_path)
    holder = db.connect(settings)  # read-only, views over an empty warehouse
    try:
        write_copy(tmp_path / "warehouse", "meanwhile", 0)
        reader = db.connect(settings)
        try:
            assert rows(reader, "SELECT session_id FROM sessions") == [("meanwhile",)]
            assert rows(holder, "SELECT count(*) FROM sessions") == [(0,)]  # its old views
        finally:
            reader.close()
    finally:
        holder.close()


def test_the_database_file_is_read_only_for_readers(warehouse: Warehouse) -> None:
    con = db.connect(warehouse.settings)
    try:
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE intruder AS SELECT 1")
    finally:
        con.close()


# -- object storage ---------------------------------------------------------------------------


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's real S3-compatible server on a free port, with one bucket."""
    import boto3
    from helpers import free_port
    from moto.server import ThreadedMotoServer

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="views")
        yield endpoint
    finally:
        server.stop()


def test_views_over_object_storage(
    con, warehouse: Warehouse, s3_endpoint: str, tmp_path: Path
) -> None:
    """The same Parquet in a bucket: pyarrow datasets stand in for httpfs, same answers."""
    import pyarrow.fs as pafs

    settings = Settings(
        data_dir=tmp_path,
        warehouse={"url": "s3://views/wh", "s3_endpoint": s3_endpoint, "s3_region": "us-east-1"},
    )
    remote = pafs.S3FileSystem(
        endpoint_override=s3_endpoint.removeprefix("http://"), scheme="http", region="us-east-1"
    )
    empty = db.connect(settings)  # nothing uploaded yet: empty views, not errors
    try:
        assert rows(empty, "SELECT count(*) FROM sessions") == [(0,)]
    finally:
        empty.close()
    local_root = db.warehouse_root(warehouse.settings)
    pafs.copy_files(local_root, "views/wh", destination_filesystem=remote)
    s3 = db.connect(settings)
    try:
        query = "SELECT session_id, cost_usd, eu_residency, user_turns FROM sessions ORDER BY 1"
        assert rows(s3, query) == rows(con, query)
        query = "SELECT count(*), sum(cost_usd) FROM costs"
        assert rows(s3, query) == rows(con, query)
        assert rows(s3, "SELECT DISTINCT date FROM events ORDER BY 1") == rows(
            con, "SELECT DISTINCT date FROM events ORDER BY 1"
        )
    finally:
        s3.close()
    assert not db.database_path(settings).exists()  # no DuckDB file for a bucket


def test_another_process_holding_the_file_does_not_block_readers(
    tmp_path: Path, write_copy: Writer
) -> None:
    """A dashboard-like process keeps the file open read-only; a table then gets its first
    file; a reader in this process still answers (TEMP views), and no one waits."""
    import subprocess
    import sys

    settings = Settings(data_dir=tmp_path)
    db.connect(settings).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, duckdb; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(c.execute('SELECT count(*) FROM sessions').fetchall(), flush=True); "
            "sys.stdin.read()",
            str(db.database_path(settings)),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "[(0,)]"  # the holder is connected
        write_copy(tmp_path / "warehouse", "while-held", 0)
        reader = db.connect(settings)
        try:
            assert rows(reader, "SELECT session_id FROM sessions") == [("while-held",)]
        finally:
            reader.close()
    finally:
        holder.communicate("", timeout=30)
    # Once the holder is gone, the next reader brings the file itself up to date.
    db.connect(settings).close()
    plain = duckdb.connect(str(db.database_path(settings)), read_only=True)
    try:
        assert rows(plain, "SELECT session_id FROM sessions") == [("while-held",)]
    finally:
        plain.close()
