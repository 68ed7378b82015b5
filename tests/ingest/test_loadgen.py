"""Load generator: a small fast run against the simulator completes and reports correctly."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from voxledger.cli import cli
from voxledger.ingest.loadgen import generate_load, resolve_scenarios
from voxledger.ingest.simulator import start_simulator

BENCH = Path(__file__).resolve().parents[2] / "bench" / "proxy_latency.py"


@pytest.fixture(scope="module")
def simulator_url() -> Iterator[str]:
    """The simulator on a loop of its own, so the CLI's asyncio.run can drive calls against it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(start_simulator(port=0, fast=True), loop).result(30)
    try:
        yield server.url
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_two_fast_sessions_through_the_library(simulator_url: str) -> None:
    scenarios = resolve_scenarios(["disclosure_de", "beta_preview_en"])
    finished: list[int] = []
    summary = asyncio.run(
        generate_load(
            sessions=2,
            duration_s=0,
            scenarios=scenarios,
            target=simulator_url,
            api_key="sk-test",
            fast=True,
            on_done=lambda outcome: finished.append(outcome.number),
        )
    )
    assert (summary.ok, summary.failed, summary.not_run) == (2, 0, 0)
    assert sorted(finished) == [0, 1]
    assert [o.scenario for o in summary.outcomes] == ["disclosure_de", "beta_preview_en"]
    results = [o.result for o in summary.outcomes]
    assert all(r is not None and r.completed for r in results)
    assert summary.frames_sent == sum(r.client_events_sent for r in results) > 0
    assert summary.frames_received == sum(r.events_received for r in results) > 0
    # The beta call spoke the beta dialect end to end.
    assert results[1].event_counts["response.audio.delta"] > 0


def test_cli_summary(simulator_url: str) -> None:
    result = invoke(
        "loadgen", "--sessions", "2", "--duration", "0", "--fast",
        "--scenario", "refund_over_limit_en", "--target", simulator_url, "--api-key", "sk-test",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert re.fullmatch(
        rf"2 sessions against {re.escape(simulator_url)} in \d+\.\d s: 2 ok, 0 failed", lines[0]
    )
    sent, received = map(int, re.fullmatch(
        r"frames: (\d+) sent, (\d+) received; server error events: 0", lines[1]
    ).groups())  # fmt: skip
    assert sent > 0 and received > 0
    assert len(lines) == 2


def test_failed_sessions_are_counted_with_their_reason() -> None:
    result = invoke(
        "loadgen", "--sessions", "2", "--duration", "0", "--fast",
        "--scenario", "disclosure_de", "--target", "ws://127.0.0.1:9/v1",
    )  # fmt: skip
    assert result.exit_code == 1  # scripts can tell a run with failures
    lines = result.stdout.splitlines()
    assert lines[0].endswith(": 0 ok, 2 failed")
    assert lines[2].startswith("  2× ")


def test_unknown_scenario_is_a_clear_error() -> None:
    result = invoke("loadgen", "--scenario", "no_such_call")
    assert result.exit_code == 2
    assert "unknown scenario 'no_such_call'" in result.output


def test_proxy_latency_bench_quick_mode() -> None:
    # The benchmark drives the load generator through a real proxy, broker and simulator.
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [line for line in run.stdout.splitlines() if re.match(r"\| \d+", line)]
    assert [row.split("|")[1].split()[0] for row in rows] == ["1", "5"]
    assert all(row.rstrip().endswith("| 0 / 0 |") for row in rows)  # every call played through
    assert "command: .venv/bin/python bench/proxy_latency.py --quick" in run.stdout
