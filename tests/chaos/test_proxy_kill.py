"""kill -9 the proxy: cut sessions are open and gap-free in raw, not broken; it restarts."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

SESSIONS = 20  # enough to have sessions in flight at the fault, under ~3 min
CONCURRENCY = 5


@pytest.mark.timeout(420)
def test_killing_the_proxy_loses_nothing_a_client_received(
    chaos: ModuleType, tmp_path: Path
) -> None:
    outcome = chaos.proxy_kill(tmp_path, SESSIONS, CONCURRENCY)
    reconciled = outcome.details["reconciled"]
    print(chaos.table([outcome]))

    # The relay sends each frame on, then hands it to capture, and never waits for capture:
    # its last loop turn's frames, and what it held beyond the pipe (capture lagging), die
    # with it. So of what a recording client got, raw holds each call's beginning, no hole.
    assert outcome.details["recorded"], "the recording calls were under way at the kill"
    assert outcome.details["recorded_holes"] == []
    print(f"events clients received but raw lacks: {len(outcome.details['recorded_missing'])}")
    # A call accepted just before the kill can be lost whole (all it had for capture still
    # in the proxy's buffers): reconcile cannot list what raw never saw; the proxy log can.
    print(f"calls accepted, not one envelope in raw: {outcome.accepted - outcome.sessions}")
    # The capture child saw end of input, published what it had, and exited.
    assert outcome.details["capture_pids"]
    # Sessions the kill cut: no closed marker, seqs gap-free from 0; listed open, not broken.
    cut = [s for s in reconciled.result.sessions if not s.closed]
    assert cut
    for session in cut:
        assert sorted(session.raw_seqs) == list(range(len(session.raw_seqs))), session.session_id
    assert reconciled.returncode == 0, reconciled.output
    assert reconciled.summary.endswith(f"{len(cut)} still open")
    assert outcome.lost == 0 and outcome.duplicates == 0
    # The restarted proxy serves new calls.
    assert outcome.details["after"] == (5, 0)
    # The harness saw every session the proxy accepted land before its deadline.
    assert outcome.recovery_s is not None, "not caught up; see the warning on stderr"
