"""A reconciliation gathers the sources' views without blocking the position actor: a fill
sent while a slow source has not answered yet is recorded (and acknowledged) before it does.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.common.messages import Fill, Side
from actors.portfolio.contract import (
    GetPortfolio,
    GetView,
    PositionView,
    Reconcile,
    ReconcileReport,
    RecordFill,
    ResetTo,
    SourceView,
)
from actors.portfolio.positions import SOURCE_TIMEOUT, PositionActor
from actors.portfolio.reconcile import LedgerState, Reconciler
from actors.portfolio.sources import PaperWalletSource, SourceSettings, TradeManagerSource
from supervisor import ChildSpec, ManualClock, Runtime, SupervisorSpec
from tests.support.bot_helpers import wait_until
from tests.support.position_helpers import Inbox

D = Decimal


class SlowSource(TradeManagerSource):
    """A trade manager whose view takes until ``release`` is set, ``hold`` seconds at most
    (``asked`` says it was asked)."""

    def __init__(self, settings: SourceSettings, asked: threading.Event,
                 release: threading.Event, hold: float) -> None:
        super().__init__(settings)
        self.asked, self.release, self.hold = asked, release, hold

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetView):
            self.asked.set()
            self.release.wait(timeout=self.hold)
        return super().on_receive(message)


def _start(tmp_path: Path, asked: threading.Event, release: threading.Event,
           *, wallet: bool = False, hold: float = 4.0, clock: ManualClock | None = None
           ) -> Runtime:
    """A ledger whose trade manager is slow (and, with ``wallet``, a paper wallet)."""
    sources = ("trade_manager", "paper_wallet") if wallet else ("trade_manager",)
    settings = PositionActor.Settings(database=str(tmp_path / "ledger.db"), sources=sources,
                                      reconcile_interval=3600)

    def store(name: str) -> SourceSettings:
        return SourceSettings(path=str(tmp_path / name), starting_cash=settings.starting_cash)

    children = [
        ChildSpec("alerts", factory=Inbox),
        ChildSpec("breaker", factory=Inbox),
        ChildSpec("positions", factory=lambda: PositionActor(settings)),
        ChildSpec("trade_manager",
                  factory=lambda: SlowSource(store("trade_manager.json"), asked, release,
                                             hold)),
    ]
    if wallet:
        children.append(ChildSpec("paper_wallet",
                                  factory=lambda: PaperWalletSource(store("paper_wallet.yaml"))))
    rt = Runtime(ask_timeout=10, clock=clock)
    rt.start(SupervisorSpec(children=tuple(children)))
    return rt


def test_a_fill_is_recorded_while_a_slow_source_has_not_answered(tmp_path: Path) -> None:
    asked, release = threading.Event(), threading.Event()
    rt = _start(tmp_path, asked, release)
    try:
        report = rt.ask_future("positions", Reconcile("slow source"))
        assert asked.wait(timeout=5.0)
        fill = Fill("f1", "o1", "BTC/USDT", Side.BUY, D(1), D(100))
        recorded = rt.ask("positions", RecordFill(fill), timeout=2.0)
        assert recorded.fill_id == "f1"
        assert not release.is_set() and not report.done()  # the source still holds its view
        release.set()
        done = report.get(timeout=10.0)
        assert isinstance(done, ReconcileReport)
        assert done.checked == ("trade_manager",)
        assert done.clean  # the view is of the ledger as it was when the source was asked
    finally:
        release.set()
        rt.stop()


def test_conflicts_met_by_a_ledger_that_moved_are_gathered_again(tmp_path: Path) -> None:
    """A conflict found while fills came in is decided on views asked for again, once the
    ledger held still: the phantom is found and reset, the fill is in every view."""
    asked, release = threading.Event(), threading.Event()
    rt = _start(tmp_path, asked, release, wallet=True)
    try:
        seq = rt.ask("positions", GetPortfolio()).seq
        phantom = {"DOGE/USDT": PositionView(D(1000), D("0.1"))}
        rt.tell("paper_wallet", ResetTo(seq, D(10000), phantom, "test corruption"))
        report = rt.ask_future("positions", Reconcile("moving ledger"))
        assert asked.wait(timeout=5.0)
        fill = Fill("f1", "o1", "BTC/USDT", Side.BUY, D(1), D(100))
        rt.ask("positions", RecordFill(fill), timeout=2.0)
        release.set()
        done = report.get(timeout=10.0)
        assert ("paper_wallet", "phantom") in [(c.source, c.kind) for c in done.conflicts]
        assert "reset paper_wallet to the ledger" in done.actions
        assert done.seq == rt.ask("positions", GetPortfolio()).seq
        for name in ("trade_manager", "paper_wallet"):
            view = rt.ask(name, GetView())
            assert set(view.positions) == {"BTC/USDT"}, name
    finally:
        release.set()
        rt.stop()


def test_a_source_that_does_not_answer_in_time_is_unavailable(tmp_path: Path) -> None:
    """The round ends at its due time (SOURCE_TIMEOUT, on the runtime's clock), not at the
    silent source's answer (which never comes while the test holds it) nor earlier."""
    asked, release = threading.Event(), threading.Event()
    clock = ManualClock()
    rt = _start(tmp_path, asked, release, wallet=True, hold=30.0, clock=clock)
    try:
        future = rt.ask_future("positions", Reconcile("silent source"))
        assert asked.wait(timeout=5.0)
        wait_until(lambda: any(abs(d - SOURCE_TIMEOUT) < 1e-6 for d in clock.pending()),
                   timeout=5.0, what="the round's due time set (after both asks were sent)")
        # the wallet has answered (its reply was sent before it answers this), and the
        # position actor has taken that reply in (before it answers this)
        rt.ask("paper_wallet", GetView(), timeout=5.0)
        rt.ask("positions", GetPortfolio(), timeout=5.0)
        clock.advance(SOURCE_TIMEOUT - 0.01)
        rt.ask("positions", GetPortfolio(), timeout=5.0)
        assert not future.done(), "the round ended before its due time"
        clock.advance(0.01)
        report = future.get(timeout=5.0)
        assert not release.is_set()  # the source still holds its view
        assert report.unavailable == ("trade_manager",)
        assert report.checked == ("paper_wallet",) and report.clean
    finally:
        release.set()
        rt.stop()


def test_the_detect_step_is_pure_over_a_ledger_state_and_a_view() -> None:
    ledger = LedgerState(3, D(9900), {"BTC/USDT": PositionView(D(1), D(100))})
    rules = Reconciler("merge", D("0.000001"))
    same = SourceView("s", 3, {"BTC/USDT": PositionView(D(1), D("100.00001"))}, D(9900))
    assert rules.detect("s", same, ledger) == []
    off = SourceView("s", 2, {"BTC/USDT": PositionView(D(2), D(100))}, D(9800))
    assert [c.kind for c in rules.detect("s", off, ledger)] == ["stale", "quantity", "balance"]
