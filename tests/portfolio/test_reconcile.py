"""Reconciliation: every strategy on every conflict kind, with its written meaning.

The ledger holds BTC 1 @ 100 and ETH 2 @ 50 (cash 99,800). A conflict is made by resetting
a source's state to something else (the same message the position actor uses to rebuild
sources), then ``Reconcile()`` is asked for.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from actors.common.messages import Alert, Fill, HaltTrading, Side
from actors.portfolio.contract import (
    GetPortfolio,
    GetView,
    PositionView,
    Reconcile,
    RecordFill,
    ResetTo,
)
from supervisor import Runtime
from tests.support.position_helpers import SOURCES, start_ledger

D = Decimal
BTC, ETH, DOGE = "BTC/USDT", "ETH/USDT", "DOGE/USDT"
CASH = D("99800")
LEDGER = {BTC: (D(1), D(100)), ETH: (D(2), D(50))}

# kind -> (positions the corrupted source shows, cash it shows)
CORRUPTIONS: dict[str, tuple[dict[str, tuple[Decimal, Decimal]], Decimal]] = {
    "missing": ({ETH: LEDGER[ETH]}, CASH),
    "phantom": ({**LEDGER, DOGE: (D(1000), D("0.1"))}, CASH),
    "quantity": ({**LEDGER, BTC: (D(3), D(100))}, CASH),
    "price": ({**LEDGER, BTC: (D(1), D(90))}, CASH),
    "balance": (dict(LEDGER), CASH - 500),
}


@pytest.fixture
def ledger_rt(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Runtime]:
    rt = start_ledger(tmp_path, strategy=request.param, starting_cash=D("100000"))
    try:
        rt.ask("positions", RecordFill(Fill("f1", "o1", BTC, Side.BUY, D(1), D(100), at=10.0)))
        rt.ask("positions", RecordFill(Fill("f2", "o2", ETH, Side.BUY, D(2), D(50), at=20.0)))
        assert rt.ask("positions", Reconcile()).clean
        yield rt
    finally:
        rt.stop()


def _corrupt(rt: Runtime, source: str, kind: str, updated_at: float = 0.0) -> None:
    positions, cash = CORRUPTIONS[kind]
    seq = rt.ask("positions", GetPortfolio()).seq
    views = {s: PositionView(q, p, updated_at) for s, (q, p) in positions.items()}
    rt.tell(source, ResetTo(seq, cash, views, "test corruption", updated_at))


def _ledger(rt: Runtime) -> tuple[dict[str, tuple[Decimal, Decimal]], Decimal]:
    snap = rt.ask("positions", GetPortfolio())
    return {s: (p.quantity, p.avg_price) for s, p in snap.positions.items()}, snap.cash


def _assert_converged(rt: Runtime) -> None:
    report = rt.ask("positions", Reconcile())
    assert report.clean, report.conflicts
    positions, cash = _ledger(rt)
    for source in SOURCES:
        view = rt.ask(source, GetView())
        assert {s: (p.quantity, p.avg_price) for s, p in view.positions.items()} == positions
        if view.cash is not None:
            assert view.cash == cash


KINDS = list(CORRUPTIONS)


@pytest.mark.parametrize("ledger_rt", ["trade_manager_priority"], indirect=True)
@pytest.mark.parametrize("kind", KINDS)
def test_trade_manager_priority(ledger_rt: Runtime, kind: str) -> None:
    rt = ledger_rt
    if kind == "balance":
        # the trade manager keeps no cash: a wallet balance conflict goes to the ledger
        _corrupt(rt, "paper_wallet", kind)
        expected = (LEDGER, CASH)
        source = "paper_wallet"
    else:
        _corrupt(rt, "trade_manager", kind)
        expected = CORRUPTIONS[kind][0], CASH
        source = "trade_manager"
    report = rt.ask("positions", Reconcile())
    assert [(c.source, c.kind) for c in report.conflicts] == [(source, kind)]
    assert _ledger(rt) == expected
    _assert_converged(rt)


@pytest.mark.parametrize("ledger_rt", ["paper_wallet_priority"], indirect=True)
@pytest.mark.parametrize("kind", KINDS)
def test_paper_wallet_priority(ledger_rt: Runtime, kind: str) -> None:
    rt = ledger_rt
    _corrupt(rt, "paper_wallet", kind)
    report = rt.ask("positions", Reconcile())
    assert [(c.source, c.kind) for c in report.conflicts] == [("paper_wallet", kind)]
    assert _ledger(rt) == CORRUPTIONS[kind]
    _assert_converged(rt)


@pytest.mark.parametrize("ledger_rt", ["paper_wallet_priority"], indirect=True)
def test_priority_source_that_agrees_means_the_others_are_reset(ledger_rt: Runtime) -> None:
    rt = ledger_rt
    _corrupt(rt, "positions_log", "phantom")
    rt.ask("positions", Reconcile())
    assert _ledger(rt) == (LEDGER, CASH)
    _assert_converged(rt)


@pytest.mark.parametrize("ledger_rt", ["merge"], indirect=True)
@pytest.mark.parametrize("kind", KINDS)
def test_merge_single_dissent_loses_to_the_majority(ledger_rt: Runtime, kind: str) -> None:
    rt = ledger_rt
    _corrupt(rt, "paper_wallet", kind)
    report = rt.ask("positions", Reconcile())
    assert [(c.source, c.kind) for c in report.conflicts] == [("paper_wallet", kind)]
    assert _ledger(rt) == (LEDGER, CASH)
    _assert_converged(rt)


@pytest.mark.parametrize("ledger_rt", ["merge"], indirect=True)
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "balance"])
def test_merge_majority_of_sources_overrules_the_ledger(ledger_rt: Runtime, kind: str) -> None:
    rt = ledger_rt
    for source in SOURCES:
        _corrupt(rt, source, kind)
    report = rt.ask("positions", Reconcile())
    assert {c.source for c in report.conflicts} == set(SOURCES)
    assert _ledger(rt)[0] == CORRUPTIONS[kind][0]
    _assert_converged(rt)


@pytest.mark.parametrize("ledger_rt", ["merge"], indirect=True)
def test_merge_tie_goes_to_the_ledger(ledger_rt: Runtime) -> None:
    rt = ledger_rt
    _corrupt(rt, "paper_wallet", "quantity")
    _corrupt(rt, "positions_log", "quantity")  # 2 vs ledger + trade manager
    rt.ask("positions", Reconcile())
    assert _ledger(rt) == (LEDGER, CASH)
    _assert_converged(rt)


@pytest.mark.parametrize("ledger_rt", ["most_recent"], indirect=True)
@pytest.mark.parametrize("kind", KINDS)
def test_most_recent_newer_source_wins(ledger_rt: Runtime, kind: str) -> None:
    rt = ledger_rt
    _corrupt(rt, "paper_wallet", kind, updated_at=1_000_000.0)  # newer than the fills (10, 20)
    report = rt.ask("positions", Reconcile())
    assert [(c.source, c.kind) for c in report.conflicts] == [("paper_wallet", kind)]
    assert _ledger(rt) == CORRUPTIONS[kind]
    _assert_converged(rt)


@pytest.mark.parametrize("ledger_rt", ["most_recent"], indirect=True)
@pytest.mark.parametrize("kind", KINDS)
def test_most_recent_older_source_loses(ledger_rt: Runtime, kind: str) -> None:
    rt = ledger_rt
    _corrupt(rt, "paper_wallet", kind, updated_at=1.0)  # older than the fills
    rt.ask("positions", Reconcile())
    assert _ledger(rt) == (LEDGER, CASH)
    _assert_converged(rt)


@pytest.mark.parametrize("ledger_rt", ["emergency_reset"], indirect=True)
@pytest.mark.parametrize("kind", KINDS)
def test_emergency_reset_halts_rebuilds_and_alerts(ledger_rt: Runtime, kind: str) -> None:
    rt = ledger_rt
    _corrupt(rt, "paper_wallet", kind, updated_at=1_000_000.0)
    report = rt.ask("positions", Reconcile())
    assert [(c.source, c.kind) for c in report.conflicts] == [("paper_wallet", kind)]
    assert _ledger(rt) == (LEDGER, CASH)
    _assert_converged(rt)
    halts = [m for m in rt.ask("breaker", "get") if isinstance(m, HaltTrading)]
    assert len(halts) == 1 and halts[0].by == "positions"
    alerts = [m for m in rt.ask("alerts", "get") if isinstance(m, Alert)]
    assert alerts[-1].severity == "critical"


@pytest.mark.parametrize("ledger_rt", ["merge"], indirect=True)
def test_stale_source_is_a_conflict_and_is_rebuilt(ledger_rt: Runtime) -> None:
    rt = ledger_rt
    seq = rt.ask("positions", GetPortfolio()).seq
    rt.tell("trade_manager", ResetTo(seq - 1, CASH, {
        s: PositionView(q, p) for s, (q, p) in LEDGER.items()}, "lagging"))
    report = rt.ask("positions", Reconcile())
    assert ("trade_manager", "stale") in [(c.source, c.kind) for c in report.conflicts]
    _assert_converged(rt)


@pytest.mark.parametrize("ledger_rt", ["merge"], indirect=True)
def test_conflicts_are_persisted_bounded_and_alerted(ledger_rt: Runtime, tmp_path: Path) -> None:
    rt = ledger_rt
    for _ in range(3):
        _corrupt(rt, "paper_wallet", "phantom")
        rt.ask("positions", Reconcile())
    alerts = [m for m in rt.ask("alerts", "get") if isinstance(m, Alert)]
    assert len(alerts) == 3
    assert "paper_wallet:phantom" in alerts[0].body
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        records = db.execute("SELECT record FROM conflicts").fetchall()
    assert len(records) == 3
    assert '"kind": "phantom"' in records[0][0]


def test_conflict_history_is_bounded(tmp_path: Path) -> None:
    rt = start_ledger(tmp_path, strategy="merge", max_conflict_history=2)
    try:
        rt.ask("positions", RecordFill(Fill("f1", "o1", BTC, Side.BUY, D(1), D(100))))
        for _ in range(4):
            _corrupt(rt, "paper_wallet", "phantom")
            rt.ask("positions", Reconcile())
    finally:
        rt.stop()
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        assert db.execute("SELECT COUNT(*) FROM conflicts").fetchone() == (2,)


def test_corrupted_files_on_disk_are_found_at_start(tmp_path: Path) -> None:
    rt = start_ledger(tmp_path, strategy="merge")
    try:
        rt.ask("positions", RecordFill(Fill("f1", "o1", BTC, Side.BUY, D(1), D(100))))
        assert rt.ask("positions", Reconcile()).clean
    finally:
        rt.stop()
    wallet = tmp_path / "paper_wallet.yaml"
    wallet.write_text(wallet.read_text().replace("'1'", "'7'"))  # quantity edited by hand
    rt = start_ledger(tmp_path, strategy="merge")
    try:
        report = rt.ask("positions", Reconcile())
        assert [(c.source, c.kind) for c in report.conflicts] == [("paper_wallet", "quantity")]
        _assert_converged(rt)
    finally:
        rt.stop()
