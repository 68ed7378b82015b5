"""Stop the broker for 10 s: calls placed meanwhile are spooled, drained, processed, landed."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

SESSIONS = 20  # enough to have sessions in flight at the fault, under ~3 min
CONCURRENCY = 5


@pytest.mark.timeout(420)
def test_calls_placed_while_the_broker_is_down_land_once_it_is_back(
    chaos: ModuleType, tmp_path: Path
) -> None:
    outcome = chaos.broker_outage(tmp_path, SESSIONS, CONCURRENCY)
    reconciled = outcome.details["reconciled"]
    print(chaos.table([outcome]))
    before, kept = outcome.details["landed_before"]
    print(f"events rows landed before the outage: {before}, still in the warehouse: {kept}")
    # The broker forgot them; the warehouse keeps them (the sink archives a reset log's files).
    assert before > 0 and kept == before

    assert outcome.details["down_s"] >= 10
    assert outcome.details["load"] == (SESSIONS, 0)  # the proxy never refused a call
    assert outcome.details["spooling"]  # ...because it spooled them
    # tansu keeps nothing across a restart: the topics hold exactly the drained spool, and
    # reconcile --since the outage covers exactly those calls.
    assert reconciled.returncode == 0, reconciled.output
    assert len(reconciled.result.sessions) == SESSIONS
    assert all(s.closed for s in reconciled.result.sessions)
    assert outcome.lost == 0 and outcome.duplicates == 0
    # The harness saw every session the proxy accepted land before its deadline.
    assert outcome.recovery_s is not None, "not caught up; see the warning on stderr"
