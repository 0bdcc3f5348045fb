"""The executor's venue sync phases (SYNC_TABLE in actors/execution/venue_sync.py), pure:
no runtime."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from actors.execution.orders import IllegalTransition
from actors.execution.venue_sync import SYNC_TABLE, SyncEvent, SyncPhase, next_sync_phase

pytestmark = pytest.mark.unit

S = SyncPhase
V = SyncEvent


@pytest.mark.parametrize(("phase", "event", "target"), [
    (S.IDLE, V.WANT, S.WANTED),  # the start, a SyncVenue, the retry timer
    (S.WANTED, V.WANT, S.WANTED),  # asked twice before it starts: one sync
    (S.WANTED, V.START, S.RUNNING),
    (S.RUNNING, V.WANT, S.RUNNING_AGAIN),  # asked while one runs: another after it
    (S.RUNNING, V.DONE, S.IDLE),
    (S.RUNNING, V.FAILED, S.IDLE),
    (S.RUNNING_AGAIN, V.DONE, S.WANTED),
    (S.RUNNING_AGAIN, V.FAILED, S.WANTED),
])
def test_the_sync_table_moves_each_phase_by_its_events(
        phase: SyncPhase, event: SyncEvent, target: SyncPhase) -> None:
    assert next_sync_phase(phase, event) is target


@pytest.mark.parametrize(("phase", "event"), [
    (S.IDLE, V.START),  # a sync starts only once wanted
    (S.RUNNING, V.START),  # never two at once
    (S.RUNNING_AGAIN, V.START),
    (S.IDLE, V.DONE),  # an answer to no sync
    (S.WANTED, V.FAILED),
])
def test_a_sync_event_the_table_does_not_allow_raises(phase: SyncPhase, event: SyncEvent) -> None:
    with pytest.raises(IllegalTransition, match=f"venue sync: {event.value} is not allowed"):
        next_sync_phase(phase, event)


def test_every_sync_phase_is_reached_and_leads_back_to_idle() -> None:
    assert set(SYNC_TABLE.values()) == set(SyncPhase)
    back = {S.IDLE}
    while True:
        more = {p for (p, _), t in SYNC_TABLE.items() if t in back} - back
        if not more:
            break
        back |= more
    assert back == set(SyncPhase)


def test_the_diagram_in_the_docs_draws_the_sync_table() -> None:
    """docs/state-machines.md ("The venue sync") draws every move of the table, no other."""
    page = (Path(__file__).parents[2] / "docs" / "state-machines.md").read_text()
    block = page.split("## The venue sync", 1)[1].split("```mermaid", 1)[1].split("```", 1)[0]
    drawn = {(S(a), V(e), S(b))
             for a, b, e in re.findall(r"^\s*(\w+) --> (\w+): (\w+)", block, re.M)}
    assert drawn == {(p, e, t) for (p, e), t in SYNC_TABLE.items()}
