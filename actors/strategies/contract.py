"""The strategies context's contract: the ``Signal`` the evaluator sends the executor, and the
:class:`Strategy` a replacement or a new strategy implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from actors.common.messages import Side
from actors.market.contract import Bar

__all__ = [
    "Signal",
    "Strategy",
    "Verdict",
]


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's decision to enter or leave; ``signal_id`` is deterministic."""

    signal_id: str
    strategy: str
    symbol: str
    side: Side
    price: float
    at: float
    reason: str
    stop_distance: float = 0.0  # price distance to the planned stop, for sizing


Verdict = tuple[Side, str, float] | None  # side, reason, stop distance


class Strategy(Protocol):
    """A strategy sees every bar of one symbol and may say buy or sell."""

    name: str

    def on_bar(self, bar: Bar, holding: bool) -> Verdict: ...
