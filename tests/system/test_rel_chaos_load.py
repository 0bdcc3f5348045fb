"""Chaos under load (issue 15, deliverable 3): the shipped tree paper-trades the built-in
market at 1,000 bars a second with faults in every actor for a fixed number of steps,
and afterwards every invariant holds (see actors/reliability/chaos_load.py for what the run changes
from config.yaml, and why). The audit is checked too, on damaged copies of the run's
files, so a clean result cannot come from a check that sees nothing.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from actors.reliability.audit import audit_state
from actors.reliability.chaos_load import audit, run_chaos_load
from tests.support.bot_helpers import executor_stats, start_tree, wait_until

TICKS = 2000
MARKET_START = 1_767_225_600.0  # the synthetic market's first bar (2026-01-01T00:00:00Z)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    work = tmp_path_factory.mktemp("chaos-load")
    return run_chaos_load(TICKS, seed=2, workdir=work, io_rate=0.05), work


def test_every_invariant_holds_under_faults_in_every_actor(
        run: tuple[dict[str, Any], Path]) -> None:
    result, _state = run
    assert result["violations"] == []
    assert result["steps"] == TICKS
    assert result["tree_up"] and result["exit_code"] is None
    # faults of each kind were injected, across the tree, and each restart-classified
    # one was followed by a restart (rest_for_one restarts more than the faulted actor)
    faults: dict[str, dict[str, int]] = result["faults"]
    kinds = {k for per in faults.values() for k in per}
    assert {"raise:RuntimeError", "raise:ConnectionError", "slow", "hang"} <= kinds, kinds
    # the state directory's writes failed too: the ledger's commits and the sources' files
    io = {actor for actor, per in faults.items() if any(k.startswith("io:") for k in per)}
    assert {"positions", "trade_manager", "paper_wallet", "positions_log"} & io, faults
    assert {"market", "scanner", "evaluator", "exits", "breaker", "positions"} <= set(faults)
    raised = sum(n for per in faults.values() for k, n in per.items() if k.startswith("raise"))
    assert result["restarts"] >= raised
    assert result["hung"] >= faults.get("events", {}).get("hang", 0)
    assert result["faults_injected"] == sum(sum(per.values()) for per in faults.values())
    # it traded, and the crash opened the breaker (so the OPEN check had bars to check)
    assert result["fills_checked"] > 0 and result["orders_checked"] > 0
    assert result["breaker_states"].get("open", 0) > 0, result["breaker_states"]


def _copy(work: Path, tmp_path: Path) -> Path:
    """A copy of the run's directory, its config pointing at the copied state files."""
    target = tmp_path / "run"
    shutil.copytree(work, target)
    config = target / "chaos-config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(str(work), str(target)),
                      encoding="utf-8")
    return target


def _tape(state: Path, breaker: str) -> list[tuple[float, str]]:
    """A tape of every market step up to past the last fill, all in one breaker state."""
    db = sqlite3.connect(state / "paper_exchange.db")
    try:
        last = max(float(r[0]) for r in db.execute("SELECT at FROM fills"))
    finally:
        db.close()
    return [(MARKET_START + 60.0 * i, breaker)
            for i in range(int((last - MARKET_START) / 60) + 20)]


def test_the_audit_is_the_offline_auditor_on_the_run_files(
        run: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    _result, work = run
    damaged = _copy(work, tmp_path)
    db = sqlite3.connect(damaged / "state" / "ledger.db")
    try:
        db.execute("DELETE FROM fills WHERE seq = (SELECT MAX(seq) FROM fills)")
        db.commit()
    finally:
        db.close()
    violations, fills, _orders = audit(damaged / "chaos-config.yaml", damaged, [])
    assert fills > 0
    assert any("lacks exchange fill" in v for v in violations), violations


def test_the_breaker_check_by_market_time_sees_a_buy_while_open(
        run: tuple[dict[str, Any], Path]) -> None:
    _result, work = run
    config, state = work / "chaos-config.yaml", work / "state"
    # the run's own files, with a tape saying the breaker was open at every step: the
    # run's entries become entries while OPEN
    violations, _f, _o = audit(config, work, _tape(state, "open"))
    assert any("while the breaker was open" in v for v in violations), violations
    assert audit(config, work, _tape(state, "closed"))[0] == []


def test_with_the_shipped_intensity_it_ends_non_zero_with_nothing_lost(tmp_path: Path) -> None:
    """The shipped tree allows 5 restarts a minute at the root: under faults in every actor
    it gives up (exit status 1, as systemd would see it), and what it acknowledged is all
    on disk and agrees (the audit runs on the files it left)."""
    result = run_chaos_load(TICKS, seed=1, workdir=tmp_path, max_restarts=None)
    assert result["exit_code"] == 1 and result["escalations"] >= 1, result
    assert result["steps"] < TICKS
    # what it left may lack a fill the venue made and the ledger never acknowledged (its
    # commit failed, then the process gave up), exactly as a kill -9 leaves it; all else
    # agrees
    assert all("lacks exchange fill" in v for v in result["violations"]), result["violations"]
    # started again as systemd would (no faults), the venue sync records what the venue
    # made, and then everything agrees
    rt = start_tree(tmp_path / "chaos-config.yaml")
    try:
        wait_until(lambda: executor_stats(rt).venue_synced, timeout=30, what="the venue sync")
    finally:
        rt.stop()
    report = audit_state(tmp_path / "chaos-config.yaml", tmp_path)
    assert report.violations == [] and not report.missing, report
    assert report.fills_checked > 0
