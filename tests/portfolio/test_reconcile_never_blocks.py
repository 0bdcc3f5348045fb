"""A reconciliation gathers the sources' views without blocking the position actor: a fill
sent while a slow source has not answered yet is recorded (and acknowledged) before it does.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.common.messages import Fill, Side
from actors.portfolio.contract import GetView, Reconcile, RecordFill
from actors.portfolio.positions import PositionActor
from actors.portfolio.reconcile import ReconcileReport
from actors.portfolio.sources import SourceSettings, TradeManagerSource
from supervisor import ChildSpec, Runtime, SupervisorSpec
from tests.support.position_helpers import Inbox

D = Decimal


class SlowSource(TradeManagerSource):
    """A trade manager whose view takes until ``release`` is set (``asked`` says it was
    asked)."""

    def __init__(self, settings: SourceSettings, asked: threading.Event,
                 release: threading.Event) -> None:
        super().__init__(settings)
        self.asked, self.release = asked, release

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetView):
            self.asked.set()
            self.release.wait(timeout=4.0)
        return super().on_receive(message)


def test_a_fill_is_recorded_while_a_slow_source_has_not_answered(tmp_path: Path) -> None:
    asked, release = threading.Event(), threading.Event()
    settings = PositionActor.Settings(database=str(tmp_path / "ledger.db"),
                                      sources=("trade_manager",), reconcile_interval=3600)
    source = SourceSettings(path=str(tmp_path / "trade_manager.json"),
                            starting_cash=settings.starting_cash)
    rt = Runtime(ask_timeout=10)
    rt.start(SupervisorSpec(children=(
        ChildSpec("alerts", factory=Inbox),
        ChildSpec("breaker", factory=Inbox),
        ChildSpec("positions", factory=lambda: PositionActor(settings)),
        ChildSpec("trade_manager", factory=lambda: SlowSource(source, asked, release)),
    )))
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
