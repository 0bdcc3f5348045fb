"""Process torture (issue 15, deliverable 4), the short version: ``botvisor run`` as a real
subprocess killed with SIGKILL at random moments, SIGSTOPped and continued, beside a
second instance, over deleted or damaged state files, on a full or read-only disk. After
each scenario the offline audit must find the ledger, the sources and the exchange record
agreeing, or the bot must have refused to trade and said why (tests/support/torture.py).

Scenarios that fail today because of a bug another change fixes are marked
``xfail(strict=True)`` with the issue item: when the fix lands the mark must go.
bench/reliability.py runs the same scenarios at a larger scale.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import torture
from tests.support.torture import Outcome, Rig


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Rig:
    """One rig that has traded a little and stopped cleanly: the state every test starts
    from (copied), so each test pays for its own faults only."""
    rig = Rig.create(tmp_path_factory.mktemp("torture-warm"))
    torture.warm_up(rig)
    return rig


@pytest.fixture
def rig(warm: Rig, tmp_path: Path) -> Rig:
    fresh = Rig.create(tmp_path / "rig")
    fresh.copy_state_from(warm)
    return fresh


def check(outcome: Outcome) -> None:
    print("\n" + outcome.describe().split("\n  last output:")[0])
    if outcome.recoveries:
        print(f"  recovery (start to serving): {[round(r, 2) for r in outcome.recoveries]} s")
    assert outcome.ok, outcome.describe()


def test_sigkill_at_random_moments_loses_nothing(rig: Rig) -> None:
    outcome = torture.kill_storm(rig, kills=3, seed=11)
    assert outcome.kills == 3 and outcome.recoveries
    check(outcome)
    assert outcome.audit is not None and outcome.audit.fills_checked > 0


def test_sigstop_and_sigcont_lose_nothing(rig: Rig) -> None:
    check(torture.stop_and_continue(rig, pauses=2, seed=5, max_pause=1.5))


def test_a_second_instance_is_refused_and_the_first_trades_on(rig: Rig) -> None:
    check(torture.second_instance(rig))


def test_damaged_projections_are_rebuilt_from_the_ledger_and_named(rig: Rig) -> None:
    """All three at once (one run): a truncated trade_manager.json, a garbled
    paper_wallet.yaml, a garbled middle line of positions.log."""
    check(torture.damaged_state(rig, damages=(
        ("trade_manager.json", "truncate"), ("paper_wallet.yaml", "garble"),
        ("positions.log", "garble_middle_line"))))


@pytest.mark.parametrize(("filename", "how"), [
    ("breaker.db", "delete"), ("ledger.db", "delete"), ("paper_exchange.db", "delete")])
def test_lost_state_is_named_and_then_agrees_or_the_bot_refuses(rig: Rig, filename: str,
                                                                how: str) -> None:
    """The run after the loss names the file in a warning, and then the state agrees or
    the bot refuses to trade and says why."""
    check(torture.damaged_state(rig, filename=filename, how=how))


def test_a_read_only_state_directory_is_an_io_failure_not_a_signal(rig: Rig) -> None:
    try:
        outcome = torture.read_only_state(rig, hold=1.0)
    except torture.MountUnavailable as exc:
        pytest.skip(f"mount not permitted: {exc}")
    check(outcome)


def test_a_full_disk_is_an_io_failure_and_nothing_acknowledged_is_lost(rig: Rig) -> None:
    try:
        outcome = torture.full_disk(rig, hold=1.0)
    except torture.MountUnavailable as exc:
        pytest.skip(f"mount not permitted: {exc}")
    check(outcome)
