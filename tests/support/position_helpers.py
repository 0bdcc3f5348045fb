"""Builders shared by the position tests: a ledger subtree and recorder actors."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.portfolio.positions import PositionActor
from actors.portfolio.sources import (
    PaperWalletSource,
    PositionsLogSource,
    SourceSettings,
    TradeManagerSource,
)
from supervisor import ChildSpec, Runtime, Strategy, SupervisedActor, SupervisorSpec

SOURCES = ("trade_manager", "paper_wallet", "positions_log")


class Inbox(SupervisedActor):
    """Records every message it is told; ``"get"`` returns them."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "get":
            return list(self.received)
        self.received.append(message)
        return None


def ledger_spec(
    directory: Path,
    *,
    strategy: str = "merge",
    starting_cash: Decimal = Decimal("100000"),
    positions_factory: type[PositionActor] = PositionActor,
    **settings: Any,
) -> SupervisorSpec:
    ps = PositionActor.Settings(
        database=str(directory / "ledger.db"),
        starting_cash=starting_cash,
        reconcile_interval=3600,
        conflict_strategy=strategy,  # type: ignore[arg-type]
        **settings,
    )

    def source(cls: type, filename: str) -> Any:
        ss = SourceSettings(path=str(directory / filename), starting_cash=starting_cash)
        return lambda: cls(ss)

    return SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE,
        children=(
            ChildSpec("positions", factory=lambda: positions_factory(ps)),
            ChildSpec("trade_manager", factory=source(TradeManagerSource, "trade_manager.json")),
            ChildSpec("paper_wallet", factory=source(PaperWalletSource, "paper_wallet.yaml")),
            ChildSpec("positions_log", factory=source(PositionsLogSource, "positions.log")),
        ),
    )


def start_ledger(directory: Path, **kwargs: Any) -> Runtime:
    rt = Runtime(ask_timeout=10)
    rt.start(
        SupervisorSpec(
            children=(
                ChildSpec("alerts", factory=Inbox),
                ChildSpec("breaker", factory=Inbox),
                ChildSpec("ledger", supervisor=ledger_spec(directory, **kwargs)),
            )
        )
    )
    return rt


class GatedPositions(PositionActor):
    """A position actor that can be held on a gate, so a test can fill its mailbox first."""

    gate = threading.Event()
    holding = threading.Event()

    def on_receive(self, message: Any) -> Any:
        if message == "hold":
            GatedPositions.holding.set()
            GatedPositions.gate.wait(10)
            return None
        return super().on_receive(message)
