"""The main job: the whole pipeline on the embedded default, driven by scripted calls.

It runs each role as its own `voxledger` process, as production does, so it imports no
layer: broker, simulator, proxy and processors start, the scripted calls go through the
official openai SDK and the proxy, and Ctrl-C stops every process it started.
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
from pathlib import Path

import click
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from voxledger.broker import running_broker, start_broker, stop_broker
from voxledger.config import Settings
from voxledger.errors import VoxLedgerError
from voxledger.kafka import client_config
from voxledger.topics import ensure_topics

SIMULATOR_PORT = 8765
PROXY_PORT = 8080
READY_TIMEOUT_S = 60.0
CATCH_UP_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 30.0
# The scripted call of an EU tenant whose traffic does not reach eu.api.openai.com.
EU_SCENARIO = "eu_wrong_host_en"


@dataclass
class Stack:
    """The `voxledger` processes the demo started, each logging to a file of its own."""

    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

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


def run_demo(settings: Settings, *, sessions: int, serve: bool) -> None:
    """Run the pipeline, place `sessions` scripted calls, print what landed; serve if asked."""
    stack = Stack(settings.data_dir / "logs")
    started_broker = _ensure_broker(settings)
    try:
        for port in (SIMULATOR_PORT, PROXY_PORT):
            _check_port_free(port)
        _start_pipeline(stack)
        _place_calls(stack, sessions)
        _report(settings, stack)
        if serve:
            click.echo(
                f"\nVoxLedger is running. Point an openai SDK client at the proxy:\n"
                f'  AsyncOpenAI(api_key="vx-demo-us", websocket_base_url='
                f'"ws://127.0.0.1:{PROXY_PORT}/v1")\n'
                f"Proxy metrics: http://127.0.0.1:{PROXY_PORT}/metrics · "
                f"logs: {stack.log_dir}\nPress Ctrl-C to stop."
            )
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


def _start_pipeline(stack: Stack) -> None:
    stack.start("simulator", "simulate-upstream", "--port", str(SIMULATOR_PORT), "--fast")
    _wait_for_port(stack, "simulator", SIMULATOR_PORT)
    upstream = f"ws://127.0.0.1:{SIMULATOR_PORT}/v1"
    stack.start("proxy", "proxy", "--port", str(PROXY_PORT), "--upstream-url", upstream)
    _wait_for_port(stack, "proxy", PROXY_PORT)
    stack.start("processors", "processors")
    click.echo(f"simulator {upstream} · proxy ws://127.0.0.1:{PROXY_PORT}/v1 · processors up")


def _place_calls(stack: Stack, sessions: int) -> None:
    """Scripted calls through the proxy: the US tenant's library, then one EU call."""
    target = f"ws://127.0.0.1:{PROXY_PORT}/v1"
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
