"""Fault injection: the five faults of issue 10 against the whole pipeline, with a table.

Each scenario runs, on this machine and loopback only, a dedicated embedded broker (tansu, in
a temporary data dir, on a free port), the Realtime simulator, the proxy, the processors and
the sink as `python -m voxledger …` processes, drives `voxledger loadgen --fast` through the
proxy, injects one fault, recovers, waits until every session the proxy accepted has landed
(reconcile's own per-session checks, polled with a deadline, never sleeping as
synchronisation), and runs `voxledger reconcile`.

Faults: kill -9 the proxy; kill -9 its capture (publisher) process; stop the broker for 10 s;
kill -9 the processors and the sink mid-batch; fill the spool's quota with the broker down.
tests/chaos/ runs each scenario and asserts on what it returns; this script prints the table.

Run:  .venv/bin/python bench/chaos.py [--sessions 50] [--only proxy_kill,...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import orjson

if TYPE_CHECKING:
    from voxledger.warehouse.reconcile import Reconciliation, SessionTally

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "examples" / "voxledger.toml"
API_KEY = "vx-demo-us"
READY_S = 90.0
CATCH_UP_S = 240.0
STOP_S = 60.0
POLL_S = 0.2  # between checks of a condition polled with a deadline
BROKER_DOWN_S = 10.0  # the outage of the broker fault (the fault itself, not a sync wait)
ROLES = ("simulator", "proxy", "processors", "sink")
# Short calls of the library (a few hundred frames each, PII and policy rules included): the
# long-call scenario alone is ~24k frames, which would make each fault a matter of minutes.
SCENARIOS = (
    "support_disclosure_en",
    "refund_over_limit_en",
    "pii_heavy_en",
    "denies_ai_en",
    "barge_in_en",
)
# Reconcile's problems that no wait can fix: what capture lost or doubled, or a doubled row.
# The others (raw ≠ redacted, events ≠ redacted, a response.done without a cost row, a closed
# session without a verdict) mean a stage has not caught up with the session yet.
SETTLED_PROBLEMS = ("proxy relayed", "missing seqs", "duplicate seq", "duplicate event row")


# -- small helpers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy; raise naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        pause.wait(POLL_S)


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return children


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    return False


@contextlib.contextmanager
def patched_environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def not_landed(session: SessionTally) -> list[str]:
    """What reconcile reports of `session` that waiting for the processors and sink can fix."""
    return [p for p in session.problems() if not any(s in p for s in SETTLED_PROBLEMS)]


# -- one pipeline on a broker of its own ----------------------------------------------------------


@dataclass
class Loadgen:
    process: subprocess.Popen[str]
    log: Path

    def wait(self, timeout: float = CATCH_UP_S) -> str:
        self.process.wait(timeout)
        return self.log.read_text()


@dataclass
class AcceptedSessions:
    """Sessions the proxy accepted, by its own id, as its log tells."""

    opened: set[str]
    closed: dict[str, str | None]  # capture confirmed the end: the session id envelopes carry
    cut: set[str]  # open when a kill -9 took the proxy: no end will be logged


@dataclass
class Pipeline:
    """Broker, simulator, proxy, processors and sink as processes; a data dir of their own."""

    root: Path
    spool_max_bytes: int | None = None
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    cut: set[str] = field(default_factory=set)  # proxy ids of sessions a proxy kill cut

    def __post_init__(self) -> None:
        self.data_dir = self.root / "data"
        self.log_dir = self.root / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in ("broker", "simulator", "proxy", "metrics")}
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOXLEDGER_")}
        env.update(
            VOXLEDGER_CONFIG=str(EXAMPLE_CONFIG),
            VOXLEDGER_DATA_DIR=str(self.data_dir),
            VOXLEDGER_BOOTSTRAP_SERVERS=f"127.0.0.1:{self.ports['broker']}",
            VOXLEDGER_PROCESSORS__METRICS_PORT=str(self.ports["metrics"]),
            VOXLEDGER_PROCESSORS__PSEUDONYM_SECRET="chaos bench, not for production",
            TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS="",
        )
        if self.spool_max_bytes is not None:
            env["VOXLEDGER_PROXY__SPOOL_MAX_BYTES"] = str(self.spool_max_bytes)
        self.env = env

    # -- processes --------------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "voxledger", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            env=self.env,
        )

    def start_broker(self) -> None:
        done = self.cli("broker", "start", "--port", str(self.ports["broker"]), timeout=READY_S)
        if done.returncode:
            raise RuntimeError(f"broker start failed: {done.stdout}{done.stderr}")

    def stop_broker(self) -> None:
        self.cli("broker", "stop", timeout=STOP_S)

    def start(self, role: str) -> None:
        args = {
            "simulator": ["simulate-upstream", "--port", str(self.ports["simulator"]), "--fast"],
            "proxy": [
                "proxy",
                "--port",
                str(self.ports["proxy"]),
                "--upstream-url",
                f"ws://127.0.0.1:{self.ports['simulator']}/v1",
            ],
            "processors": ["processors"],
            "sink": ["sink"],
        }[role]
        with (self.log_dir / f"{role}.log").open("ab") as log:
            self.processes[role] = subprocess.Popen(
                [sys.executable, "-m", "voxledger", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=self.env,
            )
        if role in ("simulator", "proxy"):
            wait_for(lambda: self._listening(role), READY_S, f"the {role} to listen")

    def _listening(self, role: str) -> bool:
        code = self.processes[role].poll()
        if code is not None:
            raise RuntimeError(f"{role} exited with {code}: {self.log(role)[-2000:]}")
        return port_open(self.ports[role])

    def start_all(self) -> None:
        self.start_broker()
        for role in ROLES:
            self.start(role)

    def check_running(self) -> None:
        for role, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{role} exited with {process.returncode}: {self.log(role)[-2000:]}"
                )

    def log(self, role: str) -> str:
        path = self.log_dir / f"{role}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(STOP_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.stop_broker()

    def loadgen(self, sessions: int, concurrency: int, name: str = "loadgen") -> Loadgen:
        log = self.log_dir / f"{name}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "voxledger",
                    "loadgen",
                    "--fast",
                    "--duration",
                    "0",
                    "--concurrency",
                    str(concurrency),
                    "--sessions",
                    str(sessions),
                    "--target",
                    self.proxy_url,
                    "--api-key",
                    API_KEY,
                    *(arg for name in SCENARIOS for arg in ("--scenario", name)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=REPO,
                env=self.env,
            )
        return Loadgen(process, log)

    @property
    def proxy_url(self) -> str:
        return f"ws://127.0.0.1:{self.ports['proxy']}/v1"

    # -- what landed ------------------------------------------------------------------------------

    def settings(self) -> Any:
        from voxledger.config import load_settings

        with patched_environ(self.env):
            return load_settings()

    def raw(self) -> list[dict[str, Any]]:
        """Every raw envelope (session, seq, type, payload of markers, event id)."""
        from voxledger.warehouse.reconcile import read_to_end

        settings = self.settings()
        return [orjson.loads(v) for v in read_to_end(settings, settings.topics.raw.name)]

    def counts(self) -> dict[str, int]:
        """Messages per topic role, and rows in the events table."""
        from voxledger.demo import TopicCounts
        from voxledger.warehouse.db import connect

        settings = self.settings()
        topics = settings.topics
        roles = ("raw", "redacted", "deadletter", "costs")
        names = {r: getattr(topics, r).name for r in roles}
        counter = TopicCounts(settings, list(names.values()))
        try:
            last, stable = -1, 0
            while stable < 2:  # two empty polls in a row: the end of every partition
                counter.poll()
                total = sum(counter.values())
                stable = stable + 1 if total == last else 0
                last = total
        finally:
            counter.close()
        out = {role: counter[name] for role, name in names.items()}
        events = open_sessions = cost_rows = 0
        if (settings.data_dir / "warehouse").exists():
            with contextlib.suppress(Exception), connect(settings, read_only=True) as db:
                events, open_sessions, cost_rows = db.execute(
                    "SELECT (SELECT count(*) FROM events),"
                    " (SELECT count(*) FROM sessions WHERE verdict IS NULL),"
                    " (SELECT count(*) FROM costs)"
                ).fetchone()
        out["events"], out["unjudged"], out["cost_rows"] = events, open_sessions, cost_rows
        return out

    def events_rows(self) -> dict[str, int]:
        """Rows in the `events` table, per session."""
        from voxledger.warehouse.db import connect

        with patched_environ(self.env), connect(self.settings(), read_only=True) as db:
            return dict(db.execute("SELECT session_id, count(*) FROM events GROUP BY 1").fetchall())

    def proxy_sessions(self, since: datetime | None = None) -> AcceptedSessions:
        """What the proxy log says of the sessions it accepted (opened) at or after `since`."""
        opened: set[str] = set()
        closed: dict[str, str | None] = {}  # proxy id → the id envelopes carry, once captured
        for line in self.log("proxy").splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line cut by a kill -9
            if record.get("event") == "session.opened":
                logged = datetime.fromisoformat(record["ts"]).astimezone(UTC)
                if since is None or logged.replace(tzinfo=None) >= since:
                    opened.add(record["session"])
            elif record.get("event") == "session.closed":
                closed[record["session"]] = record.get("realtime_session")
        return AcceptedSessions(
            opened, {k: v for k, v in closed.items() if k in opened}, opened & self.cut
        )

    def kill(self, role: str) -> int:
        """kill -9 the role's process; its pid. A killed proxy's open sessions are cut."""
        process = self.processes[role]
        process.send_signal(signal.SIGKILL)
        process.wait(STOP_S)
        if role == "proxy":  # nothing more will be logged of its sessions
            accepted = self.proxy_sessions()
            self.cut |= accepted.opened - set(accepted.closed)
        return process.pid

    def wait_caught_up(
        self, since: datetime | None = None, timeout: float = CATCH_UP_S
    ) -> Reconciliation:
        """Until every session the proxy accepted at or after `since` has landed: capture
        confirmed its end (or a proxy kill cut it), and reconcile finds it in raw, redacted (or
        dead letters), the `events` table, with a cost row per response.done and, if closed, a
        verdict. Reconcile then judges what remains: what capture lost or doubled."""
        from voxledger.errors import VoxLedgerError
        from voxledger.warehouse.reconcile import reconcile

        waiting = "the first check"

        def landed() -> Reconciliation | None:
            nonlocal waiting
            self.check_running()
            accepted = self.proxy_sessions(since)
            unconfirmed = accepted.opened - set(accepted.closed) - accepted.cut
            if not accepted.opened or unconfirmed:
                waiting = (
                    f"the proxy to close {len(unconfirmed)} of {len(accepted.opened)} sessions"
                )
                return None
            # Cheap and necessary, before reading every envelope: the totals have caught up.
            counts = self.counts()
            if min(counts["redacted"], counts["events"]) + counts["deadletter"] < counts["raw"]:
                waiting = f"the processors and the sink; counts {counts}"
                return None
            try:
                with patched_environ(self.env):
                    result = reconcile(self.settings(), since)
            except (VoxLedgerError, duckdb.Error) as exc:
                waiting = f"reconcile to read everything ({exc})"
                return None
            found = {s.session_id: s for s in result.sessions}
            unseen = [
                proxy_id
                for proxy_id, session_id in accepted.closed.items()
                if session_id is None or session_id not in found or not found[session_id].closed
            ]
            pending = {s.session_id: behind for s in result.sessions if (behind := not_landed(s))}
            if unseen or pending:
                waiting = (
                    f"{len(unseen)} closed sessions to reach raw, {len(pending)} sessions to "
                    f"land, e.g. {dict(list(pending.items())[:2])}"
                )
                return None
            return result

        try:
            return wait_for(landed, timeout, "every accepted session to land")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; still waiting for {waiting}") from None

    def recovery(self, fault_at: float, since: datetime | None = None) -> float | None:
        """Seconds from `fault_at` (monotonic) until every accepted session landed; None when
        they did not within CATCH_UP_S, and reconcile is left to name what is missing."""
        try:
            self.wait_caught_up(since)
        except TimeoutError as exc:
            print(f"not caught up: {exc}", file=sys.stderr, flush=True)
            return None
        return time.monotonic() - fault_at

    def reconcile(self, since: datetime | None = None) -> Reconciled:
        from voxledger.warehouse.reconcile import reconcile

        args = ["reconcile"] + (["--since", since.strftime("%Y-%m-%dT%H:%M:%S")] if since else [])
        done = self.cli(*args)
        with patched_environ(self.env):
            result = reconcile(self.settings(), since)
        accepted = len(self.proxy_sessions(since).opened)
        return Reconciled(done.returncode, done.stdout + done.stderr, result, accepted)


@dataclass
class Reconciled:
    """`voxledger reconcile`'s exit code and output, and the same tallies in-process."""

    returncode: int
    output: str
    result: Any
    accepted: int  # sessions the proxy accepted (its log), whether or not raw holds them

    @property
    def summary(self) -> str:
        lines = self.output.strip().splitlines()
        return lines[-1] if lines else ""

    def envelopes_relayed(self) -> int:
        # Closed sessions: the proxy's counts (+2 markers); cut ones: their highest seq + 1.
        return sum(
            (s.relayed + 2) if s.relayed is not None else (max(s.raw_seqs, default=-1) + 1)
            for s in self.result.sessions
        )

    def in_raw(self) -> int:
        return sum(len(set(s.raw_seqs)) for s in self.result.sessions)

    def duplicates(self) -> int:
        return sum(
            len(s.raw_seqs) - len(set(s.raw_seqs)) + s.events_rows - s.events_distinct
            for s in self.result.sessions
        )


@dataclass
class Outcome:
    """One row of the table, plus what the tests assert on."""

    fault: str
    accepted: int  # sessions the proxy accepted
    sessions: int  # ...of which raw holds at least one envelope
    relayed: int
    in_raw: int
    lost: int
    duplicates: int
    reconcile: str
    recovery_s: float | None  # None: not caught up within CATCH_UP_S
    details: dict[str, Any] = field(default_factory=dict)


def outcome(
    fault: str, reconciled: Reconciled, recovery_s: float | None, **details: Any
) -> Outcome:
    relayed, in_raw = reconciled.envelopes_relayed(), reconciled.in_raw()
    state = "pass" if reconciled.returncode == 0 else f"exit {reconciled.returncode}"
    return Outcome(
        fault,
        reconciled.accepted,
        len(reconciled.result.sessions),
        relayed,
        in_raw,
        relayed - in_raw,
        reconciled.duplicates(),
        f"{state}: {reconciled.summary}",
        None if recovery_s is None else round(recovery_s, 1),
        {"reconciled": reconciled, **details},
    )


def kept_rows(before: dict[str, int], after: dict[str, int]) -> tuple[int, int]:
    """(rows the sessions of `before` had, rows of theirs still there in `after`)."""
    return sum(before.values()), sum(min(n, after.get(s, 0)) for s, n in before.items())


def markers(raw: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {e["session_id"]: e for e in raw if e.get("type") == kind}


LOADGEN_SUMMARY = re.compile(r"(\d+) sessions against .*?: (\d+) ok, (\d+) failed")


def loadgen_counts(text: str) -> tuple[int, int]:
    """(ok, failed) from the load generator's summary."""
    found = LOADGEN_SUMMARY.search(text)
    return (int(found.group(2)), int(found.group(3))) if found else (0, 0)


__all__ = [
    "Outcome",
    "Pipeline",
    "Reconciled",
    "child_pids",
    "loadgen_counts",
    "markers",
    "outcome",
    "pid_alive",
    "wait_for",
]


# -- recording callers: every server event a client received, even from a call cut short --------


class Recorders:
    """Scripted calls in a thread of their own that keep every event they received."""

    def __init__(self, url: str, count: int) -> None:
        from voxledger.ingest.scenario_client import ScenarioResult
        from voxledger.ingest.simulator import load_scenario

        self.scenarios = [load_scenario(SCENARIOS[i % len(SCENARIOS)]) for i in range(count)]
        self.results = [ScenarioResult(s.name, s.model, events=[]) for s in self.scenarios]
        self.url = url
        self.thread = threading.Thread(target=asyncio.run, args=(self._all(),), daemon=True)
        self.thread.start()

    async def _all(self) -> None:
        await asyncio.gather(
            *(self._one(s, r) for s, r in zip(self.scenarios, self.results, strict=True)),
            return_exceptions=True,
        )

    async def _one(self, scenario: Any, result: Any) -> None:
        # run_scenario, with a result of ours: a call the proxy's death cuts keeps its events.
        from openai import AsyncOpenAI

        from voxledger.ingest.scenario_client import ScenarioAborted, _Caller

        client = AsyncOpenAI(api_key=API_KEY, websocket_base_url=self.url)
        realtime: Any = client.beta.realtime if scenario.is_beta else client.realtime
        query = {"scenario": scenario.name}
        try:
            async with realtime.connect(model=scenario.model, extra_query=query) as connection:
                caller = _Caller(connection, scenario, result, True)
                try:
                    await caller.play()
                except ScenarioAborted as exc:
                    result.aborted = str(exc)
                finally:
                    with contextlib.suppress(Exception):
                        await caller.close()
        finally:
            await client.close()

    def received(self) -> list[int]:
        return [len(r.events) for r in self.results]

    def event_ids(self) -> set[str]:
        return {e["event_id"] for r in self.results for e in r.events if e.get("event_id")}


# -- the five faults ------------------------------------------------------------------------------


def proxy_kill(root: Path, sessions: int = 40, concurrency: int = 8) -> Outcome:
    """kill -9 the proxy mid-load; its capture child publishes what it got; restart; new calls."""
    pipeline = Pipeline(root)
    pipeline.start_all()
    try:
        recorders = Recorders(pipeline.proxy_url, 4)
        load = pipeline.loadgen(sessions, concurrency)
        opened = lambda: pipeline.log("proxy").count('"event": "session.opened"')  # noqa: E731
        wait_for(
            lambda: min(recorders.received()) >= 40 and opened() >= 4 + concurrency,
            READY_S,
            "recorded and generated calls under way",
        )
        proxy_pid = pipeline.processes["proxy"].pid
        capture_pids = child_pids(proxy_pid)
        killed_at = time.monotonic()
        pipeline.kill("proxy")
        recorded = recorders.event_ids()  # what the clients had by the kill, at least
        wait_for(lambda: not any(map(pid_alive, capture_pids)), STOP_S, "the capture child to end")
        recorders.thread.join(STOP_S)
        load_counts = loadgen_counts(load.wait())
        recorded = recorders.event_ids()  # nothing can arrive once the proxy is gone
        pipeline.start("proxy")
        after = pipeline.loadgen(5, 5, "loadgen-after")
        after_ok, after_failed = loadgen_counts(after.wait())
        recovery = pipeline.recovery(killed_at)
        raw = pipeline.raw()
        reconciled = pipeline.reconcile()
    finally:
        pipeline.stop_all()
    raw_event_ids = {(e.get("payload") or {}).get("event_id") for e in raw}
    # What a kill can lose is the end of the capture backlog: per call, a tail, never a hole.
    holes = [
        r.scenario
        for r in recorders.results
        if (flags := [e.get("event_id") in raw_event_ids for e in r.events])
        != sorted(flags, reverse=True)
    ]
    return outcome(
        "kill -9 proxy",
        reconciled,
        recovery,
        raw=raw,
        recorded=recorded,
        recorded_missing=recorded - raw_event_ids,
        recorded_holes=holes,
        load=load_counts,
        capture_pids=capture_pids,
        after=(after_ok, after_failed),
        proxy_log=pipeline.log("proxy"),
    )


def processors_sink_kill(root: Path, sessions: int = 40, concurrency: int = 8) -> Outcome:
    """kill -9 the processors and the sink while they work; restart them; nothing lost, no dupes."""
    pipeline = Pipeline(root)
    pipeline.start_all()
    try:
        load = pipeline.loadgen(sessions, concurrency)
        events_dir = pipeline.data_dir / "warehouse" / "events"
        # Mid-batch: the sink has landed its first file while the calls still pour in, so the
        # processors are working and the sink holds an unwritten batch.
        wait_for(lambda: any(events_dir.rglob("*.parquet")), CATCH_UP_S, "a first landed file")
        killed_at = time.monotonic()
        load_running = load.process.poll() is None
        pipeline.kill("processors")
        pipeline.kill("sink")
        pipeline.start("processors")
        pipeline.start("sink")
        load_counts = loadgen_counts(load.wait())
        recovery = pipeline.recovery(killed_at)
        reconciled = pipeline.reconcile()
        final = pipeline.counts()
    finally:
        pipeline.stop_all()
    return outcome(
        "kill -9 processors + sink",
        reconciled,
        recovery,
        load=load_counts,
        load_running=load_running,
        final=final,
    )


def capture_kill(root: Path, sessions: int = 40, concurrency: int = 8) -> Outcome:
    """kill -9 the proxy's capture process mid-load: the proxy closes the sessions in flight
    with 1012, restarts capture, and their markers let reconcile name exactly what was lost."""
    pipeline = Pipeline(root)
    pipeline.start_all()
    try:
        load = pipeline.loadgen(sessions, concurrency)
        opened = lambda: pipeline.log("proxy").count('"event": "session.opened"')  # noqa: E731
        wait_for(lambda: opened() >= concurrency + 2, READY_S, "sessions in flight")
        (capture_pid,) = child_pids(pipeline.processes["proxy"].pid)
        killed_at = time.monotonic()
        os.kill(capture_pid, signal.SIGKILL)
        wait_for(
            lambda: "capture process restarted" in pipeline.log("proxy"),
            READY_S,
            "the proxy to restart capture",
        )
        restarted_s = time.monotonic() - killed_at
        load_text = load.wait()
        after = pipeline.loadgen(5, 5, "loadgen-after")
        after_counts = loadgen_counts(after.wait())
        recovery = pipeline.recovery(killed_at)
        raw = pipeline.raw()
        reconciled = pipeline.reconcile()
    finally:
        pipeline.stop_all()
    return outcome(
        "kill -9 capture process",
        reconciled,
        recovery,
        raw=raw,
        restarted_s=round(restarted_s, 1),
        load=loadgen_counts(load_text),
        load_text=load_text,
        after=after_counts,
        proxy_log=pipeline.log("proxy"),
    )


def broker_outage(root: Path, sessions: int = 40, concurrency: int = 8) -> Outcome:
    """Stop the broker for 10 s while calls are placed; they spool; after restart (a memory-only
    broker comes back empty; topics are created again) the spool drains and consumers resume."""
    pipeline = Pipeline(root)
    pipeline.start_all()
    try:
        warm = pipeline.loadgen(3, 3, "loadgen-warm")
        warm.wait()
        pipeline.wait_caught_up()
        landed_before = pipeline.events_rows()  # the broker loses them; the warehouse must not
        pipeline.stop_broker()
        stopped_at = time.monotonic()
        since = datetime.now(UTC).replace(tzinfo=None)
        load = pipeline.loadgen(sessions, concurrency)
        load_text = load.wait()
        spooling = "spooling envelopes" in pipeline.log("proxy")
        # The outage lasts BROKER_DOWN_S at least (the fault itself, not a synchronisation).
        wait_for(lambda: time.monotonic() - stopped_at >= BROKER_DOWN_S, 60, "the outage")
        down_s = time.monotonic() - stopped_at
        pipeline.start_broker()  # and `topics create`
        up_at = time.monotonic()
        recovery = pipeline.recovery(up_at, since)
        reconciled = pipeline.reconcile(since)
        kept = kept_rows(landed_before, pipeline.events_rows())
    finally:
        pipeline.stop_all()
    return outcome(
        "broker down 10 s",
        reconciled,
        recovery,
        landed_before=kept,
        load=loadgen_counts(load_text),
        spooling=spooling,
        down_s=round(down_s, 1),
        proxy_log=pipeline.log("proxy"),
    )


def spool_full(
    root: Path, sessions: int = 40, concurrency: int = 8, spool_max_bytes: int = 512 * 1024
) -> Outcome:
    """Broker down and a small spool quota: new sessions are refused (1013) once it is full;
    accepted ones are spooled in full and land once the broker is back."""
    pipeline = Pipeline(root, spool_max_bytes=spool_max_bytes)
    pipeline.start_all()
    try:
        pipeline.loadgen(1, 1, "loadgen-warm").wait()  # every consumer is up and assigned
        pipeline.wait_caught_up()
        landed_before = pipeline.events_rows()  # the broker loses them; the warehouse must not
        pipeline.stop_broker()
        since = datetime.now(UTC).replace(tzinfo=None)
        load = pipeline.loadgen(sessions, concurrency)
        load_text = load.wait()
        full_logged = "refusing new sessions" in pipeline.log("proxy")
        pipeline.start_broker()
        up_at = time.monotonic()
        recovery = pipeline.recovery(up_at, since)
        raw = pipeline.raw()
        reconciled = pipeline.reconcile(since)
        kept = kept_rows(landed_before, pipeline.events_rows())
    finally:
        pipeline.stop_all()
    return outcome(
        "spool quota full",
        reconciled,
        recovery,
        landed_before=kept,
        raw=raw,
        load=loadgen_counts(load_text),
        load_text=load_text,
        full_logged=full_logged,
        proxy_log=pipeline.log("proxy"),
    )


SCENARIO_RUNS: dict[str, Callable[..., Outcome]] = {
    "proxy_kill": proxy_kill,
    "capture_kill": capture_kill,
    "broker_outage": broker_outage,
    "processors_sink_kill": processors_sink_kill,
    "spool_full": spool_full,
}


def table(outcomes: list[Outcome]) -> str:
    head = (
        "| fault | calls ok / failed | sessions accepted / in raw | envelopes relayed | in raw "
        "| lost | duplicates | reconcile | recovery s |\n"
        "|---|---:|---:|---:|---:|---:|---:|---|---:|"
    )
    late = f"not within {CATCH_UP_S:.0f}"
    rows = [
        f"| {o.fault} | {' / '.join(map(str, o.details.get('load', ('?', '?'))))} "
        f"| {o.accepted} / {o.sessions} | {o.relayed:,} | {o.in_raw:,} | {o.lost:,} "
        f"| {o.duplicates} | {o.reconcile} "
        f"| {late if o.recovery_s is None else o.recovery_s} |"
        for o in outcomes
    ]
    return "\n".join([head, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--only", default=",".join(SCENARIO_RUNS), help="comma-separated")
    args = parser.parse_args()
    outcomes, failures = [], []
    for name in args.only.split(","):
        root = Path(tempfile.mkdtemp(prefix=f"chaos-{name}-"))
        print(f"… {name}", file=sys.stderr, flush=True)
        try:
            outcomes.append(SCENARIO_RUNS[name](root, args.sessions, args.concurrency))
        except Exception as exc:  # the other faults still run; this one's logs stay for a look
            failures.append(f"{name}: {exc} (logs in {root / 'logs'})")
            continue
        shutil.rmtree(root)
    print(table(outcomes))
    for o in outcomes:
        if "landed_before" in o.details:
            before, kept = o.details["landed_before"]
            print(f"\n{o.fault}: of {before:,} events rows landed before the outage, {kept:,} kept")
    for failure in failures:
        print(f"\nFAILED {failure}")
    print(f"\ncommand: .venv/bin/python bench/chaos.py --sessions {args.sessions}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
