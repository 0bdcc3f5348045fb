"""The execution context's contract: what the executor accepts besides a strategy's
``Signal`` (an ``ExitRequest`` from the exits actor, ``GetExecutorStats``), what it answers,
and the client order id it derives from a signal (the same signal, the same order at the
venue). What it sends a venue is the venues' contract."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = [
    "ExecutorStats",
    "ExitRequest",
    "GetExecutorStats",
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


def client_order_id(signal_id: str) -> str:
    """A client order id derived from the signal: the same signal always maps to it."""
    return "bv-" + hashlib.sha256(signal_id.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class GetExecutorStats:
    """Ask for ExecutorStats (answered once nothing is out or held, or after
    ``order_timeout``)."""


@dataclass(frozen=True, slots=True)
class ExecutorStats:
    """What the executor did: orders sent, refused, skipped, fills recorded."""

    orders: int
    filled: int
    refused: dict[str, int]
    skipped: dict[str, int]
    fills_recorded: int
    unrecorded: int
    sent: tuple[tuple[str, str, bool, str], ...]  # (client order id, side, reduces, state)
    recovered: int = 0  # venue fills the ledger lacked, recorded by venue syncs
    venue_synced: bool = False  # the last venue sync succeeded (orders may go out)
    exits: tuple[tuple[str, str], ...] = ()  # (client order id, reason) of exit orders sent
