"""What the capture proxy costs: added latency per server frame and CPU per 1k frames/s.

Setup, all on this machine: an embedded tansu broker (temp data dir, free port), the Realtime
simulator in this process (real-time pacing), and the proxy as a subprocess
(`voxledger.ingest.proxy_cli`), publishing every frame to the broker. The same load (N calls
of a two-turn support script, caller audio streamed in 20 ms chunks at real-time pace, server
VAD ending each turn, starts spread over a short ramp) runs once straight to the simulator and
once through the proxy, for each session count.

The callers are minimal WebSocket clients that send pre-encoded frames, not the openai SDK
that `voxledger loadgen` uses: the SDK spends ~0.7 ms of CPU per client event and ~35 ms per
new client (loading CA certificates), so on a small machine the load generator, not the
proxy, would be what is measured.

Latency. Every simulator event carries a unique `event_id`, and the proxy relays frames
unchanged. This process wraps the simulator's WebSocket `send` and the callers' `recv` to
note, per event_id, when the simulator handed the frame to its socket and when the caller
got it, on one monotonic clock (same process). The direct run's distribution is the baseline
(one loopback hop plus both event loops); the proxied run adds the proxy's hop, relay and
capture. Frames of the two runs cannot be paired, so the added latency is the difference of
the two distributions' percentiles (p50, p95, p99). The simulator is run without
permessage-deflate, as the proxy runs, so both paths carry the same bytes.

CPU. The proxy's user+system CPU time (from /proc/PID/stat, summed over the proxy and its
child processes: it captures in a process of its own) over the proxied run, divided by the
run's wall time, is the share of one core it used; "relay" is the relaying process alone.
Less its idle use (sampled for 2 s before each run) and divided by the frames it relayed per
second (both directions, in thousands), it gives % of a core per 1k frames/s.

Saturation. The callers and the simulator share this process, and the broker and the proxy
share the rest of the machine. A row is flagged "host saturated" when this process used over
85% of a core, a call failed, or calls ran over 10% slower than one call alone ("pace"): the
latencies then include queueing for CPU, in both runs, and are only indicative. A machine
with more cores, or fewer sessions, gives cleaner numbers.

Run:  .venv/bin/python bench/proxy_latency.py [--sessions 1,50,200] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websockets.asyncio.client as ws_client
import websockets.asyncio.server as ws_server

from voxledger.broker import start_broker, stop_broker
from voxledger.config import Settings
from voxledger.ingest.simulator import Scenario, parse_scenario, start_simulator
from voxledger.ingest.simulator import server as simulator_server
from voxledger.ingest.simulator.audio import silence, tone

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "examples" / "voxledger.toml"
PROXY_MAIN = "from voxledger.ingest.proxy_cli import command; command()"
READY_TIMEOUT_S = 30.0
GENERATOR_BUSY = 0.85  # share of a core above which the load generator queues frames itself
MIN_PACE = 0.9  # calls taking over ~10% longer than one call alone: the host is the bottleneck
IDLE_SAMPLE_S = 2.0
_EVENT_ID = re.compile(rb'"event_id": ?"(event_[A-Za-z0-9]+)"')
_TYPE = re.compile(rb'"type": ?"([^"]+)"')
CLIENT_KEY = "vx-demo-us"  # the demo config's US tenant
CHUNK_MS = 20
SILENCE_TAIL_MS = 800  # server VAD ends a turn after 500 ms of silence
EVENT_TIMEOUT_S = 30.0


def bench_call(quick: bool) -> Scenario:
    """A support-style call: two spoken questions, two spoken answers (one of each if quick)."""
    question = {"text": "Hi, my parcel has not arrived yet.", "audio_ms": 1000 if quick else 2000}
    answer = {
        "transcript": "Sorry to hear that. Let me check.",
        "audio_ms": 1000 if quick else 2500,
    }
    turns: list[dict[str, Any]] = [{"user": question}, {"assistant": answer}]
    if not quick:
        turns += [
            {"user": {"text": "It was order 4471.", "audio_ms": 1500}},
            {"assistant": {"transcript": "It is out for delivery today.", "audio_ms": 2000}},
        ]
    return parse_scenario(
        {
            "name": "bench_call",
            "description": "Benchmark call.",
            "language": "en",
            "instructions": "You are a support assistant.",
            "turns": turns,
        }
    )


# -- timestamps ---------------------------------------------------------------------------------


class FrameClock:
    """When the simulator sent each event and when a caller received it, by event_id."""

    def __init__(self) -> None:
        self.sent: dict[bytes, int] = {}
        self.received: list[tuple[bytes, int]] = []

    def reset(self) -> None:
        self.sent.clear()
        self.received.clear()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Wrap the simulator's send and the callers' recv (this process has no others)."""
        send, recv = ws_server.ServerConnection.send, ws_client.ClientConnection.recv
        clock = self

        async def timed_send(self: Any, message: Any, *args: Any, **kwargs: Any) -> None:
            clock._stamp_sent(message)
            await send(self, message, *args, **kwargs)

        async def timed_recv(self: Any, *args: Any, **kwargs: Any) -> Any:
            message = await recv(self, *args, **kwargs)
            clock._stamp_received(message)
            return message

        ws_server.ServerConnection.send = timed_send  # type: ignore[method-assign]
        ws_client.ClientConnection.recv = timed_recv  # type: ignore[method-assign]
        try:
            yield
        finally:
            ws_server.ServerConnection.send = send  # type: ignore[method-assign]
            ws_client.ClientConnection.recv = recv  # type: ignore[method-assign]

    def _stamp_sent(self, message: Any) -> None:
        now = time.monotonic_ns()
        data = message.encode() if isinstance(message, str) else message
        if isinstance(data, bytes) and (found := _EVENT_ID.search(data, 0, 200)):
            self.sent[found.group(1)] = now

    def _stamp_received(self, message: Any) -> None:
        now = time.monotonic_ns()
        data = message.encode() if isinstance(message, str) else message
        if isinstance(data, bytes) and (found := _EVENT_ID.search(data, 0, 200)):
            self.received.append((found.group(1), now))

    def latencies_ms(self) -> list[float]:
        return sorted(
            (at - self.sent[event_id]) / 1e6
            for event_id, at in self.received
            if event_id in self.sent
        )


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# -- the proxy subprocess -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ProxyProcess:
    """`voxledger proxy` in a child process, so its CPU time can be read on its own."""

    def __init__(self, workdir: Path, bootstrap: str, upstream_url: str) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/v1"
        self.log = workdir / "proxy.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOXLEDGER_")}
        env |= {
            "VOXLEDGER_CONFIG": str(DEMO_CONFIG),
            "VOXLEDGER_DATA_DIR": str(workdir / "proxy"),
            "VOXLEDGER_BOOTSTRAP_SERVERS": bootstrap,
            "VOXLEDGER_PROXY__MAX_SESSIONS_PER_TENANT": "100000",  # the bench is the limit
        }
        command = [sys.executable, "-c", PROXY_MAIN, "--port", str(self.port)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "--upstream-url", upstream_url],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def cpu_seconds(self) -> float:
        """CPU time of the proxy and every process under it (the capture process)."""
        return sum(_cpu_seconds(pid) for pid in _process_tree(self.process.pid))

    def relay_cpu_seconds(self) -> float:
        return _cpu_seconds(self.process.pid)

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                return json.loads(r.read())
        except (OSError, urllib.error.URLError, ValueError):
            return None

    async def wait_until(self, ready: Any, what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready(await asyncio.to_thread(self.health)):
            if self.process.poll() is not None:
                raise RuntimeError(f"the proxy exited; see {self.log}: {self._tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the proxy did not get {what} in time; see {self.log}")
            await asyncio.sleep(0.05)

    async def idle_cores(self) -> float:
        """The proxy's CPU use with no session open, in cores (a bench may sample by time)."""
        before, started = self.cpu_seconds(), time.monotonic()
        await asyncio.sleep(IDLE_SAMPLE_S)
        return (self.cpu_seconds() - before) / (time.monotonic() - started)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(READY_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _tail(self) -> str:
        return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-3:])


def _stat(pid: int) -> list[str]:
    # Fields after the command name, which may hold spaces: field 3 of proc(5) is [0].
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(pid: int) -> float:
    try:
        fields = _stat(pid)
    except OSError:  # it exited meanwhile
        return 0.0
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _process_tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
    tree = [root]
    for pid in tree:
        tree += [child for child, parent in parents.items() if parent == pid]
    return tree


# -- runs ---------------------------------------------------------------------------------------


@dataclass
class Run:
    latencies_ms: list[float]
    frames: int
    elapsed_s: float
    failures: Counter[str]
    generator_cpu: float  # share of one core this process used
    proxy_cpu_s: float | None = None
    relay_cpu_s: float | None = None

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s else 0.0


async def run_load(
    clock: FrameClock, scenario: Scenario, target: str, api_key: str, sessions: int, ramp_s: float
) -> Run:
    """N calls of `scenario`, started evenly over `ramp_s`; latencies, frames and failures."""
    clock.reset()
    frames = Counter[str]()
    before, started = os.times(), time.monotonic()

    async def one(number: int) -> str | None:
        await asyncio.sleep(ramp_s * number / sessions)
        try:
            await asyncio.wait_for(_call(target, api_key, scenario, frames), 10 * EVENT_TIMEOUT_S)
        except Exception as exc:  # one call failing must not stop the others
            return f"{type(exc).__name__}: {exc}"
        return None

    outcomes = await asyncio.gather(*(one(n) for n in range(sessions)))
    elapsed = time.monotonic() - started
    after = os.times()
    busy = (after.user + after.system - before.user - before.system) / elapsed
    failures = Counter(reason for reason in outcomes if reason)
    return Run(clock.latencies_ms(), frames.total(), elapsed, failures, busy)


@functools.cache
def _audio_frames() -> tuple[str, str]:
    def append(audio: bytes) -> str:
        event = {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}
        return json.dumps(event)

    return append(tone(CHUNK_MS)), append(silence(CHUNK_MS))


async def _call(target: str, api_key: str, scenario: Scenario, frames: Counter[str]) -> None:
    """One caller: greet, then speak each user turn and wait for the reply it triggers."""
    url = f"{target}/realtime?model={scenario.model}&scenario={scenario.name}"
    headers = {"Authorization": f"Bearer {api_key}"}
    async with ws_client.connect(
        url, additional_headers=headers, compression=None, max_size=None, open_timeout=30
    ) as ws:
        heard = _Heard(ws, frames)
        try:
            await heard.wait("session.created", 1)
            update = {"type": "session.update", "session": {"type": "realtime"}}
            await ws.send(json.dumps(update))
            frames["sent"] += 1
            for replies, turn in enumerate(scenario.spoken_user_turns(), start=1):
                await _speak(ws, turn.speech_ms(), frames)
                await heard.wait("response.done", replies)
        finally:
            heard.stop()


async def _speak(ws: Any, speech_ms: int, frames: Counter[str]) -> None:
    speech, quiet = _audio_frames()
    chunks = [speech] * (speech_ms // CHUNK_MS) + [quiet] * (SILENCE_TAIL_MS // CHUNK_MS)
    started = time.monotonic()
    for n, chunk in enumerate(chunks):
        await ws.send(chunk)
        frames["sent"] += 1
        await asyncio.sleep(max(0.0, started + (n + 1) * CHUNK_MS / 1000 - time.monotonic()))


class _Heard:
    """Reads a caller's socket, counting server events by type."""

    def __init__(self, ws: Any, frames: Counter[str]) -> None:
        self.types = Counter[bytes]()
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(ws, frames))

    async def _read(self, ws: Any, frames: Counter[str]) -> None:
        async for message in ws:
            data = message.encode() if isinstance(message, str) else message
            if found := _TYPE.search(data, 0, 120):
                self.types[found.group(1)] += 1
            frames["received"] += 1
            self._changed.set()

    async def wait(self, kind: str, count: int) -> None:
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while self.types[kind.encode()] < count:
            if self._reader.done():
                self._reader.result()
                raise ConnectionError(f"closed while waiting for {kind}")
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        self._reader.cancel()


@dataclass
class Level:
    sessions: int
    ramp_s: float
    direct: Run
    proxied: Run
    proxy_idle_cores: float  # the proxy's CPU with no session open: polling, Kafka client

    def pace(self, reference_s: float) -> float:
        """1.0 when the slower run kept real time; lower when the host could not keep up."""
        slowest = max(self.direct.elapsed_s, self.proxied.elapsed_s)
        return (reference_s + self.ramp_s) / slowest

    def saturated(self, reference_s: float) -> bool:
        busy = max(self.direct.generator_cpu, self.proxied.generator_cpu) > GENERATOR_BUSY
        failed = self.direct.failed or self.proxied.failed
        return busy or bool(failed) or self.pace(reference_s) < MIN_PACE

    def added(self) -> dict[str, float]:
        """Added latency at p50/p95/p99 (ms): the proxied run's percentile minus the direct's."""
        return {f"p{q}": self.proxied.p(q) - self.direct.p(q) for q in (50, 95, 99)}

    def row(self, reference_s: float) -> str:
        def trio(get: Any) -> str:
            return " / ".join(f"{get(q):.2f}" for q in (50, 95, 99))

        proxied = self.proxied
        cores = (proxied.proxy_cpu_s or 0.0) / proxied.elapsed_s
        relay = (proxied.relay_cpu_s or 0.0) / proxied.elapsed_s
        thousands = proxied.frames_per_s / 1000
        above_idle = 100 * (cores - self.proxy_idle_cores) / thousands if thousands else 0.0
        generator = max(self.direct.generator_cpu, proxied.generator_cpu)
        flag = " ⚠ host saturated" if self.saturated(reference_s) else ""
        cells = [
            f"{self.sessions}{flag}",
            f"{proxied.frames_per_s:.0f}",
            trio(self.direct.p),
            trio(proxied.p),
            trio(lambda q: proxied.p(q) - self.direct.p(q)),
            f"{100 * cores:.1f}% (relay {100 * relay:.1f}%, "
            f"idle {100 * self.proxy_idle_cores:.1f}%)",
            f"{above_idle:.1f}%",
            f"{100 * generator:.0f}%",
            f"{self.pace(reference_s):.2f}",
            f"{self.direct.failed} / {proxied.failed}",
        ]
        return "| " + " | ".join(cells) + " |"


HEADER = (
    "| sessions | frames/s | direct p50 / p95 / p99 ms | via proxy p50 / p95 / p99 ms "
    "| added p50 / p95 / p99 ms | proxy CPU, of a core | proxy CPU per 1k frames/s above idle "
    "| generator CPU | pace | failed direct / proxy |\n"
    "|---:|---:|---|---|---|---:|---:|---:|---:|---:|"
)


async def measure(levels: list[int], quick: bool) -> tuple[float, list[Level]]:
    """Seconds one call takes unloaded, and each level's direct and proxied runs."""
    scenario = bench_call(quick)
    clock = FrameClock()
    with tempfile.TemporaryDirectory(prefix="voxledger-bench-") as tmp:
        workdir = Path(tmp)
        broker_settings = Settings(data_dir=workdir / "broker")
        state, _ = await asyncio.to_thread(start_broker, broker_settings, free_port())
        try:
            with clock.installed(), _uncompressed_simulator():
                simulator = await start_simulator(port=0, fast=False, scenarios=[scenario])
                proxy = ProxyProcess(workdir, state.bootstrap_servers, simulator.url)
                try:
                    await proxy.wait_until(lambda h: h and h["status"] == "ok", "ready")
                    # One call alone, straight to the simulator, after a first one to warm up:
                    # how long a call takes unloaded.
                    print("… calibrating with one call", file=sys.stderr, flush=True)
                    for _ in range(2):
                        reference = await run_load(clock, scenario, simulator.url, "sk-bench", 1, 0)
                    results = [
                        await _level(n, clock, scenario, simulator.url, proxy, quick)
                        for n in levels
                    ]
                    return reference.elapsed_s, results
                finally:
                    proxy.stop()
                    await simulator.close()
        finally:
            await asyncio.to_thread(stop_broker, broker_settings)


async def _level(
    sessions: int, clock: FrameClock, scenario: Scenario, sim_url: str, proxy: ProxyProcess,
    quick: bool,
) -> Level:  # fmt: skip
    ramp_s = 0.2 if quick else min(2.0, 0.01 * sessions)  # calls ring in over a short ramp
    print(f"… {sessions} sessions: direct", file=sys.stderr, flush=True)
    direct = await run_load(clock, scenario, sim_url, "sk-bench", sessions, ramp_s)
    idle = await proxy.idle_cores()
    print(f"… {sessions} sessions: through the proxy", file=sys.stderr, flush=True)
    cpu_before, relay_before = proxy.cpu_seconds(), proxy.relay_cpu_seconds()
    proxied = await run_load(clock, scenario, proxy.url, CLIENT_KEY, sessions, ramp_s)
    proxied.proxy_cpu_s = proxy.cpu_seconds() - cpu_before
    proxied.relay_cpu_s = proxy.relay_cpu_seconds() - relay_before
    await proxy.wait_until(lambda h: h and h["sessions"] == 0, "every session closed")
    return Level(sessions, ramp_s, direct, proxied, idle)


@contextlib.contextmanager
def _uncompressed_simulator() -> Iterator[None]:
    # The proxy speaks without permessage-deflate on both legs; so must the baseline.
    original = simulator_server.serve
    simulator_server.serve = functools.partial(original, compression=None)  # type: ignore[assignment]
    try:
        yield
    finally:
        simulator_server.serve = original  # type: ignore[assignment]


def report(reference_s: float, levels: list[Level], command: str) -> str:
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    lines = [
        f"Capture proxy overhead ({machine}); real-time pacing, latency of server→client frames;",
        f"one call alone takes {reference_s:.1f} s; pace = that (plus the ramp) / the slower run.",
        "",
        HEADER,
        *(level.row(reference_s) for level in levels),
    ]
    for level in levels:
        for kind, run in (("direct", level.direct), ("via proxy", level.proxied)):
            for reason, count in run.failures.most_common(3):
                lines.append(f"- {level.sessions} sessions {kind}: {count}× {reason}")
    lines += ["", f"command: {command}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,50,200", help="comma-separated session counts")
    parser.add_argument("--quick", action="store_true", help="1 and 5 sessions, a short call")
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/run_all)")
    args = parser.parse_args(argv)
    levels = [1, 5] if args.quick else [int(n) for n in args.sessions.split(",")]
    reference_s, results = asyncio.run(measure(levels, args.quick))
    command = " ".join([".venv/bin/python", "bench/proxy_latency.py", *(argv or sys.argv[1:])])
    print(report(reference_s, results, command), flush=True)
    if args.json:
        args.json.write_text(json.dumps({str(lv.sessions): lv.added() for lv in results}))
    return 0 if all(lv.direct.failed == lv.proxied.failed == 0 for lv in results) else 1


if __name__ == "__main__":
    sys.exit(main())
