"""The paper exchange plays the venue: one answer per client order id, its own durable record.

A real actor with its real SQLite file, restarted between sends.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from actors.market import Bars
from actors.messages import Side
from actors.paper_exchange import GetVenueFills, PaperExchange
from actors.pipeline_messages import Bar, LookupOrder, OrderResult, PlaceOrder
from supervisor import ChildSpec, Runtime, SupervisorSpec

WAIT = 10.0


def _exchange(db: Path) -> Runtime:
    settings = PaperExchange.Settings(database=str(db))
    rt = Runtime(ask_timeout=WAIT)
    rt.start(SupervisorSpec(children=(
        ChildSpec("exchange", factory=lambda: PaperExchange(settings)),)))
    return rt


def test_the_same_client_order_id_fills_once_even_across_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "venue.db"
    order = PlaceOrder("sig-1", "BTC/USDT", Side.BUY, Decimal("0.5"))
    rt = _exchange(db)
    try:
        rt.tell("exchange", Bars((Bar("BTC/USDT", 60.0, 100, 101, 99, 100, 5),)))
        first = rt.ask("exchange", order)
        assert isinstance(first, OrderResult) and first.status == "filled"
        assert rt.ask("exchange", order) == first  # resent: the first answer, no new fill
        rejected = rt.ask("exchange", PlaceOrder("sig-2", "ETH/USDT", Side.BUY, Decimal(1)))
        assert rejected.status == "rejected" and rejected.reason == "no market price yet"
    finally:
        rt.stop()
    rt = _exchange(db)  # a new instance on the same file (a restart of the process)
    try:
        rt.tell("exchange", Bars((Bar("BTC/USDT", 120.0, 200, 201, 199, 200, 5),)))
        again = rt.ask("exchange", order)
        assert again == first  # not refilled at the new price
        assert rt.ask("exchange", LookupOrder("sig-1")) == first
        assert rt.ask("exchange", PlaceOrder("sig-2", "ETH/USDT", Side.BUY, Decimal(1))) \
            == rejected
        fills = rt.ask("exchange", GetVenueFills())
        assert [f.fill_id for f in fills] == ["sig-1-1"]
        assert fills[0].price == Decimal("100.05")  # 5 bps of slippage on the first price
    finally:
        rt.stop()
