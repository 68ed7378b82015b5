"""A full spool quota: new sessions refused with a clear reason, nothing dropped silently."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

SESSIONS = 20  # enough to have sessions in flight at the fault, under ~3 min
CONCURRENCY = 5


@pytest.mark.timeout(420)
def test_a_full_spool_refuses_new_sessions_and_keeps_every_accepted_event(
    chaos: ModuleType, tmp_path: Path
) -> None:
    outcome = chaos.spool_full(tmp_path, SESSIONS, CONCURRENCY, spool_max_bytes=512 * 1024)
    reconciled = outcome.details["reconciled"]
    print(chaos.table([outcome]))
    before, kept = outcome.details["landed_before"]
    print(f"events rows landed before the outage: {before}, still in the warehouse: {kept}")
    # The broker forgot them; the warehouse keeps them (the sink archives a reset log's files).
    assert before > 0 and kept == before

    accepted, refused = outcome.details["load"]
    assert accepted > 0 and refused > 0 and accepted + refused == SESSIONS
    # Each refusal is a 1013 close with the reason (the SDK's callers see the close; the
    # load generator reports them as closed before session.created), logged by the proxy.
    refusal = "session rejected: try again later: the capture spool is full (close 1013)"
    assert outcome.details["proxy_log"].count(refusal) == refused
    assert outcome.details["full_logged"]  # "spool full ...; refusing new sessions ..."
    # Every accepted call was spooled in full (the quota refuses sessions, never events):
    # nothing counted unpublished, and all of it landed once the broker was back.
    closed = [e for e in outcome.details["raw"] if e["type"] == "voxledger.session.closed"]
    assert len(closed) == accepted
    assert all(not e["payload"].get("unpublished") for e in closed)
    assert reconciled.returncode == 0, reconciled.output
    assert len(reconciled.result.sessions) == accepted
    assert outcome.lost == 0 and outcome.duplicates == 0
    # The harness saw every session the proxy accepted land before its deadline.
    assert outcome.recovery_s is not None, "not caught up; see the warning on stderr"
