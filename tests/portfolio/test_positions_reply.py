"""positions_reply, pure: the book as `botvisor positions` receives it."""

from __future__ import annotations

from decimal import Decimal

from actors.portfolio.contract import PortfolioSnapshot, PositionView
from actors.portfolio.positions_reply import positions_reply

D = Decimal


def snapshot() -> PortfolioSnapshot:
    return PortfolioSnapshot(
        7, D("900"), D("1000"), D("1010"), D("0"), D("10"), D("0.5"), D("110"),
        positions={"ETH/USDT": PositionView(D("0.5"), D("200"), 12.0),
                   "BTC/USDT": PositionView(D("0.001"), D("10000"), 11.0)},
        exposure_by_symbol={"ETH/USDT": D("100"), "BTC/USDT": D("10")},
        marks={"ETH/USDT": D("220")})


def test_each_open_position_is_a_row_in_symbol_order_with_exact_amounts() -> None:
    reply = positions_reply("show", snapshot())
    assert reply["seq"] == 7 and reply["equity"] == "1010" and reply["fees"] == "0.5"
    btc, eth = reply["positions"]
    assert btc["symbol"] == "BTC/USDT" and btc["mark"] is None and btc["unrealized_pnl"] is None
    assert eth == {"symbol": "ETH/USDT", "quantity": "0.5", "avg_price": "200", "mark": "220",
                   "exposure": "100", "unrealized_pnl": "10.0", "updated_at": 12.0}


def test_status_is_the_same_reply_and_an_unknown_command_is_named_with_code_2() -> None:
    assert positions_reply("status", snapshot()) == positions_reply("show", snapshot())
    unknown = positions_reply("close", snapshot())
    assert unknown["code"] == 2 and "'close'" in unknown["error"]
