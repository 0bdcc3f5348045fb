"""The execution context's contract: what the executor accepts besides a strategy's
``Signal`` (an ``ExitRequest`` from the exits actor, ``GetExecutorStats``), what it answers,
and the client order id it derives from a signal (the same signal, the same order at the
venue). What it sends a venue is the venues' contract."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.market.contract import Bar

__all__ = [
    "ExecutorStats",
    "ExitRequest",
    "GetExecutorStats",
    "SkipReason",
    "client_order_id",
]


@dataclass(frozen=True, slots=True)
class ExitRequest:
    """The exits actor asks the executor to close a position (reduce-only)."""

    signal_id: str
    symbol: str
    reason: str  # stop_loss | take_profit | trailing_stop | time_stop
    price: float
    at: float

    @classmethod
    def on(cls, bar: Bar, reason: str) -> ExitRequest:
        """The request an exit rule's ``reason`` makes on ``bar``: at its close, with the
        id ``exit:<reason>:<symbol>:<whole seconds>`` (one per rule, symbol and time)."""
        return cls(f"exit:{reason}:{bar.symbol}:{int(bar.at)}", bar.symbol, reason,
                   bar.close, bar.at)


def client_order_id(signal_id: str) -> str:
    """A client order id derived from the signal: the same signal always maps to it."""
    return "bv-" + hashlib.sha256(signal_id.encode()).hexdigest()[:24]


class SkipReason(enum.StrEnum):
    """Why the executor did not act on a signal or exit request (the keys of
    ``ExecutorStats.skipped``)."""

    SALE_IN_FLIGHT = "sale already in flight"
    TOO_MANY_HELD = "too many signals held"
    NOT_RECONCILED = "venue not reconciled yet"
    SELL_WITHOUT_POSITION = "sell signal without a position"
    EXIT_WITHOUT_POSITION = "exit without a position"
    NO_PORTFOLIO = "no portfolio yet"
    ALREADY_HOLDING = "already holding"
    MAX_OPEN_POSITIONS = "max open positions"
    NO_EQUITY = "no equity"
    BELOW_MINIMUM = "below minimum size or no headroom"
    UNSETTLED = "earlier fills or orders not settled yet"
    ALREADY_HANDLED = "signal already handled"
    UNCHECKED = "could not check for duplicates"  # never risk a duplicate
    IN_LEDGER = "already in the ledger"
    AT_VENUE = "already at the exchange"
    DROPPED_AT_STOP = "dropped at stop"


@dataclass(frozen=True, slots=True)
class GetExecutorStats:
    """Ask for ExecutorStats (answered once nothing is out or held, or after
    ``order_timeout``; with ``wait`` False: at once, as things stand)."""

    wait: bool = True


@dataclass(frozen=True, slots=True)
class ExecutorStats:
    """What the executor did: orders sent, refused, skipped, fills recorded."""

    orders: int
    filled: int
    refused: dict[str, int]
    skipped: dict[SkipReason, int]
    fills_recorded: int
    unrecorded: int
    sent: tuple[tuple[str, str, bool, str], ...]  # (client order id, side, reduces, state)
    recovered: int = 0  # venue fills the ledger lacked, recorded by venue syncs
    venue_synced: bool = False  # the last venue sync succeeded (orders may go out)
    exits: tuple[tuple[str, str], ...] = ()  # (client order id, reason) of exit orders sent
    # how many of this instance's orders (and duplicate checks) are in each phase, by the
    # phase's name (actors/execution/orders.py: OrderPhase); phases with none are left out
    orders_by_phase: dict[str, int] = field(default_factory=dict)
    # the failed tries of each fill not acknowledged yet (in the order they first failed)
    record_failures: tuple[int, ...] = ()
