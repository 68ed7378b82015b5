"""Test helpers: free ports, reading topics from the start without a consumer group, and
`voxledger processors` as a child process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from voxledger.config import Settings
from voxledger.kafka import client_config

DEADLINE_S = 60.0
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_topic(
    settings: Settings,
    topic: str,
    until: Callable[[list[Any]], bool] | int,
    decode: Callable[[bytes], Any] = json.loads,
    deadline_s: float = DEADLINE_S,
    *,
    keyed: bool = False,
) -> list[Any]:
    """Decoded messages of every partition of `topic`, until a count or `until(found)` holds.

    With `keyed`, each is a `(key, decoded value)` pair, for tests that check the message key.
    Returns what arrived by the deadline; the caller asserts on it.
    """
    done = (lambda found: len(found) >= until) if isinstance(until, int) else until
    consumer = Consumer(client_config(settings, **{"group.id": "unused", "log_level": 0}))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    found: list[Any] = []
    deadline = time.monotonic() + deadline_s
    try:
        while not done(found) and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                value = decode(message.value())
                found.append((message.key(), value) if keyed else value)
    finally:
        consumer.close()
    return found


class Processors:
    """`voxledger processors` as a child process, with its log kept for failures."""

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "voxledger", "processors"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=60)
