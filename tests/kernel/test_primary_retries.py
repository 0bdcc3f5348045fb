"""PrimaryRetries, pure: which retry of a fallback's primary is armed, and when it is made."""

from __future__ import annotations

import doctest

from supervisor import fallback
from supervisor.fallback import PrimaryRetries, RetryPrimary


def test_the_examples_in_the_docstring_hold() -> None:
    result = doctest.testmod(fallback)
    assert result.failed == 0 and result.attempted > 0


def test_a_fallback_started_gets_one_retry_scheduled_and_no_second_while_it_is_armed() -> None:
    retries = PrimaryRetries()
    assert retries.arm("feed") == (RetryPrimary("feed", 1), False)
    assert retries.arm("feed") is None
    assert retries.arm("scanner") == (RetryPrimary("scanner", 2), False)


def test_only_the_retry_armed_last_is_taken() -> None:
    retries = PrimaryRetries()
    retries.arm("feed")
    assert retries.take(RetryPrimary("feed", 1))
    again = retries.arm("feed")  # its fallback ran again: a newer retry replaces it
    assert again == (RetryPrimary("feed", 2), False)
    assert not retries.take(RetryPrimary("feed", 1))  # the stale one
    assert retries.take(RetryPrimary("feed", 2))


def test_a_retry_due_while_the_fallback_is_down_is_made_at_once_when_it_runs_again() -> None:
    retries = PrimaryRetries()
    retries.arm("feed")
    assert retries.take(RetryPrimary("feed", 1))
    retries.wait("feed")  # the fallback was restarting when the retry fell due
    assert retries.arm("feed") == (RetryPrimary("feed", 2), True)  # now, not scheduled
    assert retries.arm("feed") is None


def test_a_forgotten_child_has_nothing_armed_or_due() -> None:
    retries = PrimaryRetries()
    retries.arm("feed")
    retries.wait("feed")
    retries.forget("feed")
    assert not retries.take(RetryPrimary("feed", 1))
    assert retries.arm("feed") == (RetryPrimary("feed", 2), False)
