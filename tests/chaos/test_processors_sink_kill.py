"""kill -9 the processors and the sink mid-batch, restart them: nothing lost, nothing doubled."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

SESSIONS = 20  # enough to have sessions in flight at the fault, under ~3 min
CONCURRENCY = 5


@pytest.mark.timeout(420)
def test_killed_consumers_resume_without_loss_or_duplicates(
    chaos: ModuleType, tmp_path: Path
) -> None:
    outcome = chaos.processors_sink_kill(tmp_path, SESSIONS, CONCURRENCY)
    reconciled = outcome.details["reconciled"]
    print(chaos.table([outcome]))

    # Killed right after the sink's first file, while the processors still had work.
    print(f"calls still being placed at the kill: {outcome.details['load_running']}")
    assert reconciled.returncode == 0, reconciled.output
    assert len(reconciled.result.sessions) == SESSIONS
    assert outcome.lost == 0 and outcome.duplicates == 0
    # The harness saw every session the proxy accepted land before its deadline.
    assert outcome.recovery_s is not None, "not caught up; see the warning on stderr"
