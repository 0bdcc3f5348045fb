"""Stand-ins for the actors around the one a test is about: real actors with no logic of
their own (a position actor that publishes the snapshots the test gives it, an executor
that keeps what it is told)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from actors.portfolio.contract import PortfolioSnapshot, PositionView
from supervisor import SupervisedActor


@dataclass(frozen=True, slots=True)
class Publish:
    """Tell the stand-in ledger to publish ``snapshot``."""

    snapshot: PortfolioSnapshot


class Ledger(SupervisedActor):
    """Stands in for the position actor: publishes the snapshots it is given."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Publish):
            self.ctx.publish(message.snapshot)
            return None
        return super().on_receive(message)


class Sink(SupervisedActor):
    """Stands in for any actor the one under test tells things to: takes them, keeps none."""

    def on_receive(self, message: Any) -> Any:
        return None


class Collector(SupervisedActor):
    """Stands in for the executor: keeps every message of the given types (``got``)."""

    def __init__(self, *kinds: type) -> None:
        super().__init__()
        self.kinds = kinds
        self.got: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, self.kinds):
            self.got.append(message)
            return None
        return super().on_receive(message)


def snapshot(seq: int, held: dict[str, tuple[str, float]] | None = None) -> PortfolioSnapshot:
    """A snapshot at ledger ``seq`` holding ``held`` (symbol -> (quantity, average price))."""
    zero, cash = Decimal(0), Decimal(1000)
    positions = {symbol: PositionView(Decimal(quantity), Decimal(repr(price)), 0.0)
                 for symbol, (quantity, price) in (held or {}).items()}
    return PortfolioSnapshot(seq, cash, cash, cash, zero, zero, zero, zero, positions)
