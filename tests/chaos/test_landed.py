"""The harness's wait for the warehouse: which of reconcile's problems mean "not landed yet".

The chaos scenarios wait until `not_landed` is empty for every session the proxy accepted;
reconcile then judges the rest. These pin the split on reconcile's own messages, so a
rewording there cannot make the wait end early.
"""

from __future__ import annotations

from types import ModuleType

from voxledger.warehouse.reconcile import SessionTally


def landed_session(**fields: object) -> SessionTally:
    """A closed session of 4 frames (+2 markers) present in every stage."""
    ids = {f"e{i}" for i in range(6)}
    session = SessionTally(
        "s1",
        relayed=4,
        closed=True,
        raw_seqs=list(range(6)),
        raw_ids=set(ids),
        redacted_ids=set(ids),
        responses_done={"r1"},
        events_rows=6,
        events_distinct=6,
        costed={"r1"},
        verdict="pass",
    )
    for name, value in fields.items():
        setattr(session, name, value)
    return session


def test_a_session_in_every_stage_has_landed(chaos: ModuleType) -> None:
    assert chaos.not_landed(landed_session()) == []


def test_a_session_the_sink_has_not_seen_has_not_landed(chaos: ModuleType) -> None:
    # The flake of issue 10: redacted, but no row in `events`, no cost row, no verdict yet.
    session = landed_session(events_rows=0, events_distinct=0, costed=set(), verdict=None)
    assert chaos.not_landed(session) == [
        "events table 0 ≠ redacted 6",
        "1 response.done without a cost row",
        "closed without a verdict",
    ]


def test_a_session_the_processors_are_still_on_has_not_landed(chaos: ModuleType) -> None:
    session = landed_session(redacted_ids={"e0", "e1"}, events_rows=2, events_distinct=2)
    assert chaos.not_landed(session) == ["raw 6 ≠ redacted 2 + dead letters 0"]


def test_what_capture_lost_or_doubled_is_left_to_reconcile(chaos: ModuleType) -> None:
    # Seqs 2 and 3 never reached raw (capture died), seq 5 twice, a row twice: no wait fixes
    # these, so the session counts as landed and reconcile reports them.
    ids = {"e0", "e1", "e4", "e5"}
    session = landed_session(
        relayed=6,
        capture_lost=True,
        raw_seqs=[0, 1, 4, 5, 5],
        raw_ids=ids,
        redacted_ids=ids,
        events_rows=5,
        events_distinct=4,
    )
    assert len(session.problems()) == 4
    assert chaos.not_landed(session) == []
