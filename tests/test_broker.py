"""The embedded broker's lifecycle, driven through the CLI as a user would."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import free_port

from voxledger.cli import cli

TOPICS = [
    "voxledger.events.raw",
    "voxledger.events.redacted",
    "voxledger.findings",
    "voxledger.costs",
    "voxledger.deadletter",
]


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and ") Z" not in stat.read_text()


def test_start_status_stop(demo_env: Path) -> None:
    port = free_port()
    started = run("broker", "start", "--port", str(port))
    assert started.exit_code == 0, started.output
    assert f"broker up at 127.0.0.1:{port}" in started.output
    state_file = demo_env / "data" / "broker" / "broker.json"
    pid = json.loads(state_file.read_text())["pid"]
    try:
        status = run("broker", "status")
        assert status.exit_code == 0, status.output
        listed = {line.split()[0]: line.split()[1] for line in status.output.splitlines()[2:]}
        assert listed == dict.fromkeys(TOPICS, "4")
        again = run("broker", "start", "--port", str(free_port()))
        assert again.exit_code == 2
        assert "already running" in again.output
    finally:
        stopped = run("broker", "stop")
    assert stopped.exit_code == 0 and f"pid {pid}" in stopped.output
    assert not alive(pid)
    assert not state_file.exists()
    assert run("broker", "stop").output.strip() == "no embedded broker was running"


def test_status_when_down_exits_nonzero(demo_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXLEDGER_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    result = run("broker", "status")
    assert result.exit_code == 1
    assert "broker down" in result.output
    assert "Traceback" not in result.output


def test_port_taken_is_a_clear_error(demo_env: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = run("broker", "start", "--port", str(port))
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert not (demo_env / "data" / "broker" / "broker.json").exists()


def test_missing_binary_is_a_clear_error(demo_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", str(demo_env / "no-such-tansu"))
    result = run("broker", "start", "--port", str(free_port()))
    assert result.exit_code == 2
    assert "tansu broker binary is missing" in result.output


def test_external_kafka_is_used_when_configured(
    kafka: str, demo_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXLEDGER_BOOTSTRAP_SERVERS", kafka)
    monkeypatch.setenv("VOXLEDGER_TOPICS__COSTS__NAME", "external.costs")
    created = run("topics", "create")
    assert created.exit_code == 0, created.output
    status = run("broker", "status")
    assert status.exit_code == 0
    assert f"broker up at {kafka} (external Kafka)" in status.output
    assert "external.costs" in status.output


def test_partition_mismatch_is_refused(
    kafka: str, demo_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXLEDGER_BOOTSTRAP_SERVERS", kafka)
    monkeypatch.setenv("VOXLEDGER_TOPICS__FINDINGS__NAME", "mismatch.findings")
    assert run("topics", "create").exit_code == 0
    monkeypatch.setenv("VOXLEDGER_TOPICS__FINDINGS__PARTITIONS", "2")
    result = run("topics", "create")
    assert result.exit_code == 2
    assert "mismatch.findings has 4 partitions, the configuration says 2" in result.output
