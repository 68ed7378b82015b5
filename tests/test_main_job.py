"""The README's main job, end to end: `voxledger demo` on a real broker, then what users ask.

The demo places the scripted library of calls through the official openai SDK, the proxy and
the simulator; processors and sink land them in the warehouse. Then `voxledger reconcile`
must account for every frame, and SQL must show what the scenarios are known to contain.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import free_port

from voxledger.config import Settings
from voxledger.processors.cost import cost_log
from voxledger.processors.policy import check_log, load_policy
from voxledger.warehouse.reconcile import read_to_end

REPO = Path(__file__).resolve().parent.parent
SESSIONS = 15  # the 14 scenarios of the library, then the EU tenant's call
# What must never leave the raw topic: the callers' PII (pii_heavy_en), the MCP server's
# bearer token (mcp_tools_en) and the client keys the calls presented.
PLANTED = [
    "maria garcia",
    "4155550199",
    "415-555-0199",
    "john.smith",
    "1420 mission",
    "4532111122223333",
    "4532 1111 2222 3333",
    "mcp-secret-123",
    "vx-demo-us",
    "vx-demo-eu",
]


def voxledger(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxledger", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def sql(query: str) -> list[dict]:
    done = voxledger("sql", query, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.timeout(1500)  # the whole library of calls through the whole pipeline
def test_demo_lands_every_session_and_reconciles(
    pipeline_settings: Settings, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VOXLEDGER_PROCESSORS__METRICS_PORT", str(free_port()))
    monkeypatch.setenv("VOXLEDGER_PROCESSORS__PSEUDONYM_SECRET", "main job test")
    ports = {name: str(free_port()) for name in ("proxy", "simulator", "dashboard")}
    demo = voxledger(
        "demo",
        "--sessions",
        str(SESSIONS),
        "--exit-when-done",
        *(arg for name, port in ports.items() for arg in (f"--{name}-port", port)),
        timeout=900,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert f"warehouse: {SESSIONS} sessions" in demo.stdout
    assert "stopped every process the demo started" in demo.stdout

    # Every frame the proxy relayed is in raw, redacted (or dead letters) and the events table.
    reconciled = voxledger("reconcile", timeout=300)
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert reconciled.stdout.strip().splitlines()[-1].startswith(f"OK: {SESSIONS} sessions")

    sessions = sql("SELECT tenant, region, upstream_host, verdict, eu_residency FROM sessions")
    assert len(sessions) == SESSIONS
    assert all(s["verdict"] in ("pass", "fail", "needs_review") for s in sessions)
    (eu,) = [s for s in sessions if s["tenant"] == "acme-eu"]
    assert eu["region"] == "eu" and eu["eu_residency"] == "violation"
    rules = {r["rule_id"] for r in sql("SELECT DISTINCT rule_id FROM findings")}
    assert {"ai_disclosure", "refund_limit", "eu_residency", "no_human_claim"} <= rules
    # Every response the API finished was priced; the session totals add up to the records.
    (totals,) = sql(
        "SELECT (SELECT count(*) FROM responses) AS responses,"
        " (SELECT count(*) FROM costs WHERE kind = 'response') AS costed,"
        " (SELECT sum(cost_usd) FROM costs) AS records_usd,"
        " (SELECT sum(cost_usd) FROM sessions) AS sessions_usd"
    )
    assert totals["responses"] == totals["costed"] > SESSIONS
    assert float(totals["records_usd"]) > 0
    assert abs(float(totals["records_usd"]) - float(totals["sessions_usd"])) < 1e-6
    # The long call overflowed its context window: the truncation was inferred end to end.
    (long_call,) = sql("SELECT count(*) AS n FROM responses WHERE truncation_inferred")
    assert long_call["n"] >= 1

    # The running agents agree with the offline commands on the same redacted envelopes:
    # every rule's outcome through the pipeline is what `policy check` and `cost` give.
    redacted = tmp_path / "redacted.jsonl"
    redacted.write_bytes(
        b"\n".join(read_to_end(pipeline_settings, pipeline_settings.topics.redacted.name))
    )
    offline = {s.verdict.session_id: s for s in check_log(redacted, load_policy()).sessions}
    verdicts = {v["session_id"]: v for v in sql("SELECT session_id, verdict FROM verdicts")}
    rules = sql("SELECT session_id, list(DISTINCT rule_id) AS rules FROM findings GROUP BY 1")
    rules_by_session = {r["session_id"]: set(r["rules"]) for r in rules}
    assert set(offline) == set(verdicts)
    for session_id, result in offline.items():
        assert verdicts[session_id]["verdict"] == result.verdict.verdict, session_id
        expected = {f.rule_id for f in result.findings}
        assert rules_by_session.get(session_id, set()) == expected, session_id
    costs = {
        r["session_id"]: r["cost_usd"] for r in sql("SELECT session_id, cost_usd FROM sessions")
    }
    assert (
        Decimal(str(sum(Decimal(str(c)) for c in costs.values()))) == cost_log(redacted).total_usd
    )

    # Security scan: nothing planted reached a topic but raw, a Parquet file, the DuckDB file
    # or a log.
    hits = planted_in_topics(pipeline_settings) + planted_in_files(pipeline_settings.data_dir)
    assert hits == []
    # ...while the raw topic does hold the callers' PII, so the scan looks for the right text.
    raw = b"\n".join(read_to_end(pipeline_settings, pipeline_settings.topics.raw.name))
    assert {"maria garcia", "1420 mission"} <= set(_planted(raw.decode(errors="replace")))


def _planted(text: str) -> list[str]:
    lowered = text.lower()
    return [needle for needle in PLANTED if needle in lowered]


def planted_in_topics(settings: Settings) -> list[str]:
    topics = settings.topics
    hits = []
    for topic in (topics.redacted, topics.findings, topics.costs, topics.deadletter):
        for value in read_to_end(settings, topic.name):
            hits += [f"{topic.name}: {n}" for n in _planted(value.decode(errors="replace"))]
    return hits


def planted_in_files(data_dir: Path) -> list[str]:
    hits = []
    for path in data_dir.rglob("*"):
        parts = path.relative_to(data_dir).parts
        # The spool buffers the raw topic; the simulator stands in for OpenAI itself.
        if not path.is_file() or "spool" in parts or parts[-1] == "simulator.log":
            continue
        if path.suffix == ".parquet":  # compressed: search the decoded rows
            text = json.dumps(pq.read_table(path).to_pylist(), default=str)
        else:
            text = path.read_bytes().decode(errors="replace")
        hits += [f"{path}: {n}" for n in _planted(text)]
    return hits
