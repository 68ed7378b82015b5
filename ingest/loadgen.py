"""Load generation: many scripted calls at once against the proxy, the simulator or OpenAI."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from voxledger.errors import VoxLedgerError
from voxledger.ingest.scenario_client import ScenarioResult, run_scenario
from voxledger.ingest.simulator import Scenario, load_scenario, scenario_names

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_TARGET",
    "LoadSummary",
    "LoadgenError",
    "SessionOutcome",
    "generate_load",
    "resolve_scenarios",
]

DEFAULT_TARGET = "ws://127.0.0.1:8080/v1"  # the proxy, as `voxledger proxy` starts it
DEFAULT_API_KEY = "vx-demo-us"  # the demo config's US tenant


class LoadgenError(VoxLedgerError):
    """The load cannot be generated as asked."""


@dataclass(frozen=True)
class SessionOutcome:
    """How one scripted call went; `failure` is None when it played to the end."""

    number: int
    scenario: str
    result: ScenarioResult | None
    failure: str | None

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass
class LoadSummary:
    """Totals over every call of a load run."""

    target: str
    planned: int
    outcomes: list[SessionOutcome] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> int:
        return sum(o.ok for o in self.outcomes)

    @property
    def failed(self) -> int:
        return len(self.outcomes) - self.ok

    @property
    def not_run(self) -> int:
        """Calls never finished because the run was stopped."""
        return self.planned - len(self.outcomes)

    @property
    def frames_sent(self) -> int:
        return sum(o.result.client_events_sent for o in self.outcomes if o.result)

    @property
    def frames_received(self) -> int:
        return sum(o.result.events_received for o in self.outcomes if o.result)

    @property
    def server_errors(self) -> int:
        """`error` events the server sent (some scenarios provoke them on purpose)."""
        return sum(len(o.result.errors) for o in self.outcomes if o.result)

    def failures(self) -> Counter[str]:
        return Counter(o.failure for o in self.outcomes if o.failure)

    def text(self) -> str:
        lines = [
            f"{self.planned} sessions against {self.target} in {self.elapsed_s:.1f} s: "
            f"{self.ok} ok, {self.failed} failed"
            + (f", {self.not_run} not run (stopped)" if self.not_run else ""),
            f"frames: {self.frames_sent} sent, {self.frames_received} received; "
            f"server error events: {self.server_errors}",
        ]
        for reason, count in self.failures().most_common(5):
            lines.append(f"  {count}× {reason}")
        return "\n".join(lines)


def resolve_scenarios(names: Sequence[str]) -> list[Scenario]:
    """Scenarios by name or YAML path; none given means every shipped one, in turn."""
    return [load_scenario(name) for name in (names or scenario_names())]


async def generate_load(
    *,
    sessions: int,
    duration_s: float,
    scenarios: Sequence[Scenario],
    target: str = DEFAULT_TARGET,
    api_key: str = DEFAULT_API_KEY,
    concurrency: int | None = None,
    fast: bool = False,
    stop: asyncio.Event | None = None,
    on_done: Callable[[SessionOutcome], None] | None = None,
) -> LoadSummary:
    """Play `sessions` scripted calls, their starts spread evenly over `duration_s` seconds.

    Scenarios are used in turn; at most `concurrency` calls run at once (no limit if None).
    Audio is streamed in real time (20 ms chunks) unless `fast`. Setting `stop` cancels the
    calls still running; they count as not run.
    """
    if sessions < 1 or duration_s < 0 or not scenarios:
        raise LoadgenError("need at least one session, one scenario and a duration of 0 s or more")
    summary = LoadSummary(target, sessions)
    gate = asyncio.Semaphore(concurrency or sessions)
    started = time.monotonic()

    async def one(number: int) -> None:
        # Calls arrive at a steady rate, as they would at a contact centre.
        await asyncio.sleep(duration_s * number / sessions)
        async with gate:
            scenario = scenarios[number % len(scenarios)]
            outcome = await _play(number, scenario, target, api_key, fast)
        summary.outcomes.append(outcome)
        if on_done:
            on_done(outcome)

    calls = [asyncio.create_task(one(n)) for n in range(sessions)]
    await _until_done_or_stopped(calls, stop)
    summary.elapsed_s = time.monotonic() - started
    summary.outcomes.sort(key=lambda o: o.number)
    return summary


async def _play(
    number: int, scenario: Scenario, target: str, api_key: str, fast: bool
) -> SessionOutcome:
    try:
        result = await run_scenario(scenario, base_url=target, api_key=api_key, fast=fast)
    except Exception as exc:  # one call failing must not stop the others
        return SessionOutcome(number, scenario.name, None, _describe(exc))
    failure = None if result.completed else (result.aborted or "did not finish")
    return SessionOutcome(number, scenario.name, result, failure)


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


async def _until_done_or_stopped(
    calls: list[asyncio.Task[None]], stop: asyncio.Event | None
) -> None:
    all_done = asyncio.create_task(asyncio.wait(calls))
    stopping = asyncio.create_task((stop or asyncio.Event()).wait())
    await asyncio.wait({all_done, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for task in (*calls, stopping, all_done):
        task.cancel()  # finished ones ignore it; a stop cancels the calls still running
    results = await asyncio.gather(*calls, stopping, all_done, return_exceptions=True)
    failure = next((r for r in results if isinstance(r, Exception)), None)
    if failure is not None:
        raise failure  # a bug in the generator itself, not a failed call
