"""The `voxledger` command: one subcommand per job, each a thin wrapper over a library function."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from voxledger.errors import VoxLedgerError

# Subcommands living in the layers, imported only when used so `voxledger --help` stays fast.
LAYER_COMMANDS: dict[str, str] = {
    "proxy": "voxledger.ingest.proxy_cli:command",
    "simulate-upstream": "voxledger.ingest.simulator.cli:command",
    "import": "voxledger.ingest.commands:import_command",
    "attach": "voxledger.ingest.commands:attach_command",
    "loadgen": "voxledger.ingest.commands:loadgen_command",
    "redact": "voxledger.processors.redaction_cli:redact_command",
    "eval": "voxledger.processors.redaction_cli:eval_group",
    "processors": "voxledger.processors.cli:command",
    "policy": "voxledger.processors.policy_cli:policy_group",
    "cost": "voxledger.processors.cost_cli:cost_command",
    "prices": "voxledger.processors.cost_cli:prices_group",
    "sql": "voxledger.warehouse.cli:sql_command",
    "session": "voxledger.warehouse.cli:session_group",
    "warehouse": "voxledger.warehouse.cli:warehouse_group",
    "sink": "voxledger.warehouse.sink_cli:sink_command",
    "compact": "voxledger.warehouse.sink_cli:compact_command",
    "rebuild": "voxledger.warehouse.sink_cli:rebuild_command",
    "erase": "voxledger.warehouse.sink_cli:erase_command",
    "reconcile": "voxledger.warehouse.reconcile_cli:reconcile_command",
    "dashboard": "voxledger.dashboard.cli:command",
}


class UserError(click.ClickException):
    """A mistake the user can fix: one sentence, exit code 2, never a traceback."""

    exit_code = 2


class VoxLedgerGroup(click.Group):
    """Loads layer commands lazily and turns VoxLedgerError into a clear exit-2 message."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAYER_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAYER_COMMANDS:
            module_name, attr = LAYER_COMMANDS[name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VoxLedgerError as exc:
            raise UserError(str(exc)) from None


@click.group(cls=VoxLedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="voxledger")
def cli() -> None:
    """VoxLedger: audit, cost and compliance for voice AI agents on the OpenAI Realtime API."""


def settings():
    from voxledger.config import load_settings

    return load_settings()


# -- broker -------------------------------------------------------------------------------------


@cli.group()
def broker() -> None:
    """Run the embedded Kafka-protocol broker (tansu, memory only) for dev, demos and tests."""


@broker.command("start")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on [default: 9092].")
def broker_start(port: int | None) -> None:
    """Start the broker in the background and create every configured topic."""
    from voxledger.broker import start_broker

    state, topics = start_broker(settings(), port)
    click.echo(f"broker up at {state.bootstrap_servers} (pid {state.pid}, log {state.log_file})")
    _print_topics(topics)


@broker.command("status")
def broker_status() -> None:
    """Show the broker and each topic with its partitions; exit 1 when the broker is down."""
    from voxledger.broker import running_broker
    from voxledger.errors import BrokerError
    from voxledger.kafka import bootstrap_servers
    from voxledger.topics import describe_topics

    current = settings()
    embedded = running_broker(current)
    where = bootstrap_servers(current)
    try:
        topics = describe_topics(current)
    except BrokerError as exc:
        click.echo(f"broker down: {exc}", err=True)
        sys.exit(1)
    kind = f"embedded tansu, pid {embedded.pid}" if embedded else "external Kafka"
    click.echo(f"broker up at {where} ({kind})")
    _print_topics(topics)


@broker.command("stop")
def broker_stop() -> None:
    """Stop the embedded broker; nothing of it keeps running."""
    from voxledger.broker import stop_broker

    state = stop_broker(settings())
    click.echo(f"broker stopped (pid {state.pid})" if state else "no embedded broker was running")


# -- topics -------------------------------------------------------------------------------------


@cli.group()
def topics() -> None:
    """Manage VoxLedger's Kafka topics."""


@topics.command("create")
def topics_create() -> None:
    """Create every configured topic with its partition count (safe to run again)."""
    from voxledger.topics import ensure_topics

    _print_topics(ensure_topics(settings()))


@topics.command("list")
def topics_list() -> None:
    """List the configured topics and their partitions on the broker."""
    from voxledger.topics import describe_topics

    _print_topics(describe_topics(settings()))


def _print_topics(states: list[Any]) -> None:
    width = max(len(s.name) for s in states)
    click.echo(f"{'topic'.ljust(width)}  partitions")
    for s in states:
        shown = "missing" if s.partitions is None else str(s.partitions)
        click.echo(f"{s.name.ljust(width)}  {shown}{'  (created)' if s.created else ''}")


# -- config -------------------------------------------------------------------------------------


@cli.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
def config_show() -> None:
    """Print the settings in effect as JSON (secrets masked)."""
    click.echo(settings().model_dump_json(indent=2))


@config.command("hash-key")
@click.argument("client_key")
def config_hash_key(client_key: str) -> None:
    """Print the client_key_sha256 to store in a tenant's config for CLIENT_KEY."""
    from voxledger.config import hash_client_key

    click.echo(hash_client_key(client_key))


# -- demo ---------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--sessions",
    type=click.IntRange(1),
    default=15,
    show_default=True,
    help="Scripted calls to place: the scenario library in turn, plus one EU call.",
)
@click.option(
    "--exit-when-done/--serve",
    default=False,
    help="Stop everything once the run is over instead of serving until Ctrl-C.",
)
@click.option("--proxy-port", type=int, default=8080, show_default=True)
@click.option("--simulator-port", type=int, default=8765, show_default=True)
@click.option("--dashboard-port", type=int, default=8501, show_default=True)
def demo(
    sessions: int, exit_when_done: bool, proxy_port: int, simulator_port: int, dashboard_port: int
) -> None:
    """Run the main job end to end on the embedded default."""
    from voxledger.demo import Ports, run_demo

    ports = Ports(simulator=simulator_port, proxy=proxy_port, dashboard=dashboard_port)
    run_demo(settings(), sessions=sessions, serve=not exit_when_done, ports=ports)


def main() -> None:
    cli(prog_name="voxledger")
