"""Chaos under load (issue 15, deliverable 3): the shipped tree paper-trades the built-in
market at 1,000 bars a second with faults in every actor for a fixed number of steps,
and afterwards every invariant holds (see actors/chaos_load.py for what the run changes
from config.yaml, and why). The audit is checked too, on damaged copies of the run's
files, so a clean result cannot come from a check that sees nothing.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from actors.chaos_load import audit, run_chaos_load

TICKS = 2000


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    work = tmp_path_factory.mktemp("chaos-load")
    return run_chaos_load(TICKS, seed=2, workdir=work), work / "state"


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
    assert {"market", "scanner", "evaluator", "exits", "breaker", "positions"} <= set(faults)
    raised = sum(n for per in faults.values() for k, n in per.items() if k.startswith("raise"))
    assert result["restarts"] >= raised
    assert result["hung"] >= faults.get("events", {}).get("hang", 0)
    assert result["faults_injected"] == sum(sum(per.values()) for per in faults.values())
    # it traded, and the crash opened the breaker (so the OPEN check had bars to check)
    assert result["fills_checked"] > 0 and result["orders_checked"] > 0
    assert result["breaker_states"].get("open", 0) > 0, result["breaker_states"]


def _copy(state: Path, tmp_path: Path) -> Path:
    target = tmp_path / "state"
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copytree(state, target)
    return target


def _tape(state: Path, breaker: str) -> list[tuple[float, str]]:
    db = sqlite3.connect(state / "paper_exchange.db")
    try:
        bars = sorted({float(r[0]) for r in db.execute("SELECT at FROM fills")})
    finally:
        db.close()
    start = bars[0] - 600.0
    return [(start + 60.0 * i, breaker) for i in range(int((bars[-1] - start) / 60) + 20)]


def test_the_audit_sees_a_lost_or_doubled_fill(run: tuple[dict[str, Any], Path],
                                               tmp_path: Path) -> None:
    _result, state = run
    damaged = _copy(state, tmp_path)
    db = sqlite3.connect(damaged / "ledger.db")
    try:
        db.execute("DELETE FROM fills WHERE seq = (SELECT MAX(seq) FROM fills)")
        db.commit()
    finally:
        db.close()
    violations, fills, _orders = audit(damaged, [])
    assert fills > 0
    assert any("missing from the ledger" in v for v in violations), violations
    extra = _copy(state, tmp_path / "extra")
    db = sqlite3.connect(extra / "ledger.db")
    try:
        db.execute("INSERT INTO fills SELECT MAX(seq) + 1, 'made-up', client_order_id, symbol, "
                   "side, quantity, price, fee, at, venue, recorded_at FROM fills")
        db.commit()
    finally:
        db.close()
    violations, _fills, _orders = audit(extra, [])
    assert any("the venue never made: ['made-up']" in v for v in violations), violations


def test_the_audit_sees_a_buy_while_open_and_a_stale_source(
        run: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    _result, state = run
    # the same files, with a tape saying the breaker was open at every bar: the run's
    # entries become entries while OPEN
    violations, _f, _o = audit(state, _tape(state, "open"))
    assert any("while the breaker was open" in v for v in violations), violations
    assert audit(state, _tape(state, "closed"))[0] == []
    # a source that lost its last update no longer reconciles
    damaged = _copy(state, tmp_path)
    (damaged / "positions.log").write_bytes(
        b"".join((damaged / "positions.log").read_bytes().splitlines(keepends=True)[:-1]))
    violations, _f, _o = audit(damaged, [])
    assert any(v.startswith("positions_log") for v in violations), violations
