"""The websocket worker's rule for fetching by REST what the stream has not brought: the same
candle waited for a whole check interval (pure; the worker's checks call it)."""

from __future__ import annotations

import pytest

from actors.market.ws_feed import stuck_for_an_interval

pytestmark = pytest.mark.unit

MIN = 60_000


def test_a_candle_waited_for_over_two_checks_is_fetched() -> None:
    due, stuck = stuck_for_an_interval({("A", 0)}, [("A", 0)])
    assert due == {"A"} and stuck == {("A", 0)}


def test_a_stream_that_moved_on_between_checks_is_not_fetched() -> None:
    """Each check finds the symbol waiting for a later candle than the last did: the stream
    delivers, so nothing is fetched (a rule by symbol alone fetched every symbol of a busy
    stream at every check)."""
    stuck: set[tuple[str, int]] = set()
    fetched: set[str] = set()
    for k in range(10):
        due, stuck = stuck_for_an_interval(stuck, [("A", k * MIN), ("B", k * MIN)])
        fetched |= due
    assert fetched == set()


def test_the_first_check_fetches_nothing_and_what_arrived_is_forgotten() -> None:
    due, stuck = stuck_for_an_interval(set(), [("A", 0), ("B", 0)])
    assert due == set()
    due, stuck = stuck_for_an_interval(stuck, [("B", 0)])  # A's candle came meanwhile
    assert due == {"B"} and stuck == {("B", 0)}
