"""The executor's in-flight state as a backtest has it: :class:`NothingInFlight`, what
:func:`~actors.execution.decide.decide` reads of orders out and fills unrecorded (none,
ever), and the client order ids the run has answered."""

from __future__ import annotations

from actors.common.messages import Fill
from actors.execution.orders import OrderPhase
from actors.execution.sizing import InFlightBuy

__all__ = ["NothingInFlight"]

_NO_FILLS: list[Fill] = []
_NO_BUYS: list[InFlightBuy] = []
_NO_SYMBOLS: set[str] = set()


class NothingInFlight:
    """The executor's in-flight state in a backtest: every order is answered and every
    fill recorded within its step, so nothing is ever out, and no earlier instance could
    have sent a signal (``checked_through`` is minus infinity). Owns the client order ids
    sent in the run: one is never sent twice (two requests with one id, as candles less
    than a second apart give, are one order, as the executor and the venue make them)."""

    checked_through = float("-inf")
    halt_pending = False

    def __init__(self) -> None:
        self._done: dict[str, OrderPhase] = {}

    def answered(self, coid: str, *, filled: bool) -> None:
        """``coid`` was sent and the venue answered it: filled, or refused."""
        self._done[coid] = OrderPhase.FILLED if filled else OrderPhase.REJECTED

    def phase(self, coid: str) -> OrderPhase | None:
        return self._done.get(coid)

    def has_sale(self, symbol: str) -> bool:
        return False

    def busy(self, symbol: str) -> bool:
        return False

    def resolving(self) -> bool:
        return False

    def unsettled_symbols(self) -> set[str]:
        return _NO_SYMBOLS

    def writing(self) -> list[Fill]:
        return _NO_FILLS

    def unanswered(self) -> list[InFlightBuy]:
        return _NO_BUYS
