"""The main job: the whole pipeline on the embedded default, driven by scripted calls.

It runs each role as its own `voxledger` process, as production does: broker, simulator,
proxy, processors and sink start, the scripted calls go through the official openai SDK and
the proxy, and once the warehouse has every session the dashboard serves it. Ctrl-C stops
every process it started.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from voxledger.broker import running_broker, start_broker, stop_broker
from voxledger.config import Settings
from voxledger.errors import VoxLedgerError
from voxledger.kafka import client_config
from voxledger.topics import ensure_topics

if TYPE_CHECKING:
    import duckdb

    from voxledger.ingest.simulator.scenarios import Outcome

READY_TIMEOUT_S = 60.0
CATCH_UP_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 30.0
# The scripted call of an EU tenant whose traffic does not reach eu.api.openai.com.
EU_SCENARIO = "eu_wrong_host_en"
# The demo users of examples/voxledger.toml; a login is printed only if the config agrees.
DEMO_LOGINS = {
    "finance": "finance-demo",
    "compliance": "compliance-demo",
    "engineer": "engineer-demo",
    "admin": "admin-demo",
}


@dataclass(frozen=True)
class Ports:
    simulator: int = 8765
    proxy: int = 8080
    dashboard: int = 8501


@dataclass
class Stack:
    """The `voxledger` processes the demo started, each logging to a file of its own."""

    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    redacted: int = 0  # redacted envelopes the processors produced: what the sink must land
    # This run's calls are what landed since: the warehouse keeps earlier runs beside them.
    since: datetime = field(default_factory=lambda: datetime.now(UTC))

    def start(self, name: str, *args: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "voxledger", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def check(self, name: str) -> None:
        code = self.processes[name].poll()
        if code is not None:
            raise VoxLedgerError(f"{name} exited with code {code}; see {self.log_dir / name}.log")

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_demo(settings: Settings, *, sessions: int, serve: bool, ports: Ports | None = None) -> None:
    """Run the pipeline, place `sessions` scripted calls, print what landed; serve if asked."""
    ports = ports or Ports()
    stack = Stack(settings.data_dir / "logs")
    started_broker = _ensure_broker(settings)
    try:
        for port in (ports.simulator, ports.proxy, ports.dashboard):
            _check_port_free(port)
        _start_pipeline(stack, ports)
        _place_calls(stack, sessions, ports)
        _report(settings, stack)
        _wait_for_warehouse(settings, stack)
        if serve:
            _serve_dashboard(settings, stack, ports)
            _wait_for_interrupt()
    finally:
        click.echo("stopping…")
        stack.stop_all()
        if started_broker:
            stop_broker(settings)
        click.echo("stopped every process the demo started")


def _ensure_broker(settings: Settings) -> bool:
    if settings.bootstrap_servers is not None or running_broker(settings) is not None:
        ensure_topics(settings)
        return False
    state, _ = start_broker(settings)
    click.echo(f"broker: embedded tansu at {state.bootstrap_servers} (pid {state.pid})")
    return True


def _start_pipeline(stack: Stack, ports: Ports) -> None:
    stack.start("simulator", "simulate-upstream", "--port", str(ports.simulator), "--fast")
    _wait_for_port(stack, "simulator", ports.simulator)
    upstream = f"ws://127.0.0.1:{ports.simulator}/v1"
    stack.start("proxy", "proxy", "--port", str(ports.proxy), "--upstream-url", upstream)
    _wait_for_port(stack, "proxy", ports.proxy)
    stack.start("processors", "processors")
    stack.start("sink", "sink")
    click.echo(
        f"simulator {upstream} · proxy ws://127.0.0.1:{ports.proxy}/v1 · processors · sink up"
    )


def _place_calls(stack: Stack, sessions: int, ports: Ports) -> None:
    """Scripted calls through the proxy: the US tenant's library, then one EU call."""
    target = f"ws://127.0.0.1:{ports.proxy}/v1"
    common = ["loadgen", "--target", target, "--duration", "0", "--concurrency", "4", "--fast"]
    us = subprocess.run(
        [
            sys.executable,
            "-m",
            "voxledger",
            *common,
            "--sessions",
            str(max(1, sessions - 1)),
            "--api-key",
            "vx-demo-us",
        ]
    )
    eu = subprocess.run(
        [
            sys.executable,
            "-m",
            "voxledger",
            *common,
            "--sessions",
            "1",
            "--api-key",
            "vx-demo-eu",
            "--scenario",
            EU_SCENARIO,
        ]
    )
    for name in stack.processes:
        stack.check(name)
    if us.returncode or eu.returncode:
        click.echo("some scripted calls failed; see the load generator's summary above")


def _report(settings: Settings, stack: Stack) -> None:
    """Wait until the processors caught up with the raw topic, then print each topic's count."""
    topics = settings.topics
    names = [
        topics.raw.name,
        topics.redacted.name,
        topics.findings.name,
        topics.costs.name,
        topics.deadletter.name,
    ]
    counts = TopicCounts(settings, names)
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    with click.progressbar(length=1, label="processing") as bar:
        while time.monotonic() < deadline:
            stack.check("processors")
            counts.poll()
            raw = counts[topics.raw.name]
            done = counts[topics.redacted.name] + counts[topics.deadletter.name]
            bar.length = max(raw, 1)
            bar.update(done - bar.pos)
            if raw and done >= raw:
                break
    counts.close()
    click.echo("\nwhat landed:")
    for name, count in counts.items():
        click.echo(f"  {name}: {count} messages")
    stack.redacted = counts[topics.redacted.name]


def _wait_for_warehouse(settings: Settings, stack: Stack) -> None:
    """Wait until the sink landed every redacted envelope and every session has its verdict."""
    import duckdb

    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    events = 0
    with click.progressbar(length=max(stack.redacted, 1), label="warehouse ") as bar:
        while True:
            stack.check("sink")
            try:
                events, open_sessions = _landed(settings, stack.since)
            except duckdb.IOException as exc:
                if "No such file" not in str(exc):
                    raise
                open_sessions = 1  # the sink replaced a file as we read it: poll again
            bar.update(min(events, bar.length) - bar.pos)
            if events >= stack.redacted and not open_sessions:
                break
            if time.monotonic() > deadline:
                raise VoxLedgerError(
                    f"the warehouse has {events} of {stack.redacted} events after "
                    f"{CATCH_UP_TIMEOUT_S:.0f} s; see {stack.log_dir}/sink.log"
                )
            time.sleep(0.5)
    _summarise(settings, stack.since)


def _landed(settings: Settings, since: datetime) -> tuple[int, int]:
    """(events of this run in the warehouse, this run's sessions still without a verdict)."""
    from voxledger.warehouse.db import connect

    with connect(settings, read_only=True) as db:
        return db.execute(
            "SELECT (SELECT count(*) FROM events WHERE observed_at >= $since),"
            " (SELECT count(*) FROM sessions WHERE started_at >= $since AND verdict IS NULL)",
            {"since": since},
        ).fetchone()


def _summarise(settings: Settings, since: datetime) -> None:
    """What a user would ask first: how many calls, how did they do, what did they cost."""
    from voxledger.warehouse.db import connect

    with connect(settings, read_only=True) as db:
        run = "WITH run AS (SELECT * FROM sessions WHERE started_at >= $since) "
        sessions, passed, failed, review, spend = db.execute(
            run + "SELECT count(*), count(*) FILTER (verdict = 'pass'),"
            " count(*) FILTER (verdict = 'fail'), count(*) FILTER (verdict = 'needs_review'),"
            " coalesce(sum(cost_usd), 0) FROM run",
            {"since": since},
        ).fetchone()
        rules = db.execute(
            run + "SELECT rule_id, count(*) FROM findings"
            " WHERE session_id IN (SELECT session_id FROM run)"
            " GROUP BY rule_id ORDER BY 2 DESC, 1",
            {"since": since},
        ).fetchall()
        scripted = scripted_outcomes(db, since)
    click.echo(
        f"\nwarehouse: {sessions} sessions · {passed} pass, {failed} fail, {review} to review"
        f" · spend ${spend:,.4f}"
    )
    if rules:
        click.echo("findings: " + ", ".join(f"{rule} {count}" for rule, count in rules))
    wrong = [s for s in scripted if s.got != s.declared]
    click.echo(
        f"scripted calls: {len(scripted) - len(wrong)} of {len(scripted)} got the verdict and"
        " findings their script declares"
    )
    for s in wrong:
        click.echo(
            f"  {s.scenario} ({s.session_id}): {s.got.verdict} {s.got.findings},"
            f" declared {s.declared.verdict} {s.declared.findings}"
        )
    click.echo('try: voxledger sql "SELECT * FROM sessions LIMIT 5"')


@dataclass(frozen=True)
class ScriptedOutcome:
    session_id: str
    scenario: str
    got: Outcome  # what the pipeline decided
    declared: Outcome  # what the scenario's `expect` says, for the tenant's region


def scripted_outcomes(
    db: duckdb.DuckDBPyConnection, since: datetime | None = None
) -> list[ScriptedOutcome]:
    """Each warehouse session a shipped scenario placed (since `since`, when given), beside
    the outcome it declares."""
    from voxledger.ingest.simulator.scenarios import Outcome, load_scenario, scenario_names

    rows = db.execute(
        "SELECT s.session_id, o.payload->'query'->>'scenario', s.region, s.verdict,"
        " (SELECT coalesce(list(f.rule_id ORDER BY f.rule_id), []) FROM findings f"
        "  WHERE f.session_id = s.session_id)"
        " FROM sessions s JOIN events o ON o.session_id = s.session_id"
        " AND o.type = 'voxledger.session.opened'"
        " WHERE s.started_at >= coalesce($since, '-infinity'::TIMESTAMPTZ) ORDER BY 2, 1",
        {"since": since},
    ).fetchall()
    shipped = set(scenario_names())
    return [
        ScriptedOutcome(
            session_id,
            scenario,
            Outcome(verdict=verdict, findings=list(findings)),
            expect.for_region(region),
        )
        for session_id, scenario, region, verdict, findings in rows
        if scenario in shipped and (expect := load_scenario(scenario).expect) and verdict
    ]


def _serve_dashboard(settings: Settings, stack: Stack, ports: Ports) -> None:
    stack.start("dashboard", "dashboard", "--port", str(ports.dashboard))
    _wait_for_port(stack, "dashboard", ports.dashboard)
    click.echo(
        f"\nVoxLedger is running.\n"
        f"  Dashboard: http://127.0.0.1:{ports.dashboard}\n"
        f"  Logins:    {_demo_logins(settings) or 'none configured (see [dashboard.users])'}\n"
        f'  Proxy:     AsyncOpenAI(api_key="vx-demo-us", '
        f'websocket_base_url="ws://127.0.0.1:{ports.proxy}/v1")\n'
        f"  Metrics:   http://127.0.0.1:{ports.proxy}/metrics\n"
        f"  Logs:      {stack.log_dir}\n"
        f"Press Ctrl-C to stop."
    )


def _demo_logins(settings: Settings) -> str:
    """`user / password` for each demo user whose configured hash matches the demo password."""
    import bcrypt

    users = settings.dashboard.users
    return " · ".join(
        f"{name} / {password}"
        for name, password in DEMO_LOGINS.items()
        if name in users and bcrypt.checkpw(password.encode(), users[name].password_bcrypt.encode())
    )


class TopicCounts(dict[str, int]):
    """Messages seen so far on each topic, read from the beginning without a consumer group."""

    def __init__(self, settings: Settings, names: list[str]) -> None:
        super().__init__(dict.fromkeys(names, 0))
        self.consumer = Consumer(client_config(settings, **{"group.id": "demo", "log_level": 0}))
        metadata = self.consumer.list_topics(timeout=10)
        self.consumer.assign(
            [
                TopicPartition(name, p, OFFSET_BEGINNING)
                for name in names
                for p in metadata.topics[name].partitions
            ]
        )

    def poll(self) -> None:
        for message in self.consumer.consume(num_messages=10_000, timeout=0.5):
            if not message.error():
                self[message.topic()] += 1

    def close(self) -> None:
        self.consumer.close()


def _check_port_free(port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise VoxLedgerError(f"port {port} is in use; the demo needs it free") from None


def _wait_for_port(stack: Stack, name: str, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        stack.check(name)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise VoxLedgerError(f"{name} did not listen on port {port} within {READY_TIMEOUT_S:.0f} s")


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
