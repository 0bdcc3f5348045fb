"""``botvisor positions``: balances, PnL, equity and the open positions, as an operator
command plug-in (entry point ``positions`` in ``botvisor.operator_commands``), forwarded to
the positions actor; ``botvisor status`` shows its equity, cash, PnL and open positions."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from supervisor.host.control_protocol import EXIT_OK
from supervisor.host.operator_plugins import ForwardedCommand
from supervisor.host.operator_render import number, pairs

__all__ = ["PositionsCommand", "money"]

_MONEY_FIELDS = ("equity", "cash", "pnl")


def money(value: Any) -> str:
    """An amount with two decimals and thousands separators (anything else as its text)."""
    try:
        return f"{Decimal(str(value)):,.2f}"
    except (InvalidOperation, ValueError):
        return str(value)


class PositionsCommand(ForwardedCommand):
    """Shows the book: balances, PnL, fees, exposure, then one row per open position."""

    name = "positions"
    help = "open positions, balances, PnL and equity"
    target = "positions"
    status_fields = ("equity", "cash", "realized_pnl", "unrealized_pnl", "open_positions")

    def request(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"command": "show"}

    def format_status(self, field: str, value: Any) -> str | Text | None:
        return money(value) if field.endswith(_MONEY_FIELDS) else None

    def render(self, console: Console, result: Any) -> int:
        r: Mapping[str, Any] = result
        table = pairs()
        for key, label in (("equity", "equity"), ("cash", "cash"),
                           ("starting_cash", "starting cash"), ("realized_pnl", "realized PnL"),
                           ("unrealized_pnl", "unrealized PnL"), ("fees", "fees paid"),
                           ("gross_exposure", "gross exposure")):
            table.add_row(label, money(r[key]))
        console.print(table)
        rows = r.get("positions") or []
        if not rows:
            console.print("no open positions")
            return EXIT_OK
        positions = Table(title=f"{len(rows)} open position(s)", title_justify="left")
        for column in ("symbol", "quantity", "avg price", "mark", "exposure", "unrealized PnL"):
            positions.add_column(column, justify="left" if column == "symbol" else "right",
                                 overflow="fold")
        for p in rows:
            positions.add_row(p["symbol"], number(p["quantity"]), number(p["avg_price"]),
                              number(p["mark"]) if p.get("mark") is not None else "-",
                              money(p["exposure"]),
                              money(p["unrealized_pnl"]) if p.get("unrealized_pnl") is not None
                              else "-")
        console.print(positions)
        return EXIT_OK
