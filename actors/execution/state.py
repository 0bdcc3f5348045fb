"""What the executor publishes and the messages of its own: :class:`ExecutorState` (what a
replacement starts from, and the signals held), :class:`SyncVenue` (an ask for a venue sync
now), and what it sends itself (:class:`Tick`, :class:`RetrySync`, :class:`Handoff`) or keeps
with each ask out (:class:`AskFor`, of a :data:`Kind`); and :class:`Effects`, what its
pieces have it do (it owns the asks, the clock and the published state)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from actors.common.messages import Fill
from actors.execution.contract import ExitRequest, SkipReason
from actors.execution.exit_rules import ExitPlan
from actors.execution.orders import OrderPhase, Request
from actors.strategies.contract import Signal
from actors.venues.contract import PlaceOrder

__all__ = [
    "AskFor",
    "Effects",
    "ExecutorState",
    "Handoff",
    "Kind",
    "RetrySync",
    "SyncVenue",
    "Tick",
]

Kind = Literal["order", "record", "lookup", "in_ledger", "at_venue", "sync", "halt"]


class Effects(Protocol):
    """What the executor's pieces (the order lifecycle, the duplicate checks) have it do."""

    def ask(self, target: str, message: Any, kind: Kind, key: str = "") -> None:
        """Send an ask (its answer comes back by ``kind`` and ``key``); raises
        ``RuntimeErrorBase`` when it cannot be sent."""

    def tell(self, target: str, message: Any) -> None:
        """Tell, if it can be (an alert, the breaker's results)."""

    def now(self) -> float: ...

    def publish(self) -> None:
        """Publish the executor's state (a replacement reads it)."""

    def syncing(self) -> bool:
        """A venue sync runs or waits to."""

    def record(self, fill: Fill) -> None:
        """Send ``fill`` to the ledger (the outbox keeps it until acknowledged)."""

    def skip(self, reason: SkipReason) -> None: ...

    def again(self, seq: int, request: Request) -> None:
        """Decide ``request`` (arrival ``seq``) again, in its arrival order."""


@dataclass(frozen=True, slots=True)
class SyncVenue:
    """Reconcile the ledger with the venue's fills now (once this executor's own orders
    and fills out are answered).

    As an ask, the reply is the number of fills recovered (or the exception that stopped it).
    """


@dataclass(frozen=True, slots=True)
class RetrySync:
    """Timer: try the venue sync again after a failure."""


@dataclass(frozen=True, slots=True)
class Handoff:
    """Told by an executor that ends to its replacement: the signals it held, in order."""

    requests: tuple[Signal | ExitRequest, ...]


@dataclass(frozen=True, slots=True)
class Tick:
    """Timer: asks past their deadline, retries due, stats answers due (at ``at``)."""

    at: float


@dataclass(frozen=True, slots=True)
class ExecutorState:
    """Published by the executor: the venue time of its oldest fill not yet in the ledger
    (None when there is none), so a restarted executor syncs from far enough back; the
    newest signal time an instance may have sent an order for (``checked_through``: a
    later signal is new, an earlier or equal one is checked against ledger and exchange);
    the orders it has not seen the end of (``unresolved``, each with its phase); the
    ids of the signals it holds, in order (``held``); and the exit plan of each symbol's
    last entry, with the entry's client order id (``plans``: the exits actor reads a
    position's plan from here when it starts watching it)."""

    unrecorded_since: float | None
    checked_through: float | None = None  # None: not known yet (no venue sync so far)
    # orders sent whose outcome is not known yet (placing, unknown, looking up), or that
    # the venue said are still open (open, open looking up): a replacement looks them up
    # after its venue sync (no new risk until then)
    unresolved: tuple[tuple[PlaceOrder, OrderPhase], ...] = ()
    held: tuple[str, ...] = ()  # signals waiting for an answer they depend on
    plans: tuple[tuple[str, str, ExitPlan], ...] = ()  # (symbol, entry's coid, plan)


@dataclass(frozen=True, slots=True)
class AskFor:
    """What an ask out was for: its kind and key (a client order id, a fill id)."""

    kind: Kind
    key: str = ""
