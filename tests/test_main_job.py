"""The README's main job, end to end: `voxledger demo` on a real broker, then what users ask.

The demo places the scripted library of calls through the official openai SDK, the proxy and
the simulator; processors and sink land them in the warehouse. Then `voxledger reconcile`
must account for every frame, and SQL must show what the scenarios are known to contain.
Last, a security scan: nothing planted in the calls may leave the raw topic, in any topic,
file, log, or page of the dashboard as each role sees it in a real browser.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import (
    PAGE_READY,
    browser_wait,
    by_text,
    chromium,
    free_port,
    log_in,
    open_page,
    page_shown,
    received_over_websocket,
    rendered_text,
    settled,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec

from voxledger.config import Settings
from voxledger.dashboard.auth import ACCESS
from voxledger.demo import DEMO_LOGINS, scripted_outcomes
from voxledger.processors.cost import cost_log
from voxledger.processors.policy import check_log, load_policy
from voxledger.warehouse.db import connect
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
# The calls that carry what is planted: the caller's PII, and the MCP server's token.
PLANTED_SCENARIOS = ("pii_heavy_en", "mcp_tools_en")
DEMO_DEADLINE_S = 900.0  # until the demo serves: every call placed, landed and judged


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


class ServedDemo:
    """`voxledger demo` as users run it: it places the calls, then serves the dashboard until
    stopped (SIGTERM, as Ctrl-C)."""

    def __init__(self, ports: dict[str, str], output: Path) -> None:
        self.output = output
        with output.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "voxledger",
                    "demo",
                    "--sessions",
                    str(SESSIONS),
                    *(arg for name, port in ports.items() for arg in (f"--{name}-port", port)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # its own process group, so a hang can be cleaned up
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_until_serving(self) -> str:
        """Its output once it serves the dashboard (every session landed and judged)."""
        deadline = time.monotonic() + DEMO_DEADLINE_S
        while "VoxLedger is running." not in self.text():
            assert self.process.poll() is None, f"demo exited early:\n{self.text()[-4000:]}"
            assert time.monotonic() < deadline, f"demo not serving:\n{self.text()[-4000:]}"
            time.sleep(0.5)  # a retry interval, not synchronisation: the condition is polled
        return self.text()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the demo's group: what it started
            return self.process.wait()


@pytest.mark.timeout(1800)  # the whole library of calls through the whole pipeline
def test_demo_lands_every_session_and_reconciles(
    pipeline_settings: Settings, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VOXLEDGER_PROCESSORS__METRICS_PORT", str(free_port()))
    monkeypatch.setenv("VOXLEDGER_PROCESSORS__PSEUDONYM_SECRET", "main job test")
    ports = {name: str(free_port()) for name in ("proxy", "simulator", "dashboard")}
    demo = ServedDemo(ports, tmp_path / "demo.out")
    try:
        output = demo.wait_until_serving()
        assert f"warehouse: {SESSIONS} sessions" in output
        assert f"scripted calls: {SESSIONS} of {SESSIONS} got the verdict" in output
        served_demo_checks(pipeline_settings, f"http://127.0.0.1:{ports['dashboard']}", tmp_path)
    finally:
        code = demo.stop()
    assert code == 0, demo.text()[-3000:]
    assert "stopped every process the demo started" in demo.text()

    # Security scan: nothing planted reached a topic but raw, a Parquet file, the DuckDB file
    # or a log (the dashboard's, and its access audit, included).
    hits = planted_in_topics(pipeline_settings) + planted_in_files(pipeline_settings.data_dir)
    assert hits == []
    # ...while the raw topic does hold the callers' PII, so the scan looks for the right text.
    raw = b"\n".join(read_to_end(pipeline_settings, pipeline_settings.topics.raw.name))
    assert {"maria garcia", "1420 mission"} <= set(_planted(raw.decode(errors="replace")))


def served_demo_checks(pipeline_settings: Settings, dashboard: str, tmp_path: Path) -> None:
    """What users ask of the running demo: reconcile, SQL, the dashboard."""
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

    # A verdict does not depend on redaction: what the agents decided from the redacted topic
    # is what `policy check` decides offline from the raw events, rule by rule; and each
    # scripted call got the outcome its scenario declares. `cost` agrees on the redacted ones.
    redacted, raw = tmp_path / "redacted.jsonl", tmp_path / "raw.jsonl"
    topics = pipeline_settings.topics
    redacted.write_bytes(b"\n".join(read_to_end(pipeline_settings, topics.redacted.name)))
    raw.write_bytes(b"\n".join(read_to_end(pipeline_settings, topics.raw.name)))
    offline = {s.verdict.session_id: s for s in check_log(raw, load_policy()).sessions}
    verdicts = {v["session_id"]: v for v in sql("SELECT session_id, verdict FROM verdicts")}
    rules = sql("SELECT session_id, list(DISTINCT rule_id) AS rules FROM findings GROUP BY 1")
    rules_by_session = {r["session_id"]: set(r["rules"]) for r in rules}
    assert set(offline) == set(verdicts)
    for session_id, result in offline.items():
        assert verdicts[session_id]["verdict"] == result.verdict.verdict, session_id
        expected = {f.rule_id for f in result.findings}
        assert rules_by_session.get(session_id, set()) == expected, session_id
    with connect(pipeline_settings, read_only=True) as db:
        scripted = scripted_outcomes(db)
    assert len(scripted) == SESSIONS
    assert [s for s in scripted if s.got != s.declared] == []
    costs = {
        r["session_id"]: r["cost_usd"] for r in sql("SELECT session_id, cost_usd FROM sessions")
    }
    assert (
        Decimal(str(sum(Decimal(str(c)) for c in costs.values()))) == cost_log(redacted).total_usd
    )

    # Security scan of the dashboard: nothing planted reaches a browser. Each role logs in
    # and opens every page it may, the planted calls' transcripts, and SQL over their turns
    # and events; the scan reads each page's DOM and every websocket message it received
    # (the result grids paint their cells on a canvas: in no DOM, but in those messages).
    planted = sessions_of(PLANTED_SCENARIOS)
    with chromium(tmp_path / "chromium", network_log=True) as browser:
        views = {
            f"{role}: {view}": seen
            for role in ACCESS
            for view, seen in views_of(browser, dashboard, role, planted).items()
        }
    assert {f"{role}: {page}" for role in ACCESS for page in ACCESS[role]} <= set(views)
    hits = [
        f"{view} ({part}): {needle}"
        for view, seen in views.items()
        for part, text in seen.items()
        for needle in _planted(text)
    ]
    assert hits == []
    # ...and the scan read what the planted calls became: the PII call's redacted transcript
    # (the caller's name as a pseudonym) in the page, and in the SQL results received; the
    # MCP call's session.update, its token redacted, in the SQL results over events.
    pii = planted["pii_heavy_en"]
    for role in ("compliance", "admin"):
        assert "my name is <PERSON_" in views[f"{role}: transcript {pii}"]["page"]
    for role in ("engineer", "admin"):
        for name, (_, result_holds) in QUERIES.items():
            assert result_holds in views[f"{role}: sql over {name}"]["received"]


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


def sessions_of(scenarios: tuple[str, ...]) -> dict[str, str]:
    """The session id of each scenario's call, from the query of its opened marker."""
    rows = sql(
        "SELECT payload->'query'->>'scenario' AS scenario, session_id FROM events"
        " WHERE type = 'voxledger.session.opened'"
    )
    found = {r["scenario"]: r["session_id"] for r in rows if r["scenario"] in scenarios}
    assert set(found) == set(scenarios), rows
    return found


# SQL the engineer (and admin) run over the planted calls, one row per call, and what its
# result must hold: the PII call's redacted transcript, the MCP call's session.update with
# its token redacted.
QUERIES = {
    "turns": (
        "SELECT session_id, string_agg(role || ': ' || coalesce(text, ''), ' | '"
        " ORDER BY turn_index) AS transcript FROM turns WHERE session_id IN ({ids}) GROUP BY 1",
        "my name is <PERSON_",
    ),
    "events": (
        "SELECT session_id, string_agg(type || ' ' || payload, ' ' ORDER BY seq) AS payloads"
        " FROM events WHERE session_id IN ({ids}) AND type NOT LIKE '%audio%' GROUP BY 1",
        '"authorization":"[secret]"',
    ),
}


def views_of(
    browser: WebDriver, url: str, role: str, planted: dict[str, str]
) -> dict[str, dict[str, str]]:
    """What `role` is shown of each page it may open, of the planted calls' transcripts and
    of SQL over them."""
    password = DEMO_LOGINS[role]
    log_in(browser, url, role, password)
    views = {}
    for page in ACCESS[role]:
        open_page(browser, page)
        assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")
        views[page] = seen(browser)
    # Each transcript and query in a page of its own (a new app session, by its deep link),
    # so what is waited for cannot be the previous one's.
    if "transcript" in ACCESS[role]:
        for session_id in planted.values():
            log_in(browser, f"{url}/transcript", role, password)
            page_shown(browser, "transcript")
            show_transcript(browser, session_id)
            views[f"transcript {session_id}"] = seen(browser)
    if "sql" in ACCESS[role]:
        ids = ", ".join(f"'{s}'" for s in planted.values())
        for name, (query, result_holds) in QUERIES.items():
            log_in(browser, f"{url}/sql", role, password)
            page_shown(browser, "sql")
            run_query(browser, query.format(ids=ids), len(planted))
            views[f"sql over {name}"] = seen(browser, until=result_holds)
    # What arrived after the last page was read.
    views["(late messages)"] = {"received": received_over_websocket(browser)}
    return views


def seen(browser: WebDriver, until: str | None = None) -> dict[str, str]:
    """The page (DOM and visible text) and what it received over the websocket."""
    received = received_over_websocket(browser, until)
    return {"page": rendered_text(browser), "received": received}


def show_transcript(browser: WebDriver, session_id: str) -> None:
    """Open one session's transcript by its id; return once its turns are shown."""
    search = browser.find_element(
        By.CSS_SELECTOR, f"input[aria-label='{PAGE_READY['transcript']}']"
    )
    search.send_keys(session_id, Keys.ENTER)
    browser_wait(browser).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid='stChatMessage']"))
    )
    settled(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")


def run_query(browser: WebDriver, query: str, rows: int) -> None:
    """Run one query on the SQL page; return once its result is shown."""
    box = browser.find_element(By.CSS_SELECTOR, "textarea[aria-label='Query']")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE, query)
    browser.find_element(*by_text(PAGE_READY["sql"])).click()
    browser_wait(browser).until(ec.presence_of_element_located(by_text(f"{rows} row(s)")))
    settled(browser)
