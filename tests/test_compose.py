"""docker-compose.yml: every VoxLedger service runs a real subcommand with settings we read."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from voxledger.cli import cli
from voxledger.config import env_var_names

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
VOXLEDGER_SERVICES = {
    name: service for name, service in COMPOSE["services"].items() if "build" in service
}


def resolve(command: list[str]) -> tuple[click.Command, list[str]]:
    """Walk the CLI as click would for `voxledger COMMAND...`: the command and its arguments."""
    ctx = click.Context(cli)
    found: click.Command = cli
    for index, word in enumerate(command):
        if not isinstance(found, click.Group) or word.startswith("-"):
            return found, command[index:]
        sub = found.get_command(ctx, word)
        assert sub is not None, f"`voxledger {' '.join(command)}`: no subcommand {word!r}"
        found = sub
    return found, []


def test_roles_run_the_voxledger_image() -> None:
    assert {"topics", "proxy", "processors", "sink", "dashboard"} <= set(VOXLEDGER_SERVICES)
    assert COMPOSE["services"]["kafka"]["image"].startswith("apache/kafka:")
    assert COMPOSE["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for service in VOXLEDGER_SERVICES.values():
        assert service["image"] == "voxledger:latest"


def test_every_command_is_a_real_subcommand_with_valid_options() -> None:
    for name, service in VOXLEDGER_SERVICES.items():
        command, args = resolve(service["command"])
        runs_alone = not isinstance(command, click.Group) or command.invoke_without_command
        assert runs_alone, f"{name}: command names a group only"
        command.make_context(name, args)  # raises on an unknown option or a bad value


def test_every_env_var_is_one_the_settings_read() -> None:
    known = env_var_names()
    for name, service in VOXLEDGER_SERVICES.items():
        for var in service.get("environment", {}):
            assert var in known, f"{name} sets {var}, which VoxLedger does not read"


def test_topics_service_runs_once_before_the_roles() -> None:
    assert VOXLEDGER_SERVICES["topics"]["command"] == ["topics", "create"]
    for name, service in VOXLEDGER_SERVICES.items():
        if name != "topics":
            assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_dockerfile_runs_the_voxledger_entry_point() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "FROM python:3.11" in dockerfile
    assert 'ENTRYPOINT ["voxledger"]' in dockerfile
    for layer in ("voxledger", "ingest", "processors", "warehouse", "dashboard"):
        assert f"COPY {layer} {layer}" in dockerfile
