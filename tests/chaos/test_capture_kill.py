"""kill -9 the proxy's capture process: supervised restart, and an exactly reported shortfall."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

SESSIONS = 20  # enough to have sessions in flight at the fault, under ~3 min
CONCURRENCY = 5


@pytest.mark.timeout(420)
def test_a_dead_capture_process_is_restarted_and_its_loss_named_exactly(
    chaos: ModuleType, tmp_path: Path
) -> None:
    outcome = chaos.capture_kill(tmp_path, SESSIONS, CONCURRENCY)
    reconciled = outcome.details["reconciled"]
    print(chaos.table([outcome]))
    sessions = reconciled.result.sessions

    # The proxy noticed, closed the sessions in flight with 1012 so clients reconnect, and
    # captures new sessions again.
    assert "received 1012" in outcome.details["load_text"]
    assert "capture process died" in outcome.details["proxy_log"]
    assert outcome.details["after"] == (5, 0)

    # Each session the dead process had is closed by a marker the new one published, counting
    # every frame relayed: what is not in raw is exactly its missing seqs, named by reconcile.
    lost = [s for s in sessions if s.capture_lost]
    assert lost
    assert all(s.closed for s in sessions)
    for session in lost:
        distinct = set(session.raw_seqs)
        assert len(distinct) == len(session.raw_seqs)  # no duplicates
        assert len(distinct) + len(session.missing_seqs()) == session.relayed + 2
        for problem in session.problems():
            assert problem.startswith(("proxy relayed", "missing seqs")), problem
            assert "capture process died" in problem
    short = [s for s in lost if s.problems()]
    assert {s.session_id for s in reconciled.result.mismatched} == {s.session_id for s in short}
    assert reconciled.returncode == (1 if short else 0), reconciled.output
    for session in short:
        assert session.session_id in reconciled.output
    assert outcome.lost == sum(len(s.missing_seqs()) for s in lost)
    assert outcome.duplicates == 0
    # The harness saw every session the proxy accepted land before its deadline.
    assert outcome.recovery_s is not None, "not caught up; see the warning on stderr"
